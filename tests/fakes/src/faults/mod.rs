//! A runtime-adjustable fault plan that every fake applies before it handles a request.
//!
//! Order of application, per request: count it; if `timeout_next > 0`, hang for `hang`
//! (default 60 s, longer than any sane client timeout) and then answer `504` *without*
//! touching the fake's state; sleep `slow`; if `burst_429 > 0`, throttle; check the rate
//! limits (a global one and an optional per-endpoint "bucket"); draw against `error_ratio`
//! and answer `error_status` (default 503). Requests refused here never reach the handler,
//! so they change no records.
//!
//! Each fake renders a throttled answer the way its vendor does (HubSpot and Braze: 429;
//! Salesforce: 403 `REQUEST_LIMIT_EXCEEDED`; Meta: 400 with a throttling error code) and
//! [`FaultStats::rate_limited`] counts all of those.
//!
//! `Retry-After`: none of the four vendors documents sending it on a throttled answer
//! (HubSpot: <https://developers.hubspot.com/docs/api/usage-details>; Braze documents
//! `X-RateLimit-Reset` instead: <https://www.braze.com/docs/api/api_limits/>; Salesforce:
//! <https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html>; Meta:
//! <https://developers.facebook.com/docs/graph-api/overview/rate-limiting>). So the header is
//! configurable through [`FaultPlan::send_retry_after`], and defaults to being sent (whole
//! seconds until the window frees a slot) so that clients honouring it are exercised; set
//! it to `false` to prove a connector copes without it.
//!
//! Injected 5xx answers are drawn from a SplitMix64 generator seeded by
//! [`FaultPlan::error_seed`]: the same seed and request sequence give the same failures.

mod rng;
mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use window::{RateInfo, RateLimit, WindowKind};

use rng::SplitMix64;
use window::Window;

/// Faults to inject; change it at run time through [`Faults`].
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Global request budget; `None` disables it. Vendors add per-endpoint buckets too.
    pub rate_limit: Option<RateLimit>,
    /// The next N requests are throttled regardless of the budget.
    pub burst_429: u32,
    /// Share of requests, in `[0, 1]`, answered with `error_status`.
    pub error_ratio: f64,
    /// Seed of the generator that picks which requests get a 5xx.
    pub error_seed: u64,
    /// Status of injected server errors (500..=599).
    pub error_status: u16,
    /// Latency added to every request.
    pub slow: Duration,
    /// The next N requests hang for `hang`, then get 504 without being processed.
    pub timeout_next: u32,
    /// How long a `timeout_next` request hangs.
    pub hang: Duration,
    /// Whether throttled answers carry `Retry-After` (see the module doc).
    pub send_retry_after: bool,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            rate_limit: None,
            burst_429: 0,
            error_ratio: 0.0,
            error_seed: 0x5EED,
            error_status: 503,
            slow: Duration::ZERO,
            timeout_next: 0,
            hang: Duration::from_secs(60),
            send_retry_after: true,
        }
    }
}

/// Counters of what the fault plan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests seen (including refused ones).
    pub requests: u64,
    /// Throttled answers sent (429, or the vendor's equivalent).
    pub rate_limited: u64,
    /// Injected 5xx answers sent.
    pub server_errors: u64,
    /// Requests that were made to hang.
    pub timeouts: u64,
}

/// A throttled answer to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// State of the window that refused, when one did (absent for a pure `burst_429`).
    pub info: Option<RateInfo>,
    /// Seconds for `Retry-After`, when the plan sends it.
    pub retry_after: Option<u64>,
    /// True when the refusal came from `burst_429` rather than a budget.
    pub injected: bool,
}

/// What the fault plan decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Handle it; the state of the tightest window is given for rate-limit headers.
    Proceed(Option<RateInfo>),
    /// Refuse it as throttled.
    Throttled(Throttle),
    /// Answer this 5xx status.
    ServerError(u16),
    /// It hung; answer 504.
    TimedOut,
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    global: Option<Window>,
    buckets: BTreeMap<String, Window>,
    rng: SplitMix64,
    stats: FaultStats,
}

/// Shared, cloneable handle on a fake's fault plan and counters.
#[derive(Clone, Debug)]
pub struct Faults {
    inner: Arc<Mutex<State>>,
}

impl Faults {
    /// A handle applying `plan`.
    pub fn new(plan: FaultPlan) -> Self {
        let state = State {
            global: plan.rate_limit.map(Window::new),
            buckets: BTreeMap::new(),
            rng: SplitMix64::new(plan.error_seed),
            plan,
            stats: FaultStats::default(),
        };
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan in force.
    pub fn plan(&self) -> FaultPlan {
        self.lock().plan.clone()
    }

    /// Replaces the plan; resets the global window and reseeds the 5xx generator.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.lock();
        s.global = plan.rate_limit.map(Window::new);
        s.rng = SplitMix64::new(plan.error_seed);
        s.plan = plan;
    }

