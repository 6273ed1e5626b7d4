//! The Snowflake fake's shared state (sessions, queries, stored result chunks, what was
//! recorded) and how its guard answers throttling (429) and injected 5xx.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio_postgres::CancelToken;

use super::SnowflakeConfig;
use crate::faults::{Faults, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::redshift_data::pg::PgResult;

/// Path prefix of result chunk URLs (the "cloud storage" side).
pub(crate) const CHUNK_PREFIX: &str = "/result-chunks/";

/// `{"data": data, "code": code, "message": message, "success": success}`, HTTP 200.
pub(crate) fn envelope(
    data: Value,
    code: Option<&str>,
    message: Option<&str>,
    success: bool,
) -> Response {
    let body = json!({"data": data, "code": code, "message": message, "success": success});
    (StatusCode::OK, Json(body)).into_response()
}

/// A failed call: `success: false` with a Snowflake error code.
pub(crate) fn failure(code: &str, message: &str) -> Response {
    envelope(Value::Null, Some(code), Some(message), false)
}

/// One logged-in session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub id: i64,
    pub user: String,
    pub token: String,
    pub token_expires: Instant,
    pub master: String,
    pub master_expires: Instant,
    /// Session parameters (upper-case names), from login and `ALTER SESSION`.
    pub params: BTreeMap<String, Value>,
    pub database: String,
    pub schema: String,
    pub warehouse: String,
    pub role: String,
}

/// How a query ended.
pub(crate) enum Outcome {
    Rows(PgResult),
    Error {
        code: String,
        sql_state: String,
        message: String,
    },
}

/// One query, running or done.
pub(crate) struct Query {
    pub session: i64,
    pub request_id: String,
    pub arrow: bool,
    pub cancel: Option<CancelToken>,
    pub cancelled: bool,
    pub outcome: Option<Arc<Outcome>>,
    /// The success response, built once so chunk URLs stay stable across polls.
    pub response: Option<Value>,
}

/// A result chunk stored for download.
pub(crate) struct ChunkFile {
    pub gzipped: Vec<u8>,
    /// Headers the download must carry.
    pub required: BTreeMap<String, String>,
}

/// One `login-request` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct LoginRecord {
    /// `LOGIN_NAME`.
    pub user: String,
    /// `ACCOUNT_NAME`.
    pub account: String,
    /// `AUTHENTICATOR` (absent for passwords).
    pub authenticator: Option<String>,
    /// `SESSION_PARAMETERS` sent.
    pub session_parameters: Value,
    /// Query string parameters (`databaseName`, `schemaName`, `warehouse`, `roleName`, ...).
    pub query: BTreeMap<String, String>,
    /// The error code answered, `None` on success.
    pub code: Option<String>,
}

/// One `query-request` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRecord {
    /// The query id assigned (empty when the request was refused before one was).
    pub query_id: String,
    /// The `requestId` query parameter.
    pub request_id: String,
    /// `sqlText`.
    pub sql: String,
    /// The `QUERY_TAG` in force: the request's `parameters`, else the session's.
    pub query_tag: Option<String>,
    /// The session that ran it.
    pub session_id: i64,
    /// `asyncExec`.
    pub async_exec: bool,
}

pub(crate) struct SfState {
    pub config: Mutex<SnowflakeConfig>,
    pub sessions: Mutex<HashMap<i64, Session>>,
    pub queries: Mutex<HashMap<String, Query>>,
    pub chunks: Mutex<HashMap<String, ChunkFile>>,
    pub logins: Mutex<Vec<LoginRecord>>,
    pub query_log: Mutex<Vec<QueryRecord>>,
    pub base_url: OnceLock<String>,
    pub faults: Faults,
    pub log: RequestLog,
}

pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token of `Authorization: Snowflake Token="<token>"`.
pub(crate) fn snowflake_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let rest = value.trim().strip_prefix("Snowflake Token=")?;
    Some(rest.trim_matches('"').to_string())
}

/// Why a session token was refused.
pub(crate) enum TokenProblem {
    Missing,
    Unknown,
    Expired,
}

impl TokenProblem {
    /// The answer drivers expect (`390112` makes them renew the session).
    pub(crate) fn response(&self) -> Response {
        match self {
            TokenProblem::Missing => {
                let body = json!({"data": null, "code": "390101", "message": "Authorization header not found for the request API.", "success": false});
                (StatusCode::UNAUTHORIZED, Json(body)).into_response()
            }
            TokenProblem::Unknown => failure(
                "390111",
                "Session no longer exists.  New login required to access the service.",
            ),
            TokenProblem::Expired => {
                failure("390112", "Your session has expired. Please login again.")
            }
        }
    }
}

impl SfState {
    pub(crate) fn config(&self) -> SnowflakeConfig {
        locked(&self.config).clone()
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url.get().cloned().unwrap_or_default()
    }

    /// The session a request's session token names.
    pub(crate) fn session_of(&self, headers: &HeaderMap) -> Result<Session, TokenProblem> {
        let token = snowflake_token(headers).ok_or(TokenProblem::Missing)?;
        let sessions = locked(&self.sessions);
        let session = sessions
            .values()
            .find(|s| s.token == token)
            .ok_or(TokenProblem::Unknown)?;
        if session.token_expires <= Instant::now() {
            return Err(TokenProblem::Expired);
        }
        Ok(session.clone())
    }
}

impl Guarded for SfState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    /// Result chunks come from cloud storage, outside the account's faults.
    fn exempt(&self, path: &str) -> bool {
        path.starts_with(CHUNK_PREFIX)
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        (status, "Service Unavailable").into_response()
    }
}
