//! The request framework: every request a connection makes (reads, listings, lookups, auth,
//! writes) goes through one [`Requester`], which paces it with the connection's token bucket
//! (and a per-operation bucket where the API has one), waits out `Retry-After` pauses shared by
//! all requests of the connection, bounds it with a timeout, and retries what the connector
//! classified as transient or throttled with jittered exponential backoff, within a retry
//! budget. Connectors only build requests and classify answers into [`SendError`] (the
//! connector's "retry logic"); they hold no retry loops, sleeps or limiters of their own.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use super::concurrency::{AdaptiveConcurrency, Permit};
use super::rate::rate_limiter;
use crate::ports::{SendError, WriteOp};

/// How requests of one connection are paced, bounded and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPolicy {
    /// Requests per second (`None`: unlimited).
    pub rate_per_second: Option<f64>,
    /// Token-bucket burst.
    pub burst: u32,
    /// A lower rate for one kind of write, in requests per minute (Braze deletes).
    pub op_rates: Vec<(WriteOp, u32)>,
    /// Batches in flight at most (adapted below it on overload).
    pub concurrency: usize,
    /// Attempts per request.
    pub max_attempts: u32,
    /// Retries allowed across all requests of the connection.
    pub retry_budget: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// First backoff delay.
    pub base_backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Longest `Retry-After` waited for; a destination asking for more (a daily quota) ends
    /// the request as failed, to be planned again by a later run.
    pub max_retry_after: Duration,
}

