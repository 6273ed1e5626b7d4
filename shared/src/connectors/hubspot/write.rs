//! Create, update and upsert: one `POST /crm/v3/objects/{type}/batch/{create|update|upsert}`
//! per batch, every input tagged with an `objectWriteTraceId` so HubSpot answers 207 with
//! per-input errors instead of failing the whole batch
//! (<https://developers.hubspot.com/docs/api-reference/error-handling>), and so results can
//! be matched to records whatever their order.
//!
//! When HubSpot still refuses the whole batch (400/404/409) and its answer names the inputs
//! at fault (`errors[].in` = `inputs[3]...`, `context.objectWriteTraceId` or
//! `context.ids`), those records get their outcome and the others are sent again in the same
//! call; nothing was written by the refused request, so this is safe. An answer naming no
//! input is returned as `BatchRejected`, and the framework splits the batch.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::client::Api;
use super::errors::{category, context_list, details, input_index, json_body, request_error, text};
use super::schema::{property_value, RECORD_ID};
use crate::delivery::http::excerpt;
use crate::ports::{Batch, OutRecord, RecordOutcome, SendError, WriteOp};

/// Requests one batch may take while whole-batch refusals keep naming inputs at fault.
const MAX_ROUNDS: usize = 5;

/// Categories of per-input errors that may heal on a later attempt (HubSpot does not
/// document per-input categories; these are its transient request-level ones).
const TRANSIENT: [&str; 6] = [
    "RATE_LIMIT",
    "RATE_LIMITS",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
    "TIMEOUT",
    "LOCKED",
];

/// The trace id of the batch's record `i`.
fn trace(i: usize) -> String {
    format!("retl-{i}")
}

/// The record index a trace id names.
fn traced_index(t: &str, n: usize) -> Option<usize> {
    t.strip_prefix("retl-")?.parse().ok().filter(|i| *i < n)
}

/// One input of the batch body.
fn input(op: WriteOp, key: &str, i: usize, record: &OutRecord) -> Value {
    let mut props = Map::new();
    for (field, value) in &record.values {
        // The record id is read-only; it travels as `id`.
        if field != RECORD_ID {
            props.insert(field.clone(), property_value(value));
        }
    }
    let mut input = json!({"properties": props, "objectWriteTraceId": trace(i)});
    if op != WriteOp::Create {
        input["id"] = json!(record.key);
        if key != RECORD_ID {
            input["idProperty"] = json!(key);
        }
    }
    input
}

/// Finds records by key value: exactly, then ignoring case (HubSpot compares emails
/// case-insensitively and may return them lower-cased).
struct KeyIndex {
    exact: HashMap<String, Vec<usize>>,
    folded: HashMap<String, Vec<usize>>,
}

impl KeyIndex {
    fn new(batch: &Batch, pending: &[usize]) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut folded: HashMap<String, Vec<usize>> = HashMap::new();
        for &i in pending {
            let k = &batch.records[i].key;
            exact.entry(k.clone()).or_default().push(i);
            folded.entry(k.to_lowercase()).or_default().push(i);
        }
        KeyIndex { exact, folded }
    }

    fn find(&self, value: &str) -> Vec<usize> {
        match self.exact.get(value) {
            Some(v) => v.clone(),
            None => self
                .folded
                .get(&value.to_lowercase())
                .cloned()
                .unwrap_or_default(),
        }
    }
}

/// The key value of a result: the `idProperty` value, or the record id.
fn result_key<'a>(result: &'a Value, key: &str) -> Option<&'a str> {
    if key == RECORD_ID {
        return text(result, "id");
    }
    result.get("properties").and_then(|p| text(p, key))
}

/// The outcome of one refused input.
fn item_outcome(op: WriteOp, category: &str, message: String) -> RecordOutcome {
    match (category, op) {
        ("CONFLICT", WriteOp::Create) => RecordOutcome::Skipped {
            reason: format!("already exists in HubSpot ({message})"),
        },
        ("OBJECT_NOT_FOUND", WriteOp::Update) => RecordOutcome::Skipped {
            reason: "not found in HubSpot".into(),
        },
        (c, _) if TRANSIENT.contains(&c) => RecordOutcome::Failed {
            code: c.to_string(),
            message,
        },
        (c, _) => RecordOutcome::Rejected {
            code: c.to_string(),
            message,
        },
    }
}

/// HubSpot's message for an error, with the detail codes (`INVALID_EMAIL`, ...) it does not
/// already mention.
fn item_message(err: &Value, fallback: &str) -> String {
    let mut message = excerpt(text(err, "message").unwrap_or(fallback));
    let codes: Vec<String> = details(err)
        .iter()
        .filter_map(|d| {
            let code = text(d, "code")?;
            let name = d
                .get("context")
                .map(|_| context_list(d, "propertyName"))
                .and_then(|p| p.into_iter().next());
            (!message.contains(code)).then(|| match name {
                Some(n) => format!("{code} on {n}"),
                None => code.to_string(),
            })
        })
        .collect();
    if !codes.is_empty() {
        message.push_str(&format!(" [{}]", codes.join(", ")));
    }
    message
}

