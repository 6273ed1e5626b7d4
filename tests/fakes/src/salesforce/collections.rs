//! sObject Collections under `/services/data/vXX.X/composite/sobjects`: POST create, PATCH
//! update, PATCH `/{SObject}/{ExternalIdField}` upsert (API v46.0+), DELETE `?ids=`.
//! Sources: <https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html>
//! and the `-update`, `-upsert`, `-delete` pages: at most 200 records; each record needs
//! `attributes.type`; results in input order; 400 only for malformed requests, otherwise
//! 200 with per-record `{id, success, errors[{statusCode, message, fields}]}` (+ `created`
//! on upsert); `allOrNone` rolls everything back when any record fails, the others then
//! reporting `ALL_OR_NONE_OPERATION_ROLLED_BACK`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::errors::{api_version, not_found, rest_error};
use super::org::{Op, Org, Outcome, RecordError};
use super::state::SfState;
use crate::log::BatchSize;

/// Oldest API version with collection upsert.
const UPSERT_SINCE: f64 = 46.0;

#[derive(Clone, Copy)]
enum Kind<'a> {
    Create,
    Update,
    Upsert(&'a str, &'a str),
}

/// `POST .../composite/sobjects`.
pub(crate) async fn create(
    State(s): State<Arc<SfState>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    save(&s, &version, &body, Kind::Create)
}

/// `PATCH .../composite/sobjects`.
pub(crate) async fn update(
    State(s): State<Arc<SfState>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    save(&s, &version, &body, Kind::Update)
}

/// `PATCH .../composite/sobjects/{SObject}/{ExternalIdField}`.
pub(crate) async fn upsert(
    State(s): State<Arc<SfState>>,
    Path((version, sobject, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if api_version(&version).is_some_and(|v| v < UPSERT_SINCE) {
        return not_found();
    }
    save(&s, &version, &body, Kind::Upsert(&sobject, &field))
}

/// `DELETE .../composite/sobjects?ids=...&allOrNone=...`.
pub(crate) async fn delete(
    State(s): State<Arc<SfState>>,
    Path(version): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if api_version(&version).is_none() {
        return not_found();
    }
    let ids: Vec<String> = query
        .get("ids")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids parameter is required",
        );
    }
    let limit = s.config().collection_limit;
    if ids.len() > limit {
        return sized(too_many(limit), ids.len());
    }
    let all_or_none = query
        .get("allOrNone")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let records: Vec<(String, Map<String, Value>)> = ids
        .iter()
        .map(|id| {
            (
                String::new(),
                Map::from_iter([("Id".to_string(), json!(id))]),
            )
        })
        .collect();
    let results = run(
        &mut s.org(),
        &records,
        Op::Delete { hard: false },
        all_or_none,
    );
    sized(render(results, false), ids.len())
}

fn too_many(limit: usize) -> Response {
    rest_error(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        &format!("record limit reached. cannot submit more than {limit} records into this call"),
    )
}

fn sized(mut resp: Response, n: usize) -> Response {
    resp.extensions_mut().insert(BatchSize(n));
    resp
}

fn save(s: &SfState, version: &str, body: &[u8], kind: Kind<'_>) -> Response {
    if api_version(version).is_none() {
        return not_found();
    }
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", &e.to_string()),
    };
    let Some(list) = parsed.get("records").and_then(Value::as_array) else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "records is required",
        );
    };
    let config = s.config();
    if list.len() > config.collection_limit {
        return sized(too_many(config.collection_limit), list.len());
    }
    let all_or_none = parsed
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut records = Vec::with_capacity(list.len());
    for item in list {
        let typ = item.pointer("/attributes/type").and_then(Value::as_str);
        let (Some(map), Some(typ)) = (item.as_object(), typ) else {
            return sized(
                rest_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_TYPE",
                    "Must send a concrete entity type.",
                ),
                list.len(),
            );
        };
        if let Kind::Upsert(sobject, _) = kind {
            if typ != sobject {
                let message =
                    format!("Record type {typ} does not match the sObject {sobject} of the URL");
                return sized(
                    rest_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message),
                    list.len(),
                );
            }
        }
        records.push((typ.to_string(), map.clone()));
    }
    let chunks =
        records.windows(2).filter(|w| w[0].0 != w[1].0).count() + usize::from(!records.is_empty());
    if chunks > config.max_chunks {
        let message = format!(
            "Number of chunks ({chunks}) exceeds the limit of {} per request",
            config.max_chunks
        );
        return sized(
            rest_error(StatusCode::BAD_REQUEST, "INVALID_BATCH_SIZE", &message),
            list.len(),
        );
    }
    let op = match kind {
        Kind::Create => Op::Create,
        Kind::Update => Op::Update,
        Kind::Upsert(_, field) => Op::Upsert(field),
    };
    let results = run(&mut s.org(), &records, op, all_or_none);
    sized(
        render(results, matches!(kind, Kind::Upsert(..))),
        list.len(),
    )
}

/// Saves in order; with `all_or_none`, any failure restores the data as it was before.
fn run(
    org: &mut Org,
    records: &[(String, Map<String, Value>)],
    op: Op<'_>,
    all_or_none: bool,
) -> Vec<Result<Outcome, RecordError>> {
    let snapshot = all_or_none.then(|| org.data.clone());
    let results: Vec<_> = records
        .iter()
        .map(|(typ, record)| org.execute(typ, op, record))
        .collect();
    match snapshot {
        Some(before) if results.iter().any(Result::is_err) => {
            org.data = before;
            results
                .into_iter()
                .map(|r| match r {
                    Ok(_) => Err(RecordError::new(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header",
                        vec![],
                    )),
                    err => err,
                })
                .collect()
        }
        _ => results,
    }
}

fn render(results: Vec<Result<Outcome, RecordError>>, upsert: bool) -> Response {
    let body: Vec<Value> = results
        .into_iter()
        .map(|r| match r {
            Ok(o) => {
                let mut v = json!({"id": o.id, "success": true, "errors": []});
                if upsert {
                    v["created"] = json!(o.created);
                }
                v
            }
            Err(e) => json!({
                "id": null,
                "success": false,
                "errors": [{"statusCode": e.status_code, "message": e.message, "fields": e.fields}],
            }),
        })
        .collect();
    (StatusCode::OK, Json(Value::Array(body))).into_response()
}
