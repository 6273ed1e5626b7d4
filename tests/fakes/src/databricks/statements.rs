//! `POST /api/2.0/sql/statements`, `GET .../{statement_id}`,
//! `GET .../{statement_id}/result/chunks/{chunk_index}`, `POST .../{statement_id}/cancel`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::exec::{drive, Job};
use super::formats::Format;
use super::render::{chunk_data, statement_response, DEFAULT_WAIT};
use super::state::{api_error, invalid, DbxState, Stmt, StmtError, StmtState};
use super::types::parameter_cast;
use crate::redshift_data::sqltext::{literal, substitute, Marker};
use crate::util::uuid_like;

/// A validated execute request.
struct Request {
    job: Job,
    format: Format,
    external: bool,
    wait: Duration,
    cancel_on_timeout: bool,
}

fn auth(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization").and_then(|v| v.to_str().ok())
}

/// `wait_timeout`: `0s`, or 5 to 50 seconds.
fn wait_timeout(v: Option<&Value>) -> Result<Duration, Box<Response>> {
    let Some(text) = v.and_then(Value::as_str) else {
        return if v.is_none() {
            Ok(DEFAULT_WAIT)
        } else {
            Err(invalid("wait_timeout must be a string such as \"10s\"").into())
        };
    };
    let secs: Option<u64> = text.strip_suffix('s').and_then(|n| n.parse().ok());
    match secs {
        Some(n) if n == 0 || (5..=50).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(invalid(&format!("wait_timeout must be 0 seconds (disables wait), or between 5 seconds and 50 seconds; got {text}")).into()),
    }
}

fn positive(req: &Map<String, Value>, key: &str) -> Result<Option<usize>, Box<Response>> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n as usize)),
            _ => Err(invalid(&format!("{key} must be a positive integer")).into()),
        },
    }
}

/// Binds `parameters` (`[{name, value, type}]`) to `:name` markers as typed literals.
fn bind(
    statement: &str,
    req: &Map<String, Value>,
) -> Result<Result<String, StmtError>, Box<Response>> {
    let mut params = Vec::new();
    for p in req
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = p["name"].as_str() else {
            return Err(invalid("parameters[].name is required").into());
        };
        let ty = p["type"].as_str().unwrap_or("STRING");
        let Some(cast) = parameter_cast(ty) else {
            return Err(invalid(&format!(
                "Unsupported parameter type {ty} for parameter {name}"
            ))
            .into());
        };
        let value = match p.get("value").and_then(Value::as_str) {
            Some(v) => format!("CAST({} AS {cast})", literal(v)),
            None => format!("CAST(NULL AS {cast})"),
        };
        params.push((name.to_string(), value));
    }
    Ok(substitute(statement, |m| match m {
        Marker::Named(n) => params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
        Marker::Positional(_) => Some("?".into()),
    })
    .map_err(|name| StmtError {
        code: "BAD_REQUEST",
        message: format!("[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}. Please fix `args` and provide a mapping of the parameter to either a SQL literal or collection constructor functions. SQLSTATE: 42P02"),
        sql_state: Some("42P02".into()),
    }))
}

fn parse(s: &DbxState, id: &str, req: &Map<String, Value>) -> Result<Request, Box<Response>> {
    let Some(statement) = req.get("statement").and_then(Value::as_str) else {
        return Err(invalid("statement is required").into());
    };
    let Some(warehouse) = req.get("warehouse_id").and_then(Value::as_str) else {
        return Err(invalid("warehouse_id is required").into());
    };
    if s.config()
        .warehouses
        .is_some_and(|known| !known.iter().any(|w| w == warehouse))
    {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            &format!("Warehouse {warehouse} does not exist."),
        )
        .into());
    }
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let format = match text("format") {
        None => Format::JsonArray,
        Some(f) => Format::parse(f).ok_or_else(|| invalid(&format!("Unknown format {f}")))?,
    };
    let external = match text("disposition") {
        None | Some("INLINE") => false,
        Some("EXTERNAL_LINKS") => true,
        Some(d) => return Err(invalid(&format!("Unknown disposition {d}")).into()),
    };
    if !external && format != Format::JsonArray {
        return Err(invalid(&format!(
            "{} format is only supported with EXTERNAL_LINKS disposition",
            format.as_str()
        ))
        .into());
    }
    let cancel_on_timeout = match text("on_wait_timeout") {
        None | Some("CONTINUE") => false,
        Some("CANCEL") => true,
        Some(o) => return Err(invalid(&format!("Unknown on_wait_timeout {o}")).into()),
    };
    let wait = wait_timeout(req.get("wait_timeout"))?;
    let setup = text("schema")
        .map(|sc| format!("SET search_path TO \"{}\"", sc.replace('"', "\"\"")))
        .into_iter()
        .collect();
    let job = Job {
        id: id.to_string(),
        sql: bind(statement, req)?,
        setup,
        row_limit: positive(req, "row_limit")?,
        byte_limit: positive(req, "byte_limit")?,
    };
    Ok(Request {
        job,
        format,
        external,
        wait,
        cancel_on_timeout,
    })
}