impl RequestPolicy {
    /// What a warehouse connection uses: no rate limit, a few attempts, long timeouts.
    pub fn for_source() -> Self {
        RequestPolicy {
            rate_per_second: None,
            burst: 1,
            op_rates: Vec::new(),
            concurrency: 4,
            max_attempts: 5,
            retry_budget: 100,
            timeout: Duration::from_secs(300),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retry {
    /// Wait this long, then try again.
    After(Duration),
    /// Stop: the error stands, with this explanation appended.
    GiveUp(String),
    /// Stop, and stop the whole delivery: the destination asked to wait longer than a run
    /// waits (a daily quota).
    Stop(String),
}

/// Counters of one connection's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    /// Attempts sent.
    pub requests: u64,
    /// Attempts repeated after a transient failure.
    pub retries: u64,
    /// 429 (or equivalent) answers.
    pub rate_limited: u64,
    /// 5xx, timeouts and network errors.
    pub transient_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    transient_errors: AtomicU64,
}

/// What every requester of one connection shares: its buckets, its pause, its budget and
/// its counters.
struct Shared {
    limiter: Option<DefaultDirectRateLimiter>,
    op_limiters: HashMap<WriteOp, DefaultDirectRateLimiter>,
    pause_until: Mutex<Option<Instant>>,
    budget: AtomicI64,
    counters: Counters,
}

/// The request framework of one connection; shared by everything that talks to it.
pub struct Requester {
    policy: RequestPolicy,
    shared: Arc<Shared>,
    concurrency: AdaptiveConcurrency,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Requester {
    /// A requester following `policy`.
    pub fn new(policy: RequestPolicy) -> Self {
        let op_limiters = policy
            .op_rates
            .iter()
            .filter_map(|(op, per_minute)| {
                let rate = f64::from(*per_minute) / 60.0;
                rate_limiter(Some(rate), 1).map(|l| (*op, l))
            })
            .collect();
        let shared = Shared {
            limiter: rate_limiter(policy.rate_per_second, policy.burst),
            op_limiters,
            pause_until: Mutex::new(None),
            budget: AtomicI64::new(i64::from(policy.retry_budget)),
            counters: Counters::default(),
        };
        Requester {
            concurrency: AdaptiveConcurrency::new(policy.concurrency, Duration::from_millis(500)),
            shared: Arc::new(shared),
            policy,
        }
    }

    /// A requester of the same connection (same buckets, pause, budget and counters) with
    /// other attempts, timeout and concurrency: a bulk delivery's long jobs.
    pub fn derive(&self, policy: RequestPolicy) -> Self {
        Requester {
            concurrency: AdaptiveConcurrency::new(policy.concurrency, Duration::from_millis(500)),
            shared: Arc::clone(&self.shared),
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RequestPolicy {
        &self.policy
    }

    /// Counters so far.
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.shared.counters.requests.load(Ordering::Relaxed),
            retries: self.shared.counters.retries.load(Ordering::Relaxed),
            rate_limited: self.shared.counters.rate_limited.load(Ordering::Relaxed),
            transient_errors: self
                .shared
                .counters
                .transient_errors
                .load(Ordering::Relaxed),
        }
    }

    /// Waits until a request may go: after any `Retry-After` pause, then a token of the
    /// connection's bucket. A connector calls it before each request beyond the first that
    /// one batch needs (HubSpot reads record ids before archiving them).
    pub async fn pace(&self) {
        loop {
            let until = *self
                .shared
                .pause_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(l) = &self.shared.limiter {
            l.until_ready().await;
        }
    }

    /// One attempt of a batch write: paced (with the operation's own bucket too), within the
    /// adaptive concurrency limit and the timeout. Overload answers lower the concurrency and
    /// a `Retry-After` pauses every request of the connection.
    pub async fn attempt<T, Fut>(&self, op: WriteOp, fut: Fut) -> Result<T, SendError>
    where
        Fut: Future<Output = Result<T, SendError>>,
    {
        if let Some(l) = self.shared.op_limiters.get(&op) {
            l.until_ready().await;
        }
        self.pace().await;
        let permit: Permit<'_> = self.concurrency.acquire().await;
        let res = self.bounded(fut).await;
        drop(permit);
        match &res {
            Ok(_) => self.concurrency.on_success(),
            Err(SendError::RateLimited { .. }) => self.concurrency.on_overload(),
            Err(SendError::Transient { code, .. }) if code == "timeout" => {
                self.concurrency.on_overload()
            }
            Err(_) => {}
        }
        res
    }

    /// A whole request outside batch delivery (a read, a listing page, a lookup, a token):
    /// paced attempts, retried on transient and throttled answers until the attempts, the
    /// retry budget or the longest acceptable `Retry-After` run out.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, SendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SendError>>,
    {
        let mut attempt = 1;
        loop {
            self.pace().await;
            let err = match self.bounded(f()).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match self.after_failure(attempt, &err) {
                Retry::After(wait) => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Retry::GiveUp(why) | Retry::Stop(why) => return Err(with_reason(err, &why)),
            }
        }
    }

    async fn bounded<T, Fut>(&self, fut: Fut) -> Result<T, SendError>
    where
        Fut: Future<Output = Result<T, SendError>>,
    {
        self.shared
            .counters
            .requests
            .fetch_add(1, Ordering::Relaxed);
        let res = match tokio::time::timeout(self.policy.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient {
                code: "timeout".into(),
                message: format!("no answer within {:?}", self.policy.timeout),
                retry_after: None,
            }),
        };
        match &res {
            Err(SendError::RateLimited { retry_after, .. }) => {
                self.shared
                    .counters
                    .rate_limited
                    .fetch_add(1, Ordering::Relaxed);
                self.pause_for(*retry_after);
            }
            Err(SendError::Transient { retry_after, .. }) => {
                self.shared
                    .counters
                    .transient_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.pause_for(*retry_after);
            }
            _ => {}
        }
        res
    }

    fn pause_for(&self, wait: Option<Duration>) {
        // A longer wait ends the request instead (see `after_failure`).
        let Some(d) = wait.filter(|d| *d <= self.policy.max_retry_after) else {
            return;
        };
        let t = Instant::now() + d;
        let mut p = self
            .shared
            .pause_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if p.is_none_or(|cur| cur < t) {
            *p = Some(t);
        }
    }

    /// Whether a request that failed with `err` on attempt `attempt` is tried again, and
    /// after how long. Only transient and throttled failures are; each retry spends one unit
    /// of the budget.
    pub fn after_failure(&self, attempt: u32, err: &SendError) -> Retry {
        let asked = match err {
            SendError::Transient { retry_after, .. }
            | SendError::RateLimited { retry_after, .. } => *retry_after,
            _ => return Retry::GiveUp(String::new()),
        };
        if let Some(wait) = asked.filter(|w| *w > self.policy.max_retry_after) {
            return Retry::Stop(format!(
                "the destination asked to wait {}s, longer than a run waits; planned again by the next run",
                wait.as_secs()
            ));
        }
        if attempt >= self.policy.max_attempts {
            return Retry::GiveUp(format!("gave up after {attempt} attempts"));
        }
        if self.shared.budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return Retry::GiveUp("the run's retry budget is used up".into());
        }
        self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
        Retry::After(self.backoff(attempt, asked))
    }

    fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let exp = self
            .policy
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16).saturating_sub(1))
            .min(self.policy.max_backoff);
        // Jitter between half and all of the exponential delay spreads retries apart.
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        match asked {
            Some(r) => r.max(jittered / 4),
            None => jittered,
        }
    }
}

