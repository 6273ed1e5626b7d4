//! `POST /queries/v1/query-request`, `GET /queries/{queryId}/result`,
//! `GET /monitoring/queries/{queryId}`, `POST /queries/v1/abort-request` (and the drivers'
//! `POST /telemetry/send`, accepted).
//!
//! A synchronous query the server cannot finish within [`super::SnowflakeConfig::sync_wait`]
//! (45 s in production) answers `333333` with `getResultUrl`; `asyncExec: true` answers
//! `333334` at once. Polling `getResultUrl` holds the request up to the same wait and then
//! answers the result, or `333333` again. `abort-request` names the query by the
//! `requestId` of its query request; the PostgreSQL query is cancelled and the query ends
//! with `000604` "SQL execution canceled".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::body::json_body;
use super::result::success_data;
use super::session::{apply, bind, parse_alter_session};
use super::state::{envelope, failure, locked, Outcome, Query, QueryRecord, Session, SfState};
use crate::redshift_data::pg::{self, PgError, PgResult};
use crate::util::uuid_like;

/// `true` when the request or the session asks for Arrow results.
fn wants_arrow(s: &SfState, request: &Map<String, Value>, session: &Session) -> bool {
    let from = |params: Option<&Map<String, Value>>| {
        params?
            .iter()
            .find(|(k, _)| k.to_ascii_uppercase().ends_with("QUERY_RESULT_FORMAT"))
            .and_then(|(_, v)| v.as_str().map(str::to_ascii_uppercase))
    };
    let session_params: Map<String, Value> = session.params.clone().into_iter().collect();
    match from(request.get("parameters").and_then(Value::as_object))
        .or_else(|| from(Some(&session_params)))
    {
        Some(f) => f == "ARROW",
        None => s.config().result_format == super::ResultFormat::Arrow,
    }
}

/// `(code, sqlState, message)` of a PostgreSQL failure, in Snowflake's terms.
fn sql_failure(e: &PgError) -> (String, String, String) {
    let compile = |m: &str| format!("SQL compilation error:\n{m}");
    let (code, state, message) = match e {
        PgError::Canceled => (
            "000604",
            "57014".to_string(),
            "SQL execution canceled".to_string(),
        ),
        PgError::Sql { code, message } => match code.as_str() {
            "42601" => ("001003", "42000".to_string(), compile(message)),
            "42P01" => ("002003", "42S02".to_string(), compile(message)),
            "42703" => ("000904", "42000".to_string(), compile(message)),
            c if c.starts_with("42") => ("002043", "42000".to_string(), compile(message)),
            "22012" => (
                "100051",
                "22012".to_string(),
                "Division by zero".to_string(),
            ),
            c => ("100038", c.to_string(), message.clone()),
        },
        PgError::Connect(m) => (
            "000603",
            "XX000".to_string(),
            format!("SQL execution internal error: {m}"),
        ),
    };
    (code.to_string(), state, message)
}

/// Runs `sql` and stores its outcome; meant to be spawned.
async fn run(s: Arc<SfState>, id: String, sql: String, setup: Vec<String>) {
    let url = s.config().postgres_url;
    let outcome = match pg::start(&url, &setup, sql).await {
        Err(e) => Err(e),
        Ok(running) => {
            let proceed = match locked(&s.queries).get_mut(&id) {
                Some(q) if !q.cancelled => {
                    q.cancel = Some(running.cancel.clone());
                    true
                }
                _ => false,
            };
            if !proceed {
                running.done.abort();
                let _ = running.cancel.cancel_query(tokio_postgres::NoTls).await;
                Err(PgError::Canceled)
            } else {
                running
                    .done
                    .await
                    .unwrap_or_else(|e| Err(PgError::Connect(e.to_string())))
            }
        }
    };
    let outcome = match outcome {
        Ok(rows) => Outcome::Rows(rows),
        Err(e) => {
            let (code, sql_state, message) = sql_failure(&e);
            Outcome::Error {
                code,
                sql_state,
                message,
            }
        }
    };
    if let Some(q) = locked(&s.queries).get_mut(&id) {
        q.cancel = None;
        q.outcome = Some(Arc::new(outcome));
    }
}