/// `POST /api/2.0/sql/statements`.
pub(crate) async fn execute(
    State(s): State<Arc<DbxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
    s.record(
        "POST",
        "/api/2.0/sql/statements",
        auth(&headers),
        parsed.clone().map(Value::Object).unwrap_or(Value::Null),
    );
    let Some(req) = parsed else {
        return invalid("Request body must be a JSON object");
    };
    let id = uuid_like();
    let request = match parse(&s, &id, &req) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    s.statements().insert(
        id.clone(),
        Stmt {
            state: StmtState::Pending,
            format: request.format,
            external: request.external,
            error: None,
            result: None,
            cancel: None,
            closes: None,
        },
    );
    tokio::spawn(drive(s.clone(), request.job));
    let deadline = Instant::now() + request.wait;
    while Instant::now() < deadline
        && s.statements()
            .get(&id)
            .is_some_and(|st| !st.state.terminal())
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if request.cancel_on_timeout && !request.wait.is_zero() {
        cancel_statement(&s, &id).await;
    }
    respond(&s, &id)
}

fn respond(s: &DbxState, id: &str) -> Response {
    match s.statements().get(id) {
        Some(st) => (StatusCode::OK, Json(statement_response(s, id, st))).into_response(),
        None => not_found(id),
    }
}

fn not_found(id: &str) -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("The statement {id} was not found."),
    )
}

/// `GET /api/2.0/sql/statements/{statement_id}`.
pub(crate) async fn get(
    State(s): State<Arc<DbxState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.record(
        "GET",
        &format!("/api/2.0/sql/statements/{id}"),
        auth(&headers),
        Value::Null,
    );
    respond(&s, &id)
}

/// `GET /api/2.0/sql/statements/{statement_id}/result/chunks/{chunk_index}`.
pub(crate) async fn chunk(
    State(s): State<Arc<DbxState>>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    s.record(
        "GET",
        &format!("/api/2.0/sql/statements/{id}/result/chunks/{index}"),
        auth(&headers),
        Value::Null,
    );
    let all = s.statements();
    let Some(st) = all.get(&id) else {
        return not_found(&id);
    };
    let Some(result) = st.result.clone() else {
        return invalid(&format!(
            "The statement {id} has no result to fetch; its state is {}.",
            st.state.as_str()
        ));
    };
    match index.parse::<usize>() {
        Ok(i) if i < result.chunks.len() => {
            (StatusCode::OK, Json(chunk_data(&s, &id, st, &result, i))).into_response()
        }
        _ => invalid(&format!(
            "chunk_index {index} is out of range: the result has {} chunks.",
            result.chunks.len()
        )),
    }
}

/// `POST /api/2.0/sql/statements/{statement_id}/cancel`: empty answer, state CANCELED.
pub(crate) async fn cancel(
    State(s): State<Arc<DbxState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.record(
        "POST",
        &format!("/api/2.0/sql/statements/{id}/cancel"),
        auth(&headers),
        Value::Null,
    );
    if !s.statements().contains_key(&id) {
        return not_found(&id);
    }
    cancel_statement(&s, &id).await;
    (StatusCode::OK, Json(json!({}))).into_response()
}

/// Cancels a statement that has not ended, including its PostgreSQL query.
async fn cancel_statement(s: &DbxState, id: &str) {
    let token = {
        let mut all = s.statements();
        match all.get_mut(id) {
            Some(st) if !st.state.terminal() => {
                st.state = StmtState::Canceled;
                st.cancel.take()
            }
            _ => return,
        }
    };
    if let Some(token) = token {
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
    }
}