/// Writes one batch of creates, updates or upserts.
pub(super) async fn write(
    api: &Api,
    object: &str,
    key: &str,
    batch: &Batch,
) -> Result<Vec<RecordOutcome>, SendError> {
    let action = match batch.op {
        WriteOp::Create => "create",
        WriteOp::Update => "update",
        WriteOp::Upsert => "upsert",
        WriteOp::Delete => {
            return Err(SendError::Fatal {
                code: "connector_error".into(),
                message: "deletes are not written with batch writes".into(),
            })
        }
    };
    let path = format!("/crm/v3/objects/{object}/batch/{action}");
    let n = batch.records.len();
    let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; n];
    let mut pending: Vec<usize> = (0..n).collect();
    for _ in 0..MAX_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let inputs: Vec<Value> = pending
            .iter()
            .map(|&i| input(batch.op, key, i, &batch.records[i]))
            .collect();
        let resp = api.post(&path, &json!({"inputs": inputs})).await?;
        let body = json_body(&resp);
        if resp.status.is_success() {
            read_answer(
                batch,
                key,
                &pending,
                &body,
                resp.status.as_u16(),
                &mut outcomes,
            );
            pending.clear();
            break;
        }
        let culprits = match resp.status.as_u16() {
            400 | 404 | 409 => culprits(batch, &pending, &body),
            _ => Vec::new(),
        };
        if culprits.is_empty() {
            return Err(request_error(&resp));
        }
        tracing::debug!(
            refused = culprits.len(),
            resent = pending.len() - culprits.len(),
            "hubspot refused a batch for some inputs; sending the others again"
        );
        for (i, o) in culprits {
            outcomes[i] = Some(o);
        }
        pending.retain(|i| outcomes[*i].is_none());
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| RecordOutcome::Failed {
                code: "not_sent".into(),
                message: "HubSpot kept refusing the batch for other records; sent again later"
                    .into(),
            })
        })
        .collect())
}

/// Reads a 2xx answer: results are delivered, 207 errors decide their inputs' outcomes.
fn read_answer(
    batch: &Batch,
    key: &str,
    pending: &[usize],
    body: &Value,
    status: u16,
    outcomes: &mut [Option<RecordOutcome>],
) {
    let n = batch.records.len();
    let keys = KeyIndex::new(batch, pending);
    for result in body
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let by_trace = text(result, "objectWriteTraceId").and_then(|t| traced_index(t, n));
        let found = match by_trace {
            Some(i) => vec![i],
            None => result_key(result, key)
                .map(|k| keys.find(k))
                .unwrap_or_default(),
        };
        for i in found {
            if outcomes[i].is_none() {
                outcomes[i] = Some(RecordOutcome::Delivered);
            }
        }
    }
    let errors = details(body);
    for err in errors {
        let cat = category(err).unwrap_or("ERROR");
        let message = item_message(err, "HubSpot refused this record");
        for i in error_inputs(batch, pending, err, &keys) {
            if outcomes[i].is_none() {
                outcomes[i] = Some(item_outcome(batch.op, cat, message.clone()));
            }
        }
    }
    for &i in pending {
        if outcomes[i].is_none() {
            // Without multi-status HubSpot applies a batch whole, so a success covers every
            // input; a 207 that does not mention one leaves it unknown, to be sent again.
            outcomes[i] = Some(if status != 207 && errors.is_empty() {
                RecordOutcome::Delivered
            } else {
                RecordOutcome::Failed {
                    code: "no_result".into(),
                    message: "HubSpot's answer did not mention this record".into(),
                }
            });
        }
    }
}

