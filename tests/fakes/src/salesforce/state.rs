//! The Salesforce fake's shared state and how its guard answers: access-token check on the
//! REST API (not on the login endpoint), 403 `REQUEST_LIMIT_EXCEEDED` as the throttled
//! answer, and the `Sforce-Limit-Info` header.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::bulk::Job;
use super::errors::{invalid_session, rest_error};
use super::org::Org;
use super::query::Cursor;
use super::SalesforceConfig;
use crate::faults::{Faults, RateInfo, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::util::{alnum, bearer};

/// Path of the OAuth token endpoint (on the login host in production).
pub(crate) const TOKEN_PATH: &str = "/services/oauth2/token";

pub(crate) struct SfState {
    pub config: Mutex<SalesforceConfig>,
    pub org: Mutex<Org>,
    pub jobs: Mutex<BTreeMap<String, Job>>,
    pub cursors: Mutex<HashMap<String, Cursor>>,
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub tokens_issued: AtomicU64,
    pub next_job: AtomicU64,
    pub base_url: OnceLock<String>,
    pub faults: Faults,
    pub log: RequestLog,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SfState {
    pub(crate) fn config(&self) -> SalesforceConfig {
        locked(&self.config).clone()
    }

    pub(crate) fn org(&self) -> MutexGuard<'_, Org> {
        locked(&self.org)
    }

    pub(crate) fn jobs(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        locked(&self.jobs)
    }

    pub(crate) fn cursors(&self) -> MutexGuard<'_, HashMap<String, Cursor>> {
        locked(&self.cursors)
    }

    pub(crate) fn base_url(&self) -> String {
        self.base_url.get().cloned().unwrap_or_default()
    }

    /// Mints an access token valid for the configured TTL.
    pub(crate) fn issue_token(&self) -> String {
        let config = self.config();
        let token = format!("{}!{}", config.org_id, alnum(96));
        locked(&self.tokens).insert(token.clone(), Instant::now() + config.token_ttl);
        self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        token
    }

    pub(crate) fn token_valid(&self, token: &str) -> bool {
        locked(&self.tokens)
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    pub(crate) fn expire_tokens(&self) {
        let now = Instant::now();
        for expiry in locked(&self.tokens).values_mut() {
            *expiry = now;
        }
    }
}

impl Guarded for SfState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    /// Faults model the instance (REST API) host; the login host answers normally.
    fn exempt(&self, path: &str) -> bool {
        path == TOKEN_PATH
    }

    fn refuse(&self, req: &Request) -> Option<Response> {
        match bearer(req.headers()) {
            Some(token) if self.token_valid(token) => None,
            _ => Some(invalid_session()),
        }
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        rest_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "SERVER_UNAVAILABLE"
        } else {
            "UNKNOWN_EXCEPTION"
        };
        rest_error(status, code, "An unexpected error occurred. Please retry.")
    }

    /// `Sforce-Limit-Info: api-usage=<used>/<limit>` on every REST answer
    /// (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm>).
    fn decorate(&self, info: Option<&RateInfo>, resp: &mut Response) {
        let (used, limit) = match info {
            Some(i) => (u64::from(i.limit - i.remaining), u64::from(i.limit)),
            None => (self.faults.stats().requests, self.config().daily_api_limit),
        };
        if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{limit}")) {
            resp.headers_mut().insert("sforce-limit-info", v);
        }
    }
}
