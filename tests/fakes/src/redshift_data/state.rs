//! The Redshift Data fake's shared state: statements, the calls it recorded, and how its
//! guard answers (SigV4 header required, `ThrottlingException`, `InternalServerException`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use tokio_postgres::CancelToken;

use super::errors::aws_error;
use super::pg::PgResult;
use super::RedshiftDataConfig;
use crate::faults::{Faults, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;

/// A statement's `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Picked,
    Started,
    Finished,
    Failed,
    Aborted,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Picked => "PICKED",
            Status::Started => "STARTED",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
            Status::Aborted => "ABORTED",
        }
    }

    /// SUBMITTED, PICKED and STARTED count against the active-statement quota.
    pub(crate) fn active(self) -> bool {
        matches!(self, Status::Submitted | Status::Picked | Status::Started)
    }
}

/// One statement, as `DescribeStatement` reports it.
pub(crate) struct Statement {
    pub id: String,
    /// The request's members echoed back (`Database`, `ClusterIdentifier`, `DbUser`, ...).
    pub request: Value,
    pub sql: String,
    pub status: Status,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub started: Option<Instant>,
    pub duration_ns: Option<i64>,
    pub error: Option<String>,
    pub result: Option<Arc<PgResult>>,
    pub cancel: Option<CancelToken>,
    pub pid: Option<i32>,
    pub query_id: i64,
    /// When the result (and the statement) stops being retrievable.
    pub expires: Option<Instant>,
}

impl Statement {
    pub(crate) fn set_status(&mut self, status: Status) {
        self.status = status;
        self.updated_at = SystemTime::now();
    }
}

/// One call as the fake received it, for tests to assert what a connector sent.
#[derive(Clone, Debug, PartialEq)]
pub struct RedshiftCall {
    /// Operation from `X-Amz-Target` (`ExecuteStatement`, ...).
    pub operation: String,
    /// The `Authorization` header (a SigV4 header from a real SDK).
    pub authorization: Option<String>,
    /// `Content-Type` sent.
    pub content_type: Option<String>,
    /// The JSON body.
    pub body: Value,
    /// Status answered.
    pub status: u16,
}

pub(crate) struct RsState {
    pub config: Mutex<RedshiftDataConfig>,
    pub statements: Mutex<HashMap<String, Statement>>,
    /// `ClientToken` → statement id, for idempotent retries.
    pub client_tokens: Mutex<HashMap<String, String>>,
    pub calls: Mutex<Vec<RedshiftCall>>,
    /// The next N `ExecuteStatement` calls fail with `ExecuteStatementException`.
    pub execute_failures: std::sync::atomic::AtomicU32,
    pub faults: Faults,
    pub log: RequestLog,
}

pub(crate) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RsState {
    pub(crate) fn config(&self) -> RedshiftDataConfig {
        locked(&self.config).clone()
    }

    pub(crate) fn statements(&self) -> MutexGuard<'_, HashMap<String, Statement>> {
        let mut all = locked(&self.statements);
        let now = Instant::now();
        all.retain(|_, s| s.expires.is_none_or(|e| now < e));
        all
    }
}

/// Whether `value` looks like a SigV4 `Authorization` header (not verified: any signature
/// from any key passes, as the fake holds no AWS secrets).
fn sigv4_shaped(value: &str) -> bool {
    value.starts_with("AWS4-HMAC-SHA256 ")
        && ["Credential=", "SignedHeaders=", "Signature="]
            .iter()
            .all(|part| value.contains(part))
}

impl Guarded for RsState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    /// AWS answers an unsigned request `MissingAuthenticationTokenException` and a malformed
    /// signature header `IncompleteSignatureException`, both 400, before the operation runs.
    fn refuse(&self, req: &Request) -> Option<Response> {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match auth {
            None => Some(aws_error(
                StatusCode::BAD_REQUEST,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
                Value::Null,
            )),
            Some(v) if !sigv4_shaped(v) => Some(aws_error(
                StatusCode::BAD_REQUEST,
                "IncompleteSignatureException",
                &format!("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={v}"),
                Value::Null,
            )),
            Some(_) => None,
        }
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        aws_error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
            json!({}),
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        aws_error(
            status,
            "InternalServerException",
            "Internal server error",
            Value::Null,
        )
    }
}
