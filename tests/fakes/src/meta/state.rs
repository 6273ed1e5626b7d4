//! The Meta fake's shared state, the Graph error envelope, and how its guard answers:
//! throttling as HTTP 400 with a throttling `code`, and `X-Business-Use-Case-Usage`
//! (<https://developers.facebook.com/docs/graph-api/guides/error-handling>,
//! <https://developers.facebook.com/docs/graph-api/overview/rate-limiting>).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{MetaConfig, SessionRecord};
use crate::faults::{Faults, RateInfo, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::util::alnum;

/// Membership and upload sessions of one audience.
#[derive(Debug, Default)]
pub(crate) struct Audience {
    pub members: BTreeMap<String, BTreeSet<String>>,
    pub sessions: Vec<SessionRecord>,
}

pub(crate) struct MtState {
    pub config: Mutex<MetaConfig>,
    pub audiences: Mutex<BTreeMap<String, Audience>>,
    pub faults: Faults,
    pub log: RequestLog,
}

impl MtState {
    pub(crate) fn config(&self) -> MetaConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn audiences(&self) -> MutexGuard<'_, BTreeMap<String, Audience>> {
        self.audiences.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One Graph error answer.
pub(crate) struct GraphError<'a> {
    pub status: StatusCode,
    pub message: &'a str,
    pub kind: &'a str,
    pub code: u32,
    pub subcode: Option<u32>,
    pub transient: bool,
}

impl GraphError<'_> {
    /// 400 `OAuthException` with `code` (most errors of this API).
    pub(crate) fn bad(message: &str, code: u32) -> GraphError<'_> {
        GraphError {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "OAuthException",
            code,
            subcode: None,
            transient: false,
        }
    }

    /// `{"error": {message, type, code, error_subcode?, is_transient, fbtrace_id}}`.
    pub(crate) fn response(&self) -> Response {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "is_transient": self.transient,
            "fbtrace_id": alnum(11),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = json!(sub);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl Guarded for MtState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        let t = self.config().throttle;
        GraphError {
            status: StatusCode::BAD_REQUEST,
            message: &t.message,
            kind: "OAuthException",
            code: t.code,
            subcode: t.subcode,
            transient: true,
        }
        .response()
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
            (2, "Service temporarily unavailable")
        } else {
            (1, "An unknown error occurred")
        };
        GraphError {
            status,
            message,
            kind: "OAuthException",
            code,
            subcode: None,
            transient: true,
        }
        .response()
    }

    /// `X-Business-Use-Case-Usage: {"<ad account>": [{"type": "custom_audience",
    /// "call_count": %, "total_cputime": %, "total_time": %, "estimated_time_to_regain_access": min}]}`.
    fn decorate(&self, info: Option<&RateInfo>, resp: &mut Response) {
        let Some(info) = info else {
            return;
        };
        let used = u64::from(info.limit - info.remaining);
        let pct = (used * 100)
            .checked_div(u64::from(info.limit))
            .unwrap_or(100);
        let regain = if info.remaining == 0 {
            info.reset_in.as_secs().div_ceil(60)
        } else {
            0
        };
        let usage = json!({
            self.config().ad_account_id: [{
                "type": "custom_audience",
                "call_count": pct,
                "total_cputime": pct,
                "total_time": pct,
                "estimated_time_to_regain_access": regain,
            }]
        });
        if let Ok(v) = HeaderValue::from_str(&usage.to_string()) {
            resp.headers_mut().insert("x-business-use-case-usage", v);
        }
    }
}
