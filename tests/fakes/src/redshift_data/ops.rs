//! `POST /` with `X-Amz-Target: RedshiftData.<Operation>`: the four operations a source
//! connector needs (ExecuteStatement, DescribeStatement, GetStatementResult,
//! CancelStatement), with the request members and constraints of the service model.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::errors::{aws_error, not_found, validation};
use super::run::{drive, Job};
use super::sqltext::{literal, substitute, Marker};
use super::state::{locked, RedshiftCall, RsState, Statement, Status};
use super::types::{column_metadata, field};
use crate::util::{unique_u64, uuid_like};

/// Content type of the AWS JSON 1.1 protocol.
const JSON_11: &str = "application/x-amz-json-1.1";

/// The single endpoint: routes on `X-Amz-Target` and records the call.
pub(crate) async fn dispatch(
    State(s): State<Arc<RsState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let target = text("x-amz-target").unwrap_or_default();
    let operation = target
        .strip_prefix("RedshiftData.")
        .unwrap_or("")
        .to_string();
    let content_type = text("content-type");
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
    let resp = match (&parsed, content_type.as_deref()) {
        (_, ct) if ct.is_none_or(|c| !c.starts_with(JSON_11)) => {
            serialization("Unsupported content type; expected application/x-amz-json-1.1")
        }
        (None, _) => serialization("Request body is not a JSON object"),
        (Some(req), _) => match operation.as_str() {
            "ExecuteStatement" => execute(&s, req),
            "DescribeStatement" => with_statement(&s, req, describe),
            "GetStatementResult" => with_statement(&s, req, result_page),
            "CancelStatement" => cancel(&s, req).await,
            _ => aws_error(
                StatusCode::BAD_REQUEST,
                "UnknownOperationException",
                &format!("Unknown operation {target}"),
                Value::Null,
            ),
        },
    };
    locked(&s.calls).push(RedshiftCall {
        operation,
        authorization: text("authorization"),
        content_type,
        body: parsed.map(Value::Object).unwrap_or(Value::Null),
        status: resp.status().as_u16(),
    });
    resp
}

fn serialization(message: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "SerializationException",
        message,
        Value::Null,
    )
}

fn ok(body: Value) -> Response {
    let mut resp = (StatusCode::OK, Json(body)).into_response();
    resp.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static(JSON_11),
    );
    resp
}

/// AWS JSON timestamps: epoch seconds as a number.
fn epoch(t: SystemTime) -> Value {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as f64;
    json!(ms / 1000.0)
}

fn string<'a>(req: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    req.get(key).and_then(Value::as_str)
}

