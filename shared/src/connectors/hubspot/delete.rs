//! Deletes: HubSpot archives records by record id only
//! (`POST /crm/v3/objects/{type}/batch/archive`, 204, unknown ids ignored), so the keys are
//! first resolved with `batch/read` by `idProperty`; keys HubSpot does not find are
//! reported `Skipped`, the others archived in one call. Both calls are idempotent, so a
//! retried batch neither fails nor archives anything twice.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::client::Api;
use super::errors::{json_body, request_error, text};
use super::schema::RECORD_ID;
use crate::ports::{Batch, RecordOutcome, SendError};

/// Resolves and archives one batch of deletes.
pub(super) async fn delete(
    api: &Api,
    object: &str,
    key: &str,
    batch: &Batch,
) -> Result<Vec<RecordOutcome>, SendError> {
    let ids = resolve(
        api,
        object,
        key,
        batch.records.iter().map(|r| r.key.as_str()),
    )
    .await?;
    let found: BTreeSet<&String> = ids.iter().flatten().collect();
    if !found.is_empty() {
        let inputs: Vec<Value> = found.iter().map(|id| json!({"id": id})).collect();
        // The batch's second request pays its own token of the account's request budget.
        api.requests.pace().await;
        let resp = api
            .post(
                &format!("/crm/v3/objects/{object}/batch/archive"),
                &json!({"inputs": inputs}),
            )
            .await?;
        if !resp.status.is_success() {
            return Err(request_error(&resp));
        }
    }
    Ok(ids
        .into_iter()
        .map(|id| match id {
            Some(_) => RecordOutcome::Delivered,
            None => RecordOutcome::Skipped {
                reason: "not found in HubSpot".into(),
            },
        })
        .collect())
}

/// The HubSpot record id of each key (`None`: no live record has it), in order.
pub(super) async fn resolve<'a>(
    api: &Api,
    object: &str,
    key: &str,
    keys: impl Iterator<Item = &'a str>,
) -> Result<Vec<Option<String>>, SendError> {
    let keys: Vec<&str> = keys.collect();
    let inputs: Vec<Value> = keys.iter().map(|k| json!({"id": k})).collect();
    let mut body = json!({"inputs": inputs, "properties": [key]});
    if key != RECORD_ID {
        body["idProperty"] = json!(key);
    }
    let resp = api
        .post(&format!("/crm/v3/objects/{object}/batch/read"), &body)
        .await?;
    if !resp.status.is_success() {
        return Err(request_error(&resp));
    }
    let body = json_body(&resp);
    // Key value -> HubSpot id, exactly and ignoring case (emails come back lower-cased).
    let mut exact: HashMap<String, String> = HashMap::new();
    let mut folded: HashMap<String, String> = HashMap::new();
    for r in body
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = text(r, "id") else {
            continue;
        };
        let value = if key == RECORD_ID {
            Some(id)
        } else {
            r.get("properties").and_then(|p| text(p, key))
        };
        if let Some(v) = value {
            exact.insert(v.to_string(), id.to_string());
            folded.insert(v.to_lowercase(), id.to_string());
        }
    }
    Ok(keys
        .iter()
        .map(|k| {
            exact
                .get(*k)
                .or_else(|| folded.get(&k.to_lowercase()))
                .cloned()
        })
        .collect())
}
