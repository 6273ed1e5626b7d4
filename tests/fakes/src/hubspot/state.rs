//! The HubSpot fake's shared state and how its guard answers: bearer-token check, daily
//! quota, 429 bodies and the `X-HubSpot-RateLimit-*` headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::errors::{error, rate_limited, unauthorized};
use super::store::Store;
use super::HubSpotConfig;
use crate::faults::{Faults, RateInfo, Throttle};
use crate::guard::Guarded;
use crate::log::RequestLog;
use crate::util::bearer;

pub(crate) struct HsState {
    pub config: Mutex<HubSpotConfig>,
    pub store: Mutex<Store>,
    pub faults: Faults,
    pub log: RequestLog,
    pub daily_used: AtomicU64,
}

impl HsState {
    pub(crate) fn config(&self) -> HubSpotConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn header(resp: &mut Response, name: &'static str, value: u64) {
    resp.headers_mut().insert(name, HeaderValue::from(value));
}

impl Guarded for HsState {
    fn faults(&self) -> &Faults {
        &self.faults
    }

    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn refuse(&self, req: &Request) -> Option<Response> {
        let config = self.config();
        match bearer(req.headers()) {
            None => return Some(unauthorized(true)),
            Some(t) if t != config.token => return Some(unauthorized(false)),
            Some(_) => {}
        }
        let used = self.daily_used.fetch_add(1, Ordering::SeqCst) + 1;
        match config.daily_limit {
            Some(limit) if used > limit => {
                Some(rate_limited("DAILY", "You have reached your daily limit."))
            }
            _ => None,
        }
    }

    fn throttled(&self, _throttle: &Throttle) -> Response {
        rate_limited(
            "TEN_SECONDLY_ROLLING",
            "You have reached your secondly limit.",
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        error(status, "INTERNAL_ERROR", "internal error")
    }

    /// Headers per the 2018 changelog (`-Daily`, `-Daily-Remaining`, `-Secondly`,
    /// `-Secondly-Remaining`; https://developers.hubspot.com/changelog/2018-11-06-rate-limit-information-headers-will-be-included-in-http-responses)
    /// plus the newer `-Max`, `-Remaining`, `-Interval-Milliseconds` trio. "Secondly" is the
    /// window budget divided by its length in seconds.
    fn decorate(&self, info: Option<&RateInfo>, resp: &mut Response) {
        if let Some(info) = info {
            let secs = info.window.as_secs().max(1);
            header(resp, "x-hubspot-ratelimit-max", info.limit.into());
            header(resp, "x-hubspot-ratelimit-remaining", info.remaining.into());
            header(
                resp,
                "x-hubspot-ratelimit-interval-milliseconds",
                info.window.as_millis() as u64,
            );
            header(
                resp,
                "x-hubspot-ratelimit-secondly",
                u64::from(info.limit) / secs,
            );
            header(
                resp,
                "x-hubspot-ratelimit-secondly-remaining",
                u64::from(info.remaining) / secs,
            );
        }
        if let Some(limit) = self.config().daily_limit {
            let used = self.daily_used.load(Ordering::SeqCst);
            header(resp, "x-hubspot-ratelimit-daily", limit);
            header(
                resp,
                "x-hubspot-ratelimit-daily-remaining",
                limit.saturating_sub(used),
            );
        }
    }
}
