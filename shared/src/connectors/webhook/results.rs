//! Reading a receiver's answer to a batch: with no `results`, a 2xx accepts every record;
//! with `results`, every record must be accounted for; a JSON answer cut short accepts none. Anything retl cannot match to a record,
//! any record left without a result, and any status it does not know end as `failed` (sent
//! again as a new request, and planned again by the next run if it keeps failing), never as
//! delivered.

use std::collections::HashMap;

use serde_json::Value;

use crate::ports::{OutRecord, RecordOutcome};
use crate::record::canonical_number;

/// The text a result's `key` (or `event_id`) matches a record by: strings as they are,
/// numbers in their canonical text form (`5` matches the key `"5"`).
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => canonical_number(&n.to_string()),
        _ => None,
    }
}

fn failed(message: impl Into<String>) -> RecordOutcome {
    RecordOutcome::Failed {
        code: "unmatched_result".into(),
        message: message.into(),
    }
}

/// One result's outcome for its record.
fn outcome(result: &Value) -> RecordOutcome {
    let status = result["status"].as_str().unwrap_or_default();
    let text = |field: &str| result[field].as_str().map(str::to_string);
    let message = text("error").unwrap_or_default();
    let code = text("code").unwrap_or_else(|| status.to_string());
    match status {
        "ok" | "delivered" | "created" | "updated" | "deleted" => RecordOutcome::Delivered,
        "skipped" => RecordOutcome::Skipped { reason: message },
        "rejected" => RecordOutcome::Rejected { code, message },
        "failed" => RecordOutcome::Failed { code, message },
        other => RecordOutcome::Failed {
            code: "unknown_status".into(),
            message: format!(
                "the receiver answered status `{other}`, which the webhook contract does not define; the record is sent again"
            ),
        },
    }
}

/// Whether a body that did not parse was meant to be JSON: it opens an object or a list. Such
/// a body was cut short or garbled on the way, so what it said about each record is unknown.
fn broken_json(body: &str) -> bool {
    matches!(body.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// The outcome of each record of a batch, in order, from a 2xx answer's body.
pub(super) fn outcomes(records: &[OutRecord], body: &str) -> Vec<RecordOutcome> {
    let parsed: Option<Value> = match serde_json::from_str(body) {
        Ok(v) => Some(v),
        // A results body cut short may have rejected or failed some records: never guess
        // that it meant success. The records are sent again as a new request (their event
        // ids unchanged, so a receiver that stored some stores them once).
        Err(e) if broken_json(body) => {
            let why = format!(
                "the receiver's answer starts like JSON but is not valid JSON ({e}); the record is sent again"
            );
            return records
                .iter()
                .map(|_| RecordOutcome::Failed {
                    code: "malformed_results".into(),
                    message: why.clone(),
                })
                .collect();
        }
        Err(_) => None,
    };
    let Some(results) = parsed.as_ref().and_then(|v| v.get("results")) else {
        // No results: the receiver accepted the batch as a whole.
        return vec![RecordOutcome::Delivered; records.len()];
    };
    let Some(results) = results.as_array() else {
        let why = "the receiver's `results` is not a list";
        return records.iter().map(|_| failed(why)).collect();
    };
    let mut by_event: HashMap<String, &Value> = HashMap::new();
    let mut by_key: HashMap<String, &Value> = HashMap::new();
    for r in results {
        if let Some(e) = r.get("event_id").and_then(key_text) {
            by_event.insert(e, r);
        } else if let Some(k) = r.get("key").and_then(key_text) {
            by_key.insert(k, r);
        }
    }
    records
        .iter()
        .map(|rec| {
            let found = by_event.get(&rec.event_id).or_else(|| by_key.get(&rec.key));
            match found {
                Some(r) => outcome(r),
                None => failed(
                    "the receiver answered with results but none for this record; it is sent again",
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn recs(keys: &[&str]) -> Vec<OutRecord> {
        keys.iter()
            .map(|k| OutRecord {
                key: k.to_string(),
                values: Default::default(),
                event_id: format!("ev-{k}"),
            })
            .collect()
    }

    #[test]
    fn no_results_accepts_the_batch() {
        let r = recs(&["1", "2"]);
        assert_eq!(outcomes(&r, ""), vec![RecordOutcome::Delivered; 2]);
        assert_eq!(
            outcomes(&r, "{\"ok\":true}"),
            vec![RecordOutcome::Delivered; 2]
        );
    }

    #[test]
    fn a_json_answer_cut_short_fails_every_record() {
        let r = recs(&["1", "2"]);
        let cut = r#"{"results": [{"key": "1", "status": "ok"}, {"key": "2", "status": "rej"#;
        for body in [cut, "  [1, 2", "{"] {
            let out = outcomes(&r, body);
            assert!(
                out.iter().all(
                    |o| matches!(o, RecordOutcome::Failed { code, .. } if code == "malformed_results")
                ),
                "{body}: {out:?}"
            );
        }
        // A body that never meant to be JSON still accepts the batch.
        assert_eq!(outcomes(&r, "OK"), vec![RecordOutcome::Delivered; 2]);
    }

    #[test]
    fn every_record_needs_a_result_once_results_are_given() {
        let r = recs(&["1", "2", "3"]);
        let body = json!({"results": [
            {"key": "1", "status": "ok"},
            {"key": 2, "status": "rejected", "code": "bad", "error": "no"},
        ]})
        .to_string();
        let out = outcomes(&r, &body);
        assert_eq!(out[0], RecordOutcome::Delivered);
        assert!(matches!(&out[1], RecordOutcome::Rejected { code, .. } if code == "bad"));
        assert!(
            matches!(&out[2], RecordOutcome::Failed { code, .. } if code == "unmatched_result")
        );
    }

    #[test]
    fn unknown_statuses_and_malformed_results_fail() {
        let r = recs(&["5"]);
        let body = json!({"results": [{"key": 5, "status": "error"}]}).to_string();
        assert!(
            matches!(&outcomes(&r, &body)[0], RecordOutcome::Failed { code, .. } if code == "unknown_status")
        );
        let body = json!({"results": {"key": "5"}}).to_string();
        assert!(matches!(
            &outcomes(&r, &body)[0],
            RecordOutcome::Failed { .. }
        ));
        let body = json!({"results": []}).to_string();
        assert!(matches!(
            &outcomes(&r, &body)[0],
            RecordOutcome::Failed { .. }
        ));
    }

    #[test]
    fn results_match_by_event_id_first() {
        let r = recs(&["1"]);
        let body = json!({"results": [{"event_id": "ev-1", "status": "skipped", "error": "dup"}]})
            .to_string();
        assert!(matches!(
            &outcomes(&r, &body)[0],
            RecordOutcome::Skipped { .. }
        ));
    }
}