    /// Sets (or with `None` removes) the global budget, starting a fresh window.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut s = self.lock();
        s.plan.rate_limit = limit;
        s.global = limit.map(Window::new);
    }

    /// Sets (or removes) the budget of one endpoint bucket (e.g. Braze's `users/track`).
    pub fn set_bucket_rate_limit(&self, bucket: &str, limit: Option<RateLimit>) {
        let mut s = self.lock();
        match limit {
            Some(l) => {
                s.buckets.insert(bucket.to_string(), Window::new(l));
            }
            None => {
                s.buckets.remove(bucket);
            }
        }
    }

    /// Throttles the next `n` requests.
    pub fn burst_429(&self, n: u32) {
        self.lock().plan.burst_429 = n;
    }

    /// Answers `ratio` of requests with the configured 5xx status.
    pub fn set_error_ratio(&self, ratio: f64) {
        self.lock().plan.error_ratio = ratio.clamp(0.0, 1.0);
    }

    /// Sets the status of injected server errors.
    pub fn set_error_status(&self, status: u16) {
        self.lock().plan.error_status = status;
    }

    /// Adds `latency` to every request.
    pub fn set_slow(&self, latency: Duration) {
        self.lock().plan.slow = latency;
    }

    /// Makes the next `n` requests hang (see [`FaultPlan::hang`]).
    pub fn timeout_next(&self, n: u32) {
        self.lock().plan.timeout_next = n;
    }

    /// Chooses whether throttled answers carry `Retry-After`.
    pub fn set_send_retry_after(&self, send: bool) {
        self.lock().plan.send_retry_after = send;
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Zeroes the counters.
    pub fn reset_stats(&self) {
        self.lock().stats = FaultStats::default();
    }

    /// Applies the plan to one request that falls in `bucket` (if any).
    pub(crate) async fn admit(&self, bucket: Option<&str>) -> Admission {
        let (hang, slow) = {
            let mut s = self.lock();
            s.stats.requests += 1;
            if s.plan.timeout_next > 0 {
                s.plan.timeout_next -= 1;
                s.stats.timeouts += 1;
                (Some(s.plan.hang), Duration::ZERO)
            } else {
                (None, s.plan.slow)
            }
        };
        if let Some(hang) = hang {
            tokio::time::sleep(hang).await;
            return Admission::TimedOut;
        }
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        self.lock().decide(bucket, Instant::now())
    }
}

impl State {
    fn decide(&mut self, bucket: Option<&str>, now: Instant) -> Admission {
        let send_retry = self.plan.send_retry_after;
        if self.plan.burst_429 > 0 {
            self.plan.burst_429 -= 1;
            self.stats.rate_limited += 1;
            let info = self.tightest(bucket, now);
            return Admission::Throttled(Throttle {
                info,
                retry_after: send_retry.then(|| info.map_or(1, |i| i.retry_after_secs())),
                injected: true,
            });
        }
        let refused = self
            .global
            .as_mut()
            .and_then(|w| w.check(now).err())
            .or_else(|| {
                let w = self.buckets.get_mut(bucket?)?;
                w.check(now).err()
            });
        if let Some(info) = refused {
            self.stats.rate_limited += 1;
            return Admission::Throttled(Throttle {
                info: Some(info),
                retry_after: send_retry.then(|| info.retry_after_secs()),
                injected: false,
            });
        }
        if let Some(w) = self.global.as_mut() {
            w.record(now);
        }
        if let Some(w) = bucket.and_then(|b| self.buckets.get_mut(b)) {
            w.record(now);
        }
        if self.plan.error_ratio > 0.0 && self.rng.next_f64() < self.plan.error_ratio {
            self.stats.server_errors += 1;
            return Admission::ServerError(self.plan.error_status);
        }
        Admission::Proceed(self.tightest(bucket, now))
    }

    /// The window with the fewest remaining requests, for headers.
    fn tightest(&mut self, bucket: Option<&str>, now: Instant) -> Option<RateInfo> {
        let global = self.global.as_mut().map(|w| w.info(now));
        let bucket = bucket
            .and_then(|b| self.buckets.get_mut(b))
            .map(|w| w.info(now));
        match (global, bucket) {
            (Some(g), Some(b)) => Some(if b.remaining < g.remaining { b } else { g }),
            (g, b) => b.or(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_budget_then_errors_are_counted() {
        let faults = Faults::new(FaultPlan {
            rate_limit: Some(RateLimit::sliding(3, Duration::from_secs(60))),
            burst_429: 1,
            ..FaultPlan::default()
        });
        assert!(matches!(faults.admit(None).await, Admission::Throttled(t) if t.injected));
        for remaining in [2, 1, 0] {
            match faults.admit(None).await {
                Admission::Proceed(Some(info)) => assert_eq!(info.remaining, remaining),
                other => panic!("unexpected {other:?}"),
            }
        }
        match faults.admit(None).await {
            Admission::Throttled(t) => assert_eq!(t.retry_after, Some(60)),
            other => panic!("unexpected {other:?}"),
        }
        faults.set_rate_limit(None);
        faults.set_error_ratio(1.0);
        assert_eq!(faults.admit(None).await, Admission::ServerError(503));
        let stats = faults.stats();
        assert_eq!(
            (stats.requests, stats.rate_limited, stats.server_errors),
            (6, 2, 1)
        );
    }

    #[tokio::test]
    async fn bucket_limits_apply_only_to_their_bucket() {
        let faults = Faults::new(FaultPlan::default());
        faults.set_bucket_rate_limit("a", Some(RateLimit::fixed(1, Duration::from_secs(5))));
        assert!(matches!(
            faults.admit(Some("a")).await,
            Admission::Proceed(_)
        ));
        assert!(matches!(
            faults.admit(Some("a")).await,
            Admission::Throttled(_)
        ));
        assert_eq!(faults.admit(Some("b")).await, Admission::Proceed(None));
    }
}
