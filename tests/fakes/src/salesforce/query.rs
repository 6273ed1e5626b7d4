//! `GET /services/data/vXX.X/query?q=<SOQL>` and its continuation
//! `GET /services/data/vXX.X/query/<locator>-<offset>`.
//! Sources: <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm>
//! (`{"totalSize", "done", "nextRecordsUrl"?, "records": [{"attributes": {"type", "url"}, ...}]}`;
//! more rows are fetched from `nextRecordsUrl`), and the `Sforce-Query-Options: batchSize=N`
//! header (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm>:
//! default and maximum 2,000, minimum 200).
//!
//! Choices where the docs leave room: the fake answers the subset [`super::soql`] parses
//! (anything else is 400 `MALFORMED_QUERY`); a page holds exactly the batch size (the API
//! only promises "up to"); a field that a record lacks is returned as `null` under the name
//! the query used, a stored field under its stored name (the API uses the schema's spelling);
//! with [`super::SalesforceConfig::sobjects`] set, other sObjects get 400 `INVALID_TYPE`
//! "sObject type 'X' is not supported."; an unknown locator gets 400 `INVALID_QUERY_LOCATOR`.
//! The request log's `records_in_batch` of a query is the number of values of its `IN` (or
//! `=`) condition, so tests can check how a client chunks its lookups.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::errors::{api_version, not_found, rest_error};
use super::soql::{self, Literal};
use super::state::SfState;
use crate::log::BatchSize;
use crate::rules::lookup;
use crate::util::{alnum, scalar_text};

/// Rows of a query still to be fetched through `nextRecordsUrl`.
#[derive(Debug)]
pub(crate) struct Cursor {
    version: String,
    page: usize,
    total: usize,
    rows: Vec<Value>,
}

/// `GET .../query?q=...`.
pub(crate) async fn query(
    State(s): State<Arc<SfState>>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if api_version(&version).is_none() {
        return not_found();
    }
    let Some(q) = params.get("q") else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match soql::parse(q) {
        Ok(p) => p,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", &e),
    };
    let config = s.config();
    if let Some(known) = &config.sobjects {
        if !known.iter().any(|o| o.eq_ignore_ascii_case(&parsed.object)) {
            let message = format!("sObject type '{}' is not supported.", parsed.object);
            return rest_error(StatusCode::BAD_REQUEST, "INVALID_TYPE", &message);
        }
    }
    let page = page_size(&headers, config.query_page_size);
    let stored = {
        // Closed Bulk jobs whose delay has passed are applied first, as `records()` does.
        let mut jobs = s.jobs();
        let mut org = s.org();
        for job in jobs.values_mut() {
            job.settle(&mut org, config.bulk_processing_delay);
        }
        org.data.records(&parsed.object)
    };
    let mut rows: Vec<Map<String, Value>> = stored
        .into_iter()
        .filter(|r| {
            parsed
                .filter
                .as_ref()
                .is_none_or(|f| f.accepts(lookup(r, &f.field, true)))
        })
        .collect();
    if let Some((field, descending)) = &parsed.order_by {
        rows.sort_by_key(|r| lookup(r, field, true).map(scalar_text).unwrap_or_default());
        if *descending {
            rows.reverse();
        }
    }
    if let Some(n) = parsed.limit {
        rows.truncate(n);
    }
    let rendered: Vec<Value> = rows
        .iter()
        .map(|r| render(r, &parsed.fields, &parsed.object, &version))
        .collect();
    let in_list = parsed
        .filter
        .as_ref()
        .filter(|f| !f.negated)
        .map(|f| f.values.iter().filter(|l| **l != Literal::Null).count());
    let cursor = Cursor {
        version,
        page,
        total: rendered.len(),
        rows: rendered,
    };
    let mut resp = answer(&s, String::new(), 0, cursor);
    if let Some(n) = in_list {
        resp.extensions_mut().insert(BatchSize(n));
    }
    resp
}

/// `GET .../query/<locator>-<offset>`.
pub(crate) async fn more(
    State(s): State<Arc<SfState>>,
    Path((_, locator)): Path<(String, String)>,
) -> Response {
    let parsed = locator
        .rsplit_once('-')
        .and_then(|(id, offset)| Some((id.to_string(), offset.parse::<usize>().ok()?)));
    let cursor = parsed.and_then(|(id, offset)| {
        let c = s.cursors().remove(&id)?;
        Some((id, offset, c))
    });
    match cursor {
        Some((id, offset, c)) if offset <= c.rows.len() => answer(&s, id, offset, c),
        _ => rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ),
    }
}

/// One page from `offset`; the cursor is kept under `id` (or a new locator) if rows remain.
fn answer(s: &SfState, id: String, offset: usize, cursor: Cursor) -> Response {
    let end = (offset + cursor.page).min(cursor.rows.len());
    let records: Vec<Value> = cursor.rows[offset..end].to_vec();
    let mut body = json!({
        "totalSize": cursor.total,
        "done": end >= cursor.rows.len(),
        "records": records,
    });
    if end < cursor.rows.len() {
        let id = if id.is_empty() {
            format!("01g5e{}", alnum(13))
        } else {
            id
        };
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/{}/query/{id}-{end}",
            cursor.version
        ));
        s.cursors().insert(id, cursor);
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// The batch size asked for with `Sforce-Query-Options`, within 200..=2000.
fn page_size(headers: &HeaderMap, default: usize) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',').find_map(|part| {
                let (k, n) = part.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| n.trim().parse::<usize>().ok())?
            })
        })
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(default)
        .max(1)
}

fn render(record: &Map<String, Value>, fields: &[String], sobject: &str, version: &str) -> Value {
    let id = lookup(record, "Id", true)
        .map(scalar_text)
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": sobject, "url": format!("/services/data/{version}/sobjects/{sobject}/{id}")}),
    );
    for f in fields {
        match record.iter().find(|(k, _)| k.eq_ignore_ascii_case(f)) {
            Some((k, v)) => out.insert(k.clone(), v.clone()),
            None => out.insert(f.clone(), Value::Null),
        };
    }
    Value::Object(out)
}