/// Waits up to `wait` for query `id` to end; true when it has.
async fn wait_done(s: &SfState, id: &str, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if locked(&s.queries)
            .get(id)
            .is_none_or(|q| q.outcome.is_some())
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn in_progress(id: &str, code: &str, message: &str) -> Response {
    let data = json!({"queryId": id, "getResultUrl": format!("/queries/{id}/result"), "queryAbortsAfterSecs": 300, "progressDesc": null});
    envelope(data, Some(code), Some(message), true)
}

const RUNNING: &str = "Query execution in progress. Query will be aborted unless request for result is received within 300 seconds.";

/// The answer for a query that ended (or is still running), building the result once.
fn respond(s: &SfState, session: &Session, id: &str, sql: &str) -> Response {
    let mut queries = locked(&s.queries);
    let Some(q) = queries.get_mut(id) else {
        return failure("000709", &format!("Statement {id} not found"));
    };
    if let Some(cached) = &q.response {
        return envelope(cached.clone(), None, None, true);
    }
    let Some(outcome) = q.outcome.clone() else {
        return in_progress(id, "333333", RUNNING);
    };
    let arrow = q.arrow;
    drop(queries);
    match outcome.as_ref() {
        Outcome::Error {
            code,
            sql_state,
            message,
        } => {
            let data = json!({"internalError": false, "errorCode": code, "age": 0, "sqlState": sql_state, "queryId": id, "line": -1, "pos": -1, "type": "COMPILATION"});
            envelope(data, Some(code), Some(message), false)
        }
        Outcome::Rows(result) => {
            let data = success_data(s, session, id, sql, result.clone(), arrow);
            if let Some(q) = locked(&s.queries).get_mut(id) {
                q.response = Some(data.clone());
            }
            envelope(data, None, None, true)
        }
    }
}

/// Records the request and answers `ALTER SESSION` in place; `Err` carries the answer for
/// requests that end here.
fn prepare(
    s: &SfState,
    session: &Session,
    req: &Map<String, Value>,
    record: &mut QueryRecord,
) -> Result<String, Box<Response>> {
    let tag_of = |params: Option<&Map<String, Value>>| {
        params?
            .get("QUERY_TAG")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let session_tag = session
        .params
        .get("QUERY_TAG")
        .and_then(Value::as_str)
        .map(str::to_string);
    record.query_tag = tag_of(req.get("parameters").and_then(Value::as_object)).or(session_tag);
    if record.sql.trim().is_empty() {
        return Err(failure("000900", "SQL compilation error:\nEmpty SQL statement.").into());
    }
    if let Some(alter) = parse_alter_session(&record.sql) {
        if let Some(live) = locked(&s.sessions).get_mut(&session.id) {
            apply(&mut live.params, alter);
        }
        return Err(alter_done(s, session, record).into());
    }
    bind(&record.sql, req.get("bindings").and_then(Value::as_object)).map_err(|n| {
        Box::new(failure(
            "002049",
            &format!(
                "SQL compilation error: error line 0 at position 0\nBind variable {n} not set."
            ),
        ))
    })
}

/// The answer to `ALTER SESSION`: one `status` row.
fn alter_done(s: &SfState, session: &Session, record: &mut QueryRecord) -> Response {
    record.query_id = uuid_like();
    let live = locked(&s.sessions)
        .get(&session.id)
        .cloned()
        .unwrap_or_else(|| session.clone());
    let data = success_data(
        s,
        &live,
        &record.query_id,
        "ALTER",
        PgResult::default(),
        false,
    );
    envelope(data, None, None, true)
}

/// `POST /queries/v1/query-request?requestId=...`.
pub(crate) async fn query_request(
    State(s): State<Arc<SfState>>,
    UrlQuery(q): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match s.session_of(&headers) {
        Ok(x) => x,
        Err(problem) => return problem.response(),
    };
    let req = json_body(&headers, &body)
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut record = QueryRecord {
        query_id: String::new(),
        request_id: q.get("requestId").cloned().unwrap_or_default(),
        sql: req
            .get("sqlText")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        query_tag: None,
        session_id: session.id,
        async_exec: req
            .get("asyncExec")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let bound = prepare(&s, &session, &req, &mut record);
    let sql = match bound {
        Ok(sql) => sql,
        Err(resp) => {
            locked(&s.query_log).push(record);
            return *resp;
        }
    };
    let id = uuid_like();
    record.query_id = id.clone();
    let arrow = wants_arrow(&s, &req, &session);
    locked(&s.queries).insert(
        id.clone(),
        Query {
            session: session.id,
            request_id: record.request_id.clone(),
            arrow,
            cancel: None,
            cancelled: false,
            outcome: None,
            response: None,
        },
    );
    let (async_exec, original) = (record.async_exec, record.sql.clone());
    locked(&s.query_log).push(record);
    let setup = vec![format!(
        "SET search_path TO \"{}\"",
        session.schema.to_ascii_lowercase().replace('"', "\"\"")
    )];
    tokio::spawn(run(s.clone(), id.clone(), sql, setup));
    if async_exec {
        return in_progress(&id, "333334", "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.");
    }
    wait_done(&s, &id, s.config().sync_wait).await;
    respond(&s, &session, &id, &original)
}

/// `GET /queries/{queryId}/result`.
pub(crate) async fn result(
    State(s): State<Arc<SfState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match s.session_of(&headers) {
        Ok(x) => x,
        Err(problem) => return problem.response(),
    };
    wait_done(&s, &id, s.config().sync_wait).await;
    let sql = locked(&s.query_log)
        .iter()
        .find(|r| r.query_id == id)
        .map(|r| r.sql.clone())
        .unwrap_or_default();
    respond(&s, &session, &id, &sql)
}

/// `POST /queries/v1/abort-request` with `{"requestId": "<the query request's requestId>"}`.
pub(crate) async fn abort(
    State(s): State<Arc<SfState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = match s.session_of(&headers) {
        Ok(x) => x,
        Err(problem) => return problem.response(),
    };
    let req = json_body(&headers, &body).unwrap_or(Value::Null);
    let request_id = req["requestId"].as_str().unwrap_or_default();
    let token = {
        let mut queries = locked(&s.queries);
        let running = queries.values_mut().find(|q| {
            q.session == session.id
                && q.request_id == request_id
                && q.outcome.is_none()
                && !q.cancelled
        });
        let Some(q) = running else {
            return failure(
                "000605",
                "Identified SQL statement is not currently executing.",
            );
        };
        q.cancelled = true;
        q.cancel.take()
    };
    if let Some(t) = token {
        let _ = t.cancel_query(tokio_postgres::NoTls).await;
    }
    envelope(Value::Null, None, None, true)
}

/// `GET /monitoring/queries/{queryId}`: `{"data": {"queries": [{"id", "status", "sqlText",
/// "errorCode", "errorMessage", ...}]}}` with gosnowflake's `monitoring.go` statuses
/// (RUNNING, SUCCESS, FAILED_WITH_ERROR; a cancelled query is FAILED_WITH_ERROR 000604).
pub(crate) async fn monitoring(
    State(s): State<Arc<SfState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(problem) = s.session_of(&headers) {
        return problem.response();
    }
    let sql = locked(&s.query_log)
        .iter()
        .find(|r| r.query_id == id)
        .map(|r| r.sql.clone());
    let queries = locked(&s.queries);
    let (Some(q), Some(sql)) = (queries.get(&id), sql) else {
        return envelope(json!({"queries": []}), None, None, true);
    };
    let mut entry = json!({"id": id, "status": "RUNNING", "sqlText": sql, "startTime": 0, "endTime": 0, "errorCode": "", "errorMessage": "", "stats": {"scanBytes": 0, "producedRows": 0}});
    match q.outcome.as_deref() {
        None => {}
        Some(Outcome::Rows(r)) => {
            entry["status"] = json!("SUCCESS");
            entry["stats"]["producedRows"] = json!(r.rows.len());
        }
        Some(Outcome::Error { code, message, .. }) => {
            entry["status"] = json!("FAILED_WITH_ERROR");
            entry["errorCode"] = json!(code);
            entry["errorMessage"] = json!(message);
        }
    }
    envelope(json!({"queries": [entry]}), None, None, true)
}

/// `POST /telemetry/send`: the drivers' telemetry batches, accepted and dropped.
pub(crate) async fn telemetry() -> Response {
    envelope(Value::Null, None, None, true)
}
