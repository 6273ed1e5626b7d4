//! From a batch to an upload and back: the rows of `payload.data` (records whose values
//! cannot be sent are rejected here and never leave retl), the `session` of the request, and
//! which records Meta's `invalid_entry_samples` point at.

use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::normalize::encode;
use super::schema::Key;
use crate::ports::{OutRecord, RecordOutcome};

/// Code of a record retl refused to send because a value cannot be normalised.
pub(super) const INVALID_VALUE: &str = "invalid_value";
/// Code of a record Meta counted in `num_invalid_entries`. Meta gives no per-entry code.
pub(super) const INVALID_ENTRY: &str = "invalid_entry";

/// The rows to upload for a batch.
#[derive(Debug, Default)]
pub(super) struct Upload {
    /// `payload.data`: one row per sent record, cells in column order (`""` for null).
    pub rows: Vec<Vec<String>>,
    /// For each row, the index of its record in the batch.
    pub sent: Vec<usize>,
    /// Per record of the batch: the outcome decided locally (a value that cannot be sent).
    pub local: Vec<Option<RecordOutcome>>,
}

/// Encodes every record; the ones with a value that cannot be sent are rejected locally.
pub(super) fn build(columns: &[(String, Key)], records: &[OutRecord]) -> Upload {
    let mut up = Upload {
        local: vec![None; records.len()],
        ..Upload::default()
    };
    for (i, record) in records.iter().enumerate() {
        match encode_row(columns, record) {
            Ok(row) => {
                up.rows.push(row);
                up.sent.push(i);
            }
            Err(message) => {
                up.local[i] = Some(RecordOutcome::Rejected {
                    code: INVALID_VALUE.into(),
                    message,
                })
            }
        }
    }
    up
}

fn encode_row(columns: &[(String, Key)], record: &OutRecord) -> Result<Vec<String>, String> {
    let mut row = Vec::with_capacity(columns.len());
    for (field, key) in columns {
        let cell = match record.values.get(field) {
            None => None,
            Some(v) => encode(*key, v).map_err(|why| {
                format!(
                    "{} (field `{field}`) {why}; the record was not sent to Meta",
                    key.name()
                )
            })?,
        };
        row.push(cell.unwrap_or_default());
    }
    if row.iter().all(String::is_empty) {
        return Err("every identifier is null; the record was not sent to Meta".into());
    }
    Ok(row)
}

/// The `session` of a one-request upload. The id is derived from the request's content, so
/// a retry of the same batch reuses it (Meta tracks a session by its id).
pub(super) fn session(
    audience: &str,
    method: &str,
    schema: &[&str],
    rows: &[Vec<String>],
) -> Value {
    let identity = serde_json::to_vec(&(audience, method, schema, rows)).unwrap_or_default();
    // Positive and non-zero, so that it reads the same as a signed 64-bit integer.
    let id = (xxh3_64(&identity) & (i64::MAX as u64)).max(1);
    json!({
        "session_id": id,
        "batch_seq": 1,
        "last_batch_flag": true,
        "estimated_num_total": rows.len(),
    })
}

/// `invalid_entry_samples` as (sample, other side) pairs. Meta documents it as a map of
/// strings without saying which side is the value; the fake maps value -> schema key. Both
/// orientations are read, and a list of values too.
fn sample_pairs(samples: Option<&Value>) -> Vec<(String, Option<String>)> {
    match samples {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| (s.to_string(), None))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a sample names the cell `value` of the column `key`.
fn names(sample: &(String, Option<String>), key: Key, value: &str) -> bool {
    let (a, b) = sample;
    let names_key = |s: &str| s.eq_ignore_ascii_case(key.name());
    let not_a_key = |s: &str| Key::parse(s).is_none();
    (a == value && b.as_deref().is_none_or(|b| names_key(b) || not_a_key(b)))
        || (b.as_deref() == Some(value) && names_key(a))
}

/// For each uploaded row, the key of its cell that `invalid_entry_samples` names, if any.
pub(super) fn invalid_rows(
    columns: &[(String, Key)],
    rows: &[Vec<String>],
    samples: Option<&Value>,
) -> Vec<Option<Key>> {
    let pairs = sample_pairs(samples);
    rows.iter()
        .map(|row| {
            columns.iter().zip(row).find_map(|((_, key), cell)| {
                (!cell.is_empty() && pairs.iter().any(|p| names(p, *key, cell))).then_some(*key)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::normalize::sha256_hex;
    use super::*;

    fn cols() -> Vec<(String, Key)> {
        vec![("EMAIL".into(), Key::Email), ("FN".into(), Key::Fn)]
    }

    fn rec(values: Value) -> OutRecord {
        OutRecord {
            key: "k".into(),
            values: values.as_object().cloned().unwrap_or_default(),
            event_id: String::new(),
        }
    }

    #[test]
    fn bad_values_are_rejected_locally_and_nulls_are_empty_cells() {
        let up = build(
            &cols(),
            &[
                rec(json!({"EMAIL": "A@b.c", "FN": null})),
                rec(json!({"EMAIL": "a@b.c", "FN": "--"})),
                rec(json!({"EMAIL": null, "FN": null})),
            ],
        );
        assert_eq!(up.rows, vec![vec![sha256_hex("a@b.c"), String::new()]]);
        assert_eq!(up.sent, vec![0]);
        match &up.local[1] {
            Some(RecordOutcome::Rejected { code, message }) => {
                assert_eq!(code, INVALID_VALUE);
                assert!(message.starts_with("FN (field `FN`) normalises to an empty value"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&up.local[2], Some(RecordOutcome::Rejected { .. })));
    }

    #[test]
    fn samples_point_at_rows_in_either_orientation() {
        let rows = vec![
            vec!["h1".to_string(), "f1".to_string()],
            vec!["h2".to_string(), String::new()],
            vec!["h3".to_string(), "f3".to_string()],
        ];
        let s = json!({"h2": "EMAIL"});
        assert_eq!(
            invalid_rows(&cols(), &rows, Some(&s)),
            vec![None, Some(Key::Email), None]
        );
        let s = json!({"FN": "f3"});
        assert_eq!(
            invalid_rows(&cols(), &rows, Some(&s)),
            vec![None, None, Some(Key::Fn)]
        );
        let s = json!({"f1": "EMAIL"});
        assert_eq!(
            invalid_rows(&cols(), &rows, Some(&s)),
            vec![None; 3],
            "wrong column"
        );
        assert_eq!(invalid_rows(&cols(), &rows, None), vec![None; 3]);
    }

    #[test]
    fn sessions_are_stable_for_the_same_request() {
        let rows = vec![vec!["a".to_string()]];
        let a = session("1", "POST", &["EMAIL"], &rows);
        assert_eq!(a, session("1", "POST", &["EMAIL"], &rows));
        assert_ne!(
            a["session_id"],
            session("1", "DELETE", &["EMAIL"], &rows)["session_id"]
        );
        assert_eq!(a["batch_seq"], 1);
        assert_eq!(a["last_batch_flag"], true);
        assert_eq!(a["estimated_num_total"], 1);
    }
}