/// The records one error is about: by trace id, by `ids` (update and upsert address inputs
/// by key value; create's `ids` are the existing records'), or by `errors[].in`.
fn error_inputs(batch: &Batch, pending: &[usize], err: &Value, keys: &KeyIndex) -> Vec<usize> {
    let n = batch.records.len();
    let mut found: Vec<usize> = context_list(err, "objectWriteTraceId")
        .iter()
        .filter_map(|t| traced_index(t, n))
        .collect();
    if found.is_empty() && batch.op != WriteOp::Create {
        found = context_list(err, "ids")
            .iter()
            .flat_map(|id| keys.find(id))
            .collect();
    }
    if found.is_empty() {
        found = details(err)
            .iter()
            .filter_map(|d| text(d, "in").and_then(input_index))
            .filter_map(|pos| pending.get(pos).copied())
            .collect();
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// The inputs a whole-batch refusal names, with their outcomes.
fn culprits(batch: &Batch, pending: &[usize], body: &Value) -> Vec<(usize, RecordOutcome)> {
    let Some(cat) = category(body) else {
        return Vec::new();
    };
    let n = batch.records.len();
    let keys = KeyIndex::new(batch, pending);
    let top = text(body, "message").unwrap_or("HubSpot refused this record");
    let mut out: HashMap<usize, RecordOutcome> = HashMap::new();
    // Details name their input and carry their own code and message.
    for d in details(body) {
        let Some(i) = text(d, "in")
            .and_then(input_index)
            .and_then(|pos| pending.get(pos).copied())
        else {
            continue;
        };
        let code = text(d, "code").unwrap_or(cat);
        let item_cat = if code == "CONFLICT" { "CONFLICT" } else { cat };
        let message = match text(d, "message") {
            Some(m) if m != top => format!("{} ({})", excerpt(top), excerpt(m)),
            _ => excerpt(top),
        };
        let message = if message.contains(code) {
            message
        } else {
            format!("{message} [{code}]")
        };
        out.entry(i)
            .or_insert_with(|| item_outcome(batch.op, item_cat, message));
    }
    let mut named: Vec<usize> = context_list(body, "objectWriteTraceId")
        .iter()
        .filter_map(|t| traced_index(t, n))
        .filter(|i| pending.contains(i))
        .collect();
    if batch.op != WriteOp::Create {
        named.extend(
            context_list(body, "ids")
                .iter()
                .flat_map(|id| keys.find(id)),
        );
    }
    for i in named {
        out.entry(i)
            .or_insert_with(|| item_outcome(batch.op, cat, excerpt(top)));
    }
    let mut out: Vec<(usize, RecordOutcome)> = out.into_iter().collect();
    out.sort_unstable_by_key(|(i, _)| *i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(op: WriteOp, keys: &[&str]) -> Batch {
        Batch {
            op,
            records: keys
                .iter()
                .map(|k| OutRecord {
                    key: k.to_string(),
                    values: json!({"email": k, "n": 1}).as_object().unwrap().clone(),
                    event_id: format!("ev-{k}"),
                })
                .collect(),
            resend: 0,
        }
    }

    #[test]
    fn inputs_carry_id_property_trace_and_text_values() {
        let b = batch(WriteOp::Upsert, &["a@x.io"]);
        let v = input(WriteOp::Upsert, "email", 0, &b.records[0]);
        assert_eq!(
            v,
            json!({"id": "a@x.io", "idProperty": "email", "objectWriteTraceId": "retl-0",
                   "properties": {"email": "a@x.io", "n": "1"}})
        );
        let v = input(WriteOp::Create, "email", 3, &b.records[0]);
        assert!(v.get("id").is_none() && v["objectWriteTraceId"] == "retl-3");
    }

    #[test]
    fn multi_status_answers_are_read_per_record() {
        let b = batch(WriteOp::Update, &["a@x.io", "b@x.io", "c@x.io", "d@x.io"]);
        let pending = vec![0, 1, 2, 3];
        let body = json!({
            "results": [
                {"id": "1", "properties": {"email": "c@x.io"}},
                {"id": "2", "objectWriteTraceId": "retl-0", "properties": {}},
            ],
            "errors": [
                {"category": "OBJECT_NOT_FOUND", "message": "gone", "context": {"ids": ["B@x.io"]}},
                {"category": "VALIDATION_ERROR", "message": "bad",
                 "errors": [{"code": "INVALID_EMAIL", "in": "inputs[3].properties.email", "context": {"propertyName": ["email"]}}]},
            ],
        });
        let mut out = vec![None; 4];
        read_answer(&b, "email", &pending, &body, 207, &mut out);
        assert_eq!(out[0], Some(RecordOutcome::Delivered));
        assert!(matches!(out[1], Some(RecordOutcome::Skipped { .. })));
        assert_eq!(out[2], Some(RecordOutcome::Delivered));
        match &out[3] {
            Some(RecordOutcome::Rejected { code, message }) => {
                assert_eq!(code, "VALIDATION_ERROR");
                assert!(message.contains("INVALID_EMAIL on email"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_batch_refusals_name_their_inputs() {
        let b = batch(WriteOp::Create, &["a", "b", "c"]);
        // Second round: only records 0 and 2 were sent, so `inputs[1]` is record 2.
        let body = json!({"category": "CONFLICT", "message": "Contact already exists. Existing ID: 9",
                          "errors": [{"code": "CONFLICT", "in": "inputs[1].properties.email"}],
                          "context": {"ids": ["9"]}});
        let found = culprits(&b, &[0, 2], &body);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 2);
        assert!(matches!(found[0].1, RecordOutcome::Skipped { .. }));
        let none = culprits(
            &b,
            &[0, 1, 2],
            &json!({"category": "VALIDATION_ERROR", "message": "Duplicate IDs"}),
        );
        assert!(none.is_empty());
    }
}
