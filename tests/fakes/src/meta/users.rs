//! `POST` (add) and `DELETE` (remove) `/{version}/{audience_id}/users`.
//! Source: <https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users>
//! (`payload`, optional `session {session_id, batch_seq, last_batch_flag,
//! estimated_num_total}`, at most 10,000 rows per request; answer `{audience_id, session_id,
//! num_received, num_invalid_entries, invalid_entry_samples}`). Invalid entries do not fail
//! the request: they are counted and sampled, and the valid rows are applied.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::params::Params;
use super::payload::{check, parse};
use super::state::{Audience, GraphError, Member, MtState};
use super::SessionRecord;
use crate::log::BatchSize;
use crate::rules::Rule;
use crate::util::unique_u64;

fn version_ok(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
        })
}

fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// The `/users` handler for both methods.
pub(crate) async fn users(
    State(s): State<Arc<MtState>>,
    method: Method,
    Path((version, audience_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !version_ok(&version) {
        let message = format!("Unknown path components: /{version}/{audience_id}/users");
        return GraphError::bad(&message, 2500).response();
    }
    let params = Params::gather(query.as_deref(), &headers, &body);
    let config = s.config();
    match params.access_token(&headers) {
        None => {
            return GraphError::bad("An access token is required to request this resource.", 104)
                .response();
        }
        Some(t) if t != config.access_token => {
            return GraphError::bad(
                "Invalid OAuth access token - Cannot parse access token",
                190,
            )
            .response();
        }
        Some(_) => {}
    }
    let removing = method == Method::DELETE;
    if !s.audiences().contains_key(&audience_id) {
        let verb = if removing { "delete" } else { "post" };
        let message = format!(
            "Unsupported {verb} request. Object with ID '{audience_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        );
        return GraphError {
            kind: "GraphMethodException",
            subcode: Some(33),
            ..GraphError::bad(&message, 100)
        }
        .response();
    }
    let payload = match params.json("payload") {
        None => return GraphError::bad("(#100) The parameter payload is required", 100).response(),
        Some(Err(m)) => return GraphError::bad(&m, 100).response(),
        Some(Ok(p)) => match parse(&p) {
            Ok(p) => p,
            Err(m) => return GraphError::bad(&m, 100).response(),
        },
    };
    let rows = payload.rows.len();
    let mut resp = if rows > config.max_rows {
        let message = format!(
            "(#100) Too many entries in payload: {rows}. The maximum per request is {}",
            config.max_rows
        );
        GraphError::bad(&message, 100).response()
    } else {
        let session = match params.json("session") {
            None => Ok(None),
            Some(Err(m)) => Err(m),
            Some(Ok(v)) => match number(v.get("session_id")) {
                Some(id) => Ok(Some((id, v))),
                None => Err("(#100) session_id must be an integer".into()),
            },
        };
        match session {
            Err(m) => GraphError::bad(&m, 100).response(),
            Ok(session) => {
                let rules = s.rules();
                let mut audiences = s.audiences();
                let audience = audiences.entry(audience_id.clone()).or_default();
                apply(audience, &rules, &audience_id, &payload, session, removing)
            }
        }
    };
    resp.extensions_mut().insert(BatchSize(rows));
    resp
}

fn apply(
    audience: &mut Audience,
    rules: &[Rule],
    audience_id: &str,
    payload: &super::payload::Payload,
    session: Option<(u64, Value)>,
    removing: bool,
) -> Response {
    let checked = check(payload, rules);
    for row in &checked.valid {
        let member: Member = row.iter().cloned().collect();
        if removing {
            audience.remove(&member);
        } else {
            audience.add(member);
        }
    }
    let received = payload.rows.len() as u64;
    let session_id = match session {
        Some((id, fields)) => {
            let pos = audience.sessions.iter().position(|r| r.session_id == id);
            let record = match pos {
                Some(i) => &mut audience.sessions[i],
                None => {
                    audience.sessions.push(SessionRecord {
                        session_id: id,
                        ..SessionRecord::default()
                    });
                    audience.sessions.last_mut().expect("just pushed")
                }
            };
            if let Some(seq) = number(fields.get("batch_seq")) {
                record.batch_seqs.push(seq);
            }
            record.last_batch_received |= flag(fields.get("last_batch_flag"));
            if let Some(total) = number(fields.get("estimated_num_total")) {
                record.estimated_num_total = Some(total);
            }
            record.num_received += received;
            record.num_invalid_entries += checked.invalid as u64;
            id
        }
        None => unique_u64() >> 12,
    };
    let body = json!({
        "audience_id": audience_id,
        "session_id": session_id.to_string(),
        "num_received": received,
        "num_invalid_entries": checked.invalid,
        "invalid_entry_samples": checked.samples,
    });
    (StatusCode::OK, Json(body)).into_response()
}
