//! The Databricks fake's shared state (statements, tokens, external links, recorded calls)
//! and how its guard answers: bearer token on `/api/`, none on the external links, 429
//! `REQUEST_LIMIT_EXCEEDED`, 503 `TEMPORARILY_UNAVAILABLE`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio_postgres::CancelToken;

use super::formats::{Columns, Format};
use super::DatabricksConfig;
use crate::faults::{Faults, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::util::bearer;

/// Path prefix of the pre-signed-style result links (the "cloud storage" side).
pub(crate) const LINK_PREFIX: &str = "/external-results/";

/// `{"error_code": code, "message": message}` with `status`.
pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

/// 400 `INVALID_PARAMETER_VALUE`.
pub(crate) fn invalid(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
}

/// A statement's `status.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StmtState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Canceled,
    Closed,
}

impl StmtState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StmtState::Pending => "PENDING",
            StmtState::Running => "RUNNING",
            StmtState::Succeeded => "SUCCEEDED",
            StmtState::Failed => "FAILED",
            StmtState::Canceled => "CANCELED",
            StmtState::Closed => "CLOSED",
        }
    }

    pub(crate) fn terminal(self) -> bool {
        !matches!(self, StmtState::Pending | StmtState::Running)
    }
}

/// A finished result split into chunks.
pub(crate) struct Chunked {
    pub columns: Columns,
    pub rows: Vec<Vec<Option<String>>>,
    /// `(row_offset, row_count)` of each chunk.
    pub chunks: Vec<(usize, usize)>,
    /// Each chunk's bytes in the requested format (EXTERNAL_LINKS only).
    pub bodies: Vec<Vec<u8>>,
    pub truncated: bool,
}

/// A failed statement's `status.error` and `status.sql_state`.
#[derive(Clone, Debug)]
pub(crate) struct StmtError {
    pub code: &'static str,
    pub message: String,
    pub sql_state: Option<String>,
}

/// One statement.
pub(crate) struct Stmt {
    pub state: StmtState,
    pub format: Format,
    pub external: bool,
    pub error: Option<StmtError>,
    pub result: Option<Arc<Chunked>>,
    pub cancel: Option<CancelToken>,
    /// When a finished statement becomes CLOSED.
    pub closes: Option<Instant>,
}

/// One API call as received, for tests to assert what a connector sent.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabricksCall {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// The `Authorization` header sent.
    pub authorization: Option<String>,
    /// The JSON body (form fields as an object for the token endpoint), `Null` if none.
    pub body: Value,
}

/// An external link's target and validity.
pub(crate) struct Link {
    pub statement: String,
    pub chunk: usize,
    pub expires: Instant,
}

pub(crate) struct DbxState {
    pub config: Mutex<DatabricksConfig>,
    pub statements: Mutex<HashMap<String, Stmt>>,
    pub links: Mutex<HashMap<String, Link>>,
    /// OAuth access tokens and their expiry.
    pub oauth_tokens: Mutex<HashMap<String, Instant>>,
    pub calls: Mutex<Vec<DatabricksCall>>,
    pub base_url: std::sync::OnceLock<String>,
    pub faults: Faults,
    pub log: RequestLog,
}

pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DbxState {
    pub(crate) fn config(&self) -> DatabricksConfig {
        locked(&self.config).clone()
    }

    /// The statements, with those past their result lifetime moved to CLOSED.
    pub(crate) fn statements(&self) -> MutexGuard<'_, HashMap<String, Stmt>> {
        let mut all = locked(&self.statements);
        let now = Instant::now();
        for st in all.values_mut() {
            if st.state == StmtState::Succeeded && st.closes.is_some_and(|c| c <= now) {
                st.state = StmtState::Closed;
                st.result = None;
            }
        }
        all
    }

    pub(crate) fn record(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Value,
    ) {
        locked(&self.calls).push(DatabricksCall {
            method: method.to_string(),
            path: path.to_string(),
            authorization: authorization.map(str::to_string),
            body,
        });
    }

    fn token_valid(&self, token: &str) -> bool {
        locked(&self.config).tokens.iter().any(|t| t == token)
            || locked(&self.oauth_tokens)
                .get(token)
                .is_some_and(|exp| Instant::now() < *exp)
    }
}

impl Guarded for DbxState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    /// The links model cloud storage, which the workspace's fault plan does not reach.
    fn exempt(&self, path: &str) -> bool {
        path.starts_with(LINK_PREFIX)
    }

    fn refuse(&self, req: &Request) -> Option<Response> {
        if !req.uri().path().starts_with("/api/") {
            return None;
        }
        match bearer(req.headers()) {
            None => Some(api_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            )),
            Some(t) if self.token_valid(t) => None,
            Some(_) => Some(api_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Invalid access token.",
            )),
        }
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "REQUEST_LIMIT_EXCEEDED",
            "The request was rejected because of a rate limit. Retry after the time in Retry-After.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "TEMPORARILY_UNAVAILABLE"
        } else {
            "INTERNAL_ERROR"
        };
        api_error(
            status,
            code,
            "The service is temporarily unavailable. Please retry.",
        )
    }
}
