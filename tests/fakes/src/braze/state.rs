//! The Braze fake's shared state and how its guard answers: REST API key check, per-endpoint
//! rate-limit buckets, 429 and the `X-RateLimit-*` headers
//! (<https://www.braze.com/docs/api/api_limits/>, <https://www.braze.com/docs/api/errors/>).

use std::sync::{Mutex, MutexGuard};

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::users::Users;
use super::BrazeConfig;
use crate::faults::{Faults, RateInfo, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::util::bearer;

/// Rate-limit bucket of `/users/track`.
pub(crate) const TRACK_BUCKET: &str = "users/track";
/// Rate-limit bucket shared by `/users/delete` (and alias/identify/merge).
pub(crate) const DELETE_BUCKET: &str = "users/delete";

pub(crate) struct BrState {
    pub config: Mutex<BrazeConfig>,
    pub users: Mutex<Users>,
    pub faults: Faults,
    pub log: RequestLog,
}

impl BrState {
    pub(crate) fn config(&self) -> BrazeConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn users(&self) -> MutexGuard<'_, Users> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `{"message": message}` with `status`, Braze's fatal-error shape.
pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"message": text}))).into_response()
}

impl Guarded for BrState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn bucket(&self, _method: &Method, path: &str) -> Option<&'static str> {
        match path {
            "/users/track" => Some(TRACK_BUCKET),
            "/users/delete" => Some(DELETE_BUCKET),
            _ => None,
        }
    }

    fn refuse(&self, req: &Request) -> Option<Response> {
        match bearer(req.headers()) {
            Some(key) if key == self.config().api_key => None,
            _ => Some(message(StatusCode::UNAUTHORIZED, "Invalid API Key")),
        }
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        message(StatusCode::TOO_MANY_REQUESTS, "Rate Limited")
    }

    fn server_error(&self, status: StatusCode) -> Response {
        message(status, "Internal Server Error")
    }

    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (UTC epoch seconds) on every answer.
    fn decorate(&self, info: Option<&RateInfo>, resp: &mut Response) {
        let Some(info) = info else {
            return;
        };
        let headers = resp.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(info.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(info.remaining));
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from(info.reset_epoch_secs()),
        );
    }
}