/// The constraint message AWS gives for a member that breaks its model constraint.
fn constraint(member: &str, value: &str, rule: &str) -> Response {
    validation(&format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// Checks the members the model constrains and binds `Parameters`; returns the SQL to run.
fn validate_execute(req: &Map<String, Value>) -> Result<String, Box<Response>> {
    let Some(sql) = string(req, "Sql") else {
        return Err(validation("1 validation error detected: Value null at 'sql' failed to satisfy constraint: Member must not be null").into());
    };
    let (cluster, workgroup) = (
        string(req, "ClusterIdentifier"),
        string(req, "WorkgroupName"),
    );
    if cluster.is_some() == workgroup.is_some() {
        return Err(validation(
            "Either ClusterIdentifier or WorkgroupName must be specified, but not both.",
        )
        .into());
    }
    if string(req, "Database").is_none() && string(req, "SecretArn").is_none() {
        return Err(validation("Database is required.").into());
    }
    // Not modelled: refuse loudly rather than answer as if they had been honoured.
    if string(req, "ResultFormat").is_some_and(|f| f != "JSON") {
        return Err(
            validation("This fake serves ResultFormat JSON (GetStatementResult) only.").into(),
        );
    }
    if req.contains_key("SessionId") || req.contains_key("SessionKeepAliveSeconds") {
        return Err(validation("This fake runs every statement in its own session; SessionId and SessionKeepAliveSeconds are not supported.").into());
    }
    if let Some(token) = string(req, "ClientToken") {
        if token.is_empty() || token.len() > 64 {
            return Err(constraint(
                "clientToken",
                token,
                "Member must have length between 1 and 64",
            )
            .into());
        }
    }
    let mut params = Vec::new();
    for p in req
        .get("Parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(name), Some(value)) = (p["name"].as_str(), p["value"].as_str()) else {
            return Err(validation("1 validation error detected: Value null at 'parameters.member.name' failed to satisfy constraint: Member must not be null").into());
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(constraint(
                "parameters.member.name",
                name,
                "Member must satisfy regular expression pattern: ^[0-9a-zA-Z_]+$",
            )
            .into());
        }
        if value.is_empty() {
            return Err(constraint(
                "parameters.member.value",
                value,
                "Member must have length greater than or equal to 1",
            )
            .into());
        }
        params.push((name.to_string(), value.to_string()));
    }
    substitute(sql, |m| match m {
        Marker::Named(n) => params.iter().find(|(k, _)| k == n).map(|(_, v)| literal(v)),
        Marker::Positional(_) => Some("?".into()),
    })
    .map_err(|name| {
        Box::new(validation(&format!(
            "The parameter :{name} in the SQL statement has no value in Parameters."
        )))
    })
}

/// `ExecuteStatement`: validates, then starts the statement and answers at once.
fn execute(s: &Arc<RsState>, req: &Map<String, Value>) -> Response {
    let bound = match validate_execute(req) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    if let Some(id) =
        string(req, "ClientToken").and_then(|t| locked(&s.client_tokens).get(t).cloned())
    {
        if let Some(st) = s.statements().get(&id) {
            return ok(execute_output(st));
        }
    }
    let config = s.config();
    if take_one(&s.execute_failures) {
        let id = uuid_like();
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ExecuteStatementException",
            "The SQL statement encountered an environmental error while running.",
            json!({"StatementId": id}),
        );
    }
    let mut all = s.statements();
    if all.values().filter(|st| st.status.active()).count() >= config.max_active_statements {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "ActiveStatementsExceededException",
            &format!(
                "Active statements exceeded the allowed quota ({}).",
                config.max_active_statements
            ),
            Value::Null,
        );
    }
    let id = uuid_like();
    let database = string(req, "Database").unwrap_or(&config.database);
    let refuse = (database != config.database)
        .then(|| format!("ERROR: database \"{database}\" does not exist"));
    let now = SystemTime::now();
    let statement = Statement {
        id: id.clone(),
        request: Value::Object(req.clone()),
        sql: string(req, "Sql").unwrap_or_default().to_string(),
        status: Status::Submitted,
        created_at: now,
        updated_at: now,
        started: None,
        duration_ns: None,
        error: None,
        result: None,
        cancel: None,
        pid: None,
        query_id: (unique_u64() % 10_000_000) as i64,
        expires: None,
    };
    let body = execute_output(&statement);
    all.insert(id.clone(), statement);
    drop(all);
    if let Some(token) = string(req, "ClientToken") {
        locked(&s.client_tokens).insert(token.to_string(), id.clone());
    }
    tokio::spawn(drive(
        s.clone(),
        Job {
            id,
            sql: bound,
            refuse,
        },
    ));
    ok(body)
}

/// Decrements `counter` if it is positive; true when it was.
fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering;
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Members of the request that the outputs echo.
const ECHOED: [&str; 5] = [
    "ClusterIdentifier",
    "Database",
    "DbUser",
    "SecretArn",
    "WorkgroupName",
];

