//! sObject Collections: up to 200 records per request with `allOrNone: false`, one result
//! per record in input order
//! (<https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html>
//! and the `-update`, `-upsert`, `-delete` pages).
//!
//! - upsert: `PATCH /composite/sobjects/{SObject}/{ExternalIdField}`;
//! - create: `POST /composite/sobjects`;
//! - update: ids looked up by key with SOQL, then `PATCH /composite/sobjects` with `Id`;
//! - delete: ids looked up by key, then `DELETE /composite/sobjects?ids=...&allOrNone=false`.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::Api;
use super::errors::{classify, record_outcome, unexpected, RecordError};
use super::query::{resolve_ids, Resolved};
use super::Target;
use crate::ports::{OutRecord, RecordOutcome, SendError, WriteOp};

#[derive(Deserialize)]
struct SaveResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<RecordError>,
}

/// A record as the Collections API takes it: `attributes.type`, the fields, and `Id` when
/// given (any `Id` among the values is dropped: only the connector decides which record).
pub(crate) fn sobject_record(
    sobject: &str,
    values: &Map<String, Value>,
    id: Option<&str>,
) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({ "type": sobject }));
    for (k, v) in values {
        if !k.eq_ignore_ascii_case("id") {
            m.insert(k.clone(), v.clone());
        }
    }
    if let Some(id) = id {
        m.insert("Id".into(), Value::String(id.to_string()));
    }
    Value::Object(m)
}

/// The outcome of a key that resolved to no single record.
pub(crate) fn unresolved(
    op: WriteOp,
    target: &Target<'_>,
    found: Option<&Resolved>,
) -> RecordOutcome {
    match found {
        Some(Resolved::Many(n)) => RecordOutcome::Rejected {
            code: "DUPLICATE_EXTERNAL_ID".into(),
            message: format!(
                "{n} {} records have this {}; the {} is ambiguous",
                target.sobject,
                target.key_field,
                op.as_str()
            ),
        },
        _ => RecordOutcome::Skipped {
            reason: format!("no {} record has this {}", target.sobject, target.key_field),
        },
    }
}

/// Writes one batch of at most 200 records.
pub(crate) async fn send(
    api: &Api,
    target: &Target<'_>,
    op: WriteOp,
    records: &[OutRecord],
) -> Result<Vec<RecordOutcome>, SendError> {
    match op {
        WriteOp::Upsert | WriteOp::Create => {
            let body: Vec<Value> = records
                .iter()
                .map(|r| sobject_record(target.sobject, &r.values, None))
                .collect();
            let path = match op {
                WriteOp::Upsert => {
                    format!(
                        "/composite/sobjects/{}/{}",
                        target.sobject, target.key_field
                    )
                }
                _ => "/composite/sobjects".to_string(),
            };
            let results = save(api, op, &path, body).await?;
            Ok(outcomes(op, target, results))
        }
        WriteOp::Update | WriteOp::Delete => {
            let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
            let found = resolve_ids(api, target, &keys).await?;
            let mut out: Vec<Option<RecordOutcome>> = vec![None; records.len()];
            let mut pending: Vec<(usize, &str)> = Vec::new();
            for (i, r) in records.iter().enumerate() {
                match found.get(&r.key) {
                    Some(Resolved::One(id)) => pending.push((i, id)),
                    other => out[i] = Some(unresolved(op, target, other)),
                }
            }
            if !pending.is_empty() {
                let results = if op == WriteOp::Update {
                    let body = pending
                        .iter()
                        .map(|(i, id)| {
                            sobject_record(target.sobject, &records[*i].values, Some(id))
                        })
                        .collect();
                    save(api, op, "/composite/sobjects", body).await?
                } else {
                    let ids: Vec<&str> = pending.iter().map(|(_, id)| *id).collect();
                    delete(api, &ids).await?
                };
                for ((i, _), o) in pending.iter().zip(outcomes(op, target, results)) {
                    out[*i] = Some(o);
                }
            }
            Ok(out
                .into_iter()
                .map(|o| {
                    o.unwrap_or(RecordOutcome::Failed {
                        code: "connector_error".into(),
                        message: "no outcome was recorded".into(),
                    })
                })
                .collect())
        }
    }
}

fn outcomes(op: WriteOp, target: &Target<'_>, results: Vec<SaveResult>) -> Vec<RecordOutcome> {
    results
        .into_iter()
        .map(|r| {
            if r.success {
                RecordOutcome::Delivered
            } else {
                record_outcome(op, target.key_field, &r.errors)
            }
        })
        .collect()
}

async fn save(
    api: &Api,
    op: WriteOp,
    path: &str,
    records: Vec<Value>,
) -> Result<Vec<SaveResult>, SendError> {
    let n = records.len();
    let body = json!({ "allOrNone": false, "records": records });
    let resp = api
        .call(|t| {
            let url = api.data_url(t, path);
            let req = match op {
                WriteOp::Create => api.http().post(url),
                _ => api.http().patch(url),
            };
            req.json(&body)
        })
        .await?;
    results(&resp, n)
}

async fn delete(api: &Api, ids: &[&str]) -> Result<Vec<SaveResult>, SendError> {
    let list = ids.join(",");
    let resp = api
        .call(|t| {
            api.http()
                .delete(api.data_url(t, "/composite/sobjects"))
                .query(&[("ids", list.as_str()), ("allOrNone", "false")])
        })
        .await?;
    results(&resp, ids.len())
}

fn results(
    resp: &crate::delivery::http::HttpResponse,
    n: usize,
) -> Result<Vec<SaveResult>, SendError> {
    if !resp.status.is_success() {
        return Err(classify(resp));
    }
    let results: Vec<SaveResult> = serde_json::from_str(&resp.body)
        .map_err(|e| unexpected("the collection answer is not a result list", e))?;
    if results.len() != n {
        return Err(unexpected(
            "the collection answer does not match the request",
            format!("{} results for {n} records", results.len()),
        ));
    }
    Ok(results)
}
