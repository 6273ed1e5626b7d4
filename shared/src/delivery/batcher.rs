use crate::ports::{BatchLimits, OutRecord};

/// Rough encoded size of a record: its JSON plus the key, counted as it is written (nothing
/// is kept: the connector serialises the record itself).
pub(crate) fn record_bytes(r: &OutRecord) -> usize {
    let mut counted = ByteCount(0);
    // Counting cannot fail, and a value that cannot be serialised counts what it wrote.
    let _ = serde_json::to_writer(&mut counted, &r.values);
    counted.0 + r.key.len() + 16
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Splits records into batches within both the record and byte limits. A record larger than
/// the byte limit travels alone (the destination then decides).
pub fn batches(records: Vec<OutRecord>, limits: BatchLimits) -> Vec<Vec<OutRecord>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for r in records {
        let size = record_bytes(&r);
        if !current.is_empty()
            && (current.len() >= limits.max_records || bytes + size > limits.max_bytes)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(r);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(i: usize, payload: usize) -> OutRecord {
        let mut values = serde_json::Map::new();
        values.insert("p".into(), json!("x".repeat(payload)));
        OutRecord {
            key: i.to_string(),
            values,
            event_id: String::new(),
        }
    }

    #[test]
    fn respects_record_limit() {
        let recs: Vec<_> = (0..250).map(|i| rec(i, 1)).collect();
        let b = batches(
            recs,
            BatchLimits {
                max_records: 100,
                max_bytes: 1 << 20,
            },
        );
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
    }

    #[test]
    fn respects_byte_limit() {
        let recs: Vec<_> = (0..10).map(|i| rec(i, 1000)).collect();
        let b = batches(
            recs,
            BatchLimits {
                max_records: 100,
                max_bytes: 3500,
            },
        );
        assert!(b.iter().all(|b| b.len() <= 3));
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), 10);
    }
}