/// `err` with `why` appended to its message (an empty `why` leaves it as it is).
fn with_reason(err: SendError, why: &str) -> SendError {
    if why.is_empty() {
        return err;
    }
    match err {
        SendError::Transient {
            code,
            message,
            retry_after,
        } => SendError::Transient {
            code,
            message: format!("{message} ({why})"),
            retry_after,
        },
        SendError::RateLimited {
            message,
            retry_after,
        } => SendError::RateLimited {
            message: format!("{message} ({why})"),
            retry_after,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RequestPolicy {
        RequestPolicy {
            max_attempts: 3,
            retry_budget: 10,
            timeout: Duration::from_millis(200),
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_retry_after: Duration::from_secs(2),
            ..RequestPolicy::for_source()
        }
    }

    fn transient() -> SendError {
        SendError::Transient {
            code: "503".into(),
            message: "busy".into(),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn calls_retry_transient_answers_then_succeed() {
        let r = Requester::new(policy());
        let mut n = 0;
        let out = r
            .call(|| {
                n += 1;
                let ok = n == 3;
                async move {
                    if ok {
                        Ok(7)
                    } else {
                        Err(transient())
                    }
                }
            })
            .await;
        assert_eq!(out, Ok(7));
        assert_eq!(r.stats().requests, 3);
        assert_eq!(r.stats().retries, 2);
    }

    #[tokio::test]
    async fn calls_give_up_after_the_attempts_and_say_so() {
        let r = Requester::new(policy());
        let out: Result<(), _> = r.call(|| async { Err(transient()) }).await;
        match out {
            Err(SendError::Transient { message, .. }) => {
                assert!(message.contains("gave up after 3 attempts"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn permanent_answers_are_not_retried() {
        let r = Requester::new(policy());
        let fatal = SendError::Fatal {
            code: "401".into(),
            message: "no".into(),
        };
        let out: Result<(), _> = r.call(|| async { Err(fatal.clone()) }).await;
        assert_eq!(out, Err(fatal));
        assert_eq!(r.stats().requests, 1);
    }

    #[tokio::test]
    async fn a_hang_is_a_timeout_and_retried() {
        let r = Requester::new(policy());
        let mut n = 0;
        let out = r
            .call(|| {
                n += 1;
                let hang = n == 1;
                async move {
                    if hang {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Ok::<_, SendError>(1)
                }
            })
            .await;
        assert_eq!(out, Ok(1));
        assert_eq!(r.stats().transient_errors, 1);
    }

    #[tokio::test]
    async fn retry_after_pauses_every_request_and_long_waits_give_up() {
        let r = Requester::new(policy());
        let limited = |secs: f64| SendError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs_f64(secs)),
        };
        let started = Instant::now();
        let mut n = 0;
        let out = r
            .call(|| {
                n += 1;
                let first = n == 1;
                async move {
                    if first {
                        Err(limited(0.3))
                    } else {
                        Ok(2)
                    }
                }
            })
            .await;
        assert_eq!(out, Ok(2));
        assert!(started.elapsed() >= Duration::from_millis(300));
        // Another request right after is held by the same pause only while it lasts.
        r.pace().await;
        let out: Result<(), _> = r.call(|| async { Err(limited(3600.0)) }).await;
        match out {
            Err(SendError::RateLimited { message, .. }) => {
                assert!(message.contains("longer than a run waits"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_budget_bounds_retries_across_requests() {
        let r = Requester::new(RequestPolicy {
            retry_budget: 1,
            max_attempts: 10,
            ..policy()
        });
        let out: Result<(), _> = r.call(|| async { Err(transient()) }).await;
        assert!(
            matches!(out, Err(SendError::Transient { message, .. }) if message.contains("budget"))
        );
        assert_eq!(r.stats().requests, 2);
    }
}