fn execute_output(st: &Statement) -> Value {
    let mut out = json!({"Id": st.id, "CreatedAt": epoch(st.created_at)});
    for key in ECHOED {
        if let Some(v) = st.request.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

/// Runs `op` on the statement named by `Id`, or answers the model's errors.
fn with_statement(
    s: &RsState,
    req: &Map<String, Value>,
    op: fn(&Statement, &Map<String, Value>, &RsState) -> Response,
) -> Response {
    let Some(id) = string(req, "Id") else {
        return validation("1 validation error detected: Value null at 'id' failed to satisfy constraint: Member must not be null");
    };
    if !uuid_shaped(id) {
        return constraint("id", id, "Member must satisfy regular expression pattern: ^[a-z0-9]{8}(-[a-z0-9]{4}){3}-[a-z0-9]{12}(:\\d+)?$");
    }
    match s.statements().get(id) {
        Some(st) => op(st, req, s),
        None => not_found("Query does not exist.", id),
    }
}

fn uuid_shaped(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| {
            g.len() == n
                && g.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        })
}

/// `DescribeStatement`.
fn describe(st: &Statement, _req: &Map<String, Value>, _s: &RsState) -> Response {
    let mut out = execute_output(st);
    let finished = st.status == Status::Finished;
    let result = st.result.as_deref();
    let rows = result.map_or(-1, |r| {
        if r.has_result_set() {
            r.rows.len() as i64
        } else {
            r.affected as i64
        }
    });
    let obj = out.as_object_mut().expect("object");
    obj.insert("Status".into(), json!(st.status.as_str()));
    obj.insert("QueryString".into(), json!(st.sql));
    obj.insert("UpdatedAt".into(), epoch(st.updated_at));
    obj.insert("Duration".into(), json!(st.duration_ns.unwrap_or(-1)));
    obj.insert(
        "HasResultSet".into(),
        json!(result.is_some_and(|r| r.has_result_set())),
    );
    obj.insert("ResultRows".into(), json!(if finished { rows } else { -1 }));
    obj.insert(
        "ResultSize".into(),
        json!(result.map_or(-1, |r| r.text_bytes() as i64)),
    );
    obj.insert("RedshiftQueryId".into(), json!(st.query_id));
    obj.insert("ResultFormat".into(), json!("JSON"));
    if let Some(pid) = st.pid {
        obj.insert("RedshiftPid".into(), json!(pid));
    }
    if let Some(params) = st.request.get("Parameters") {
        obj.insert("QueryParameters".into(), params.clone());
    }
    if let Some(e) = &st.error {
        obj.insert("Error".into(), json!(e));
    }
    ok(out)
}

/// `GetStatementResult`: one page of records from `NextToken` on.
fn result_page(st: &Statement, req: &Map<String, Value>, s: &RsState) -> Response {
    let Some(result) = st.result.as_deref().filter(|r| r.has_result_set()) else {
        return not_found(
            "Query does not have result. Please check query status with DescribeStatement.",
            &st.id,
        );
    };
    let start = match string(req, "NextToken") {
        None => 0,
        Some(token) => match decode_token(token, &st.id) {
            Some(offset) => offset,
            None => return validation("The NextToken is invalid."),
        },
    };
    let page = s.config().page_rows.max(1);
    let end = (start + page).min(result.rows.len());
    let records: Vec<Value> = result.rows[start.min(end)..end]
        .iter()
        .map(|row| {
            let fields = row
                .iter()
                .zip(&result.columns)
                .map(|(v, c)| field(&c.ty, v.as_deref()));
            Value::Array(fields.collect())
        })
        .collect();
    let mut out = json!({
        "ColumnMetadata": result.columns.iter().map(column_metadata).collect::<Vec<_>>(),
        "Records": records,
        "TotalNumRows": result.rows.len(),
    });
    if end < result.rows.len() {
        out["NextToken"] = json!(encode_token(&st.id, end));
    }
    ok(out)
}

fn encode_token(id: &str, offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{offset}"))
}

fn decode_token(token: &str, id: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (for_id, offset) = text.rsplit_once(':')?;
    (for_id == id).then(|| offset.parse().ok())?
}

/// `CancelStatement`: sends PostgreSQL a real cancel request for a running statement.
async fn cancel(s: &RsState, req: &Map<String, Value>) -> Response {
    let id = string(req, "Id").unwrap_or_default().to_string();
    let token = {
        let mut all = s.statements();
        let Some(st) = all.get_mut(&id) else {
            return with_statement(s, req, describe);
        };
        if !st.status.active() {
            return validation(&format!(
                "Could not cancel a query that is already in {} state with ID: {id}",
                st.status.as_str()
            ));
        }
        st.set_status(Status::Aborted);
        st.expires = Some(Instant::now() + s.config().result_ttl);
        st.cancel.take()
    };
    if let Some(token) = token {
        let _ = token.cancel_query(tokio_postgres::NoTls).await;
    }
    ok(json!({"Status": true}))
}
