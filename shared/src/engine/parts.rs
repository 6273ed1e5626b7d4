//! Extract part files: model rows already keyed, hashed and grouped by key-set shard, so a
//! planner of one shard reads one byte range of each part.
//!
//! Record layout: `u32 key_len | key | u128 hash (big endian) | u32 values_len | values JSON |
//! u32 mark_len | mark JSON`, where the mark is an incremental model's watermark column value
//! (empty when the sync is not incremental or the value is NULL): apply needs it to tell how
//! far the watermark may move when a record fails.

use serde::{Deserialize, Serialize};

/// One shard's byte range within a part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Byte offset.
    pub offset: u64,
    /// Byte length.
    pub len: u64,
    /// Records.
    pub rows: u64,
}

/// One part object and where each shard's records are in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Object key.
    pub key: String,
    /// `segments[shard]`.
    pub segments: Vec<Segment>,
    /// The highest watermark value among the part's records (incremental models): a part
    /// wholly below a failed record's value tells how far the watermark may move after the
    /// part itself is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_max: Option<crate::ports::Bound>,
}

/// What extract produced; stored as [`super::keys::RunKeys::extract_manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractManifest {
    /// The run.
    pub run_id: String,
    /// Shard count the parts are grouped by.
    pub shards: u32,
    /// Rows the model returned.
    pub rows: u64,
    /// Rows rejected for their key (null, not a scalar).
    pub rejected: u64,
    /// Result columns.
    pub columns: Vec<String>,
    /// Part objects.
    pub parts: Vec<PartInfo>,
    /// When the extract ended (the start of planning).
    #[serde(default)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An incremental model's highest watermark value among the rows read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_seen: Option<crate::ports::Bound>,
}

impl ExtractManifest {
    /// Rows of `shard` across the parts.
    pub fn shard_rows(&self, shard: u32) -> u64 {
        self.parts
            .iter()
            .filter_map(|p| p.segments.get(shard as usize))
            .map(|s| s.rows)
            .sum()
    }
}

/// Appends one record to a buffer.
pub fn encode_record(
    buf: &mut Vec<u8>,
    key: &str,
    hash: u128,
    values_json: &[u8],
    mark_json: &[u8],
) {
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(&hash.to_be_bytes());
    buf.extend_from_slice(&(values_json.len() as u32).to_le_bytes());
    buf.extend_from_slice(values_json);
    buf.extend_from_slice(&(mark_json.len() as u32).to_le_bytes());
    buf.extend_from_slice(mark_json);
}

/// One decoded record, borrowing from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRecord<'a> {
    /// Key text.
    pub key: &'a str,
    /// Value hash.
    pub hash: u128,
    /// Mapped values as JSON.
    pub values: &'a [u8],
    /// The watermark column's value as JSON; empty when there is none.
    pub mark: &'a [u8],
}

/// Iterates the records of a segment; stops with an error on corrupt data.
pub struct PartReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PartReader<'a> {
    /// Reads `buf` from the start.
    pub fn new(buf: &'a [u8]) -> Self {
        PartReader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!("part data truncated at byte {}", self.pos)),
        }
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

impl<'a> Iterator for PartReader<'a> {
    type Item = Result<PartRecord<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rec = (|| {
            let klen = self.u32()?;
            let key = std::str::from_utf8(self.take(klen)?).map_err(|e| e.to_string())?;
            let h = self.take(16)?;
            let mut hb = [0u8; 16];
            hb.copy_from_slice(h);
            let vlen = self.u32()?;
            let values = self.take(vlen)?;
            let mlen = self.u32()?;
            let mark = self.take(mlen)?;
            Ok(PartRecord {
                key,
                hash: u128::from_be_bytes(hb),
                values,
                mark,
            })
        })();
        if rec.is_err() {
            self.pos = self.buf.len();
        }
        Some(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_records() {
        let mut buf = Vec::new();
        encode_record(&mut buf, "k1", 42, br#"{"a":1}"#, b"");
        encode_record(&mut buf, "ключ", u128::MAX, b"{}", b"17");
        let recs: Vec<_> = PartReader::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, "k1");
        assert_eq!(recs[0].hash, 42);
        assert_eq!(recs[0].values, br#"{"a":1}"#);
        assert_eq!(recs[1].key, "ключ");
        assert_eq!(recs[1].hash, u128::MAX);
        assert_eq!((recs[0].mark, recs[1].mark), (&b""[..], &b"17"[..]));
    }

    #[test]
    fn truncated_data_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode_record(&mut buf, "k1", 42, br#"{"a":1}"#, b"");
        buf.truncate(buf.len() - 3);
        let recs: Vec<_> = PartReader::new(&buf).collect();
        assert_eq!(recs.len(), 1);
        assert!(recs[0].is_err());
    }
}
