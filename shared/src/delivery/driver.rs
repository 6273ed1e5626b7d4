use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use governor::DefaultDirectRateLimiter;
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use super::batcher::batches;
use super::concurrency::AdaptiveConcurrency;
use super::rate::rate_limiter;
use super::settings::DeliveryConfig;
use crate::config::SyncDef;
use crate::ports::{Batch, Destination, OutRecord, RecordOutcome, SendError, WriteOp};

/// Counters of one delivery, for run reports and benchmarks.
#[derive(Debug, Default)]
struct DeliveryStats {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    transient_errors: AtomicU64,
    splits: AtomicU64,
}

/// A snapshot of [`DeliveryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStatsSnapshot {
    /// Requests sent.
    pub requests: u64,
    /// Requests repeated after a transient failure.
    pub retries: u64,
    /// 429 (or equivalent) answers.
    pub rate_limited: u64,
    /// 5xx, timeouts and network errors.
    pub transient_errors: u64,
    /// Batches split to isolate a bad record.
    pub splits: u64,
}

impl DeliveryStats {
    /// Current values.
    pub fn snapshot(&self) -> DeliveryStatsSnapshot {
        DeliveryStatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            transient_errors: self.transient_errors.load(Ordering::Relaxed),
            splits: self.splits.load(Ordering::Relaxed),
        }
    }
}

/// The outcomes of one batch as given to the caller: every record exactly once.
#[derive(Debug)]
pub struct Delivered {
    /// The write performed.
    pub op: WriteOp,
    /// Each record with its final outcome.
    pub results: Vec<(OutRecord, RecordOutcome)>,
}

/// Sends records to one destination within its limits. One per destination connection and
/// run, so the rate limit, concurrency and retry budget are shared by all its batches.
pub struct Deliverer {
    dest: Arc<dyn Destination>,
    sync: Arc<SyncDef>,
    cfg: DeliveryConfig,
    limiter: Option<DefaultDirectRateLimiter>,
    concurrency: AdaptiveConcurrency,
    pause_until: Mutex<Option<Instant>>,
    budget: AtomicI64,
    fatal: Mutex<Option<(String, String)>>,
    stats: DeliveryStats,
}

impl Deliverer {
    /// A deliverer for `dest` with effective settings `cfg`.
    pub fn new(dest: Arc<dyn Destination>, sync: Arc<SyncDef>, cfg: DeliveryConfig) -> Arc<Self> {
        let limiter = rate_limiter(cfg.rate_per_second, cfg.burst);
        Arc::new(Deliverer {
            dest,
            sync,
            concurrency: AdaptiveConcurrency::new(cfg.concurrency, Duration::from_millis(500)),
            budget: AtomicI64::new(i64::from(cfg.retry_budget)),
            limiter,
            cfg,
            pause_until: Mutex::new(None),
            fatal: Mutex::new(None),
            stats: DeliveryStats::default(),
        })
    }

    /// The destination delivered to.
    pub fn destination(&self) -> &dyn Destination {
        self.dest.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.stats.snapshot()
    }

    /// The error that stopped delivery, if the destination failed in a way retries cannot fix.
    pub fn fatal_error(&self) -> Option<(String, String)> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends `records` with `op`, yielding each batch's outcomes as it completes.
    pub fn deliver(
        self: &Arc<Self>,
        op: WriteOp,
        records: Vec<OutRecord>,
    ) -> impl Stream<Item = Delivered> + Send + 'static {
        let this = Arc::clone(self);
        let width = self.cfg.concurrency.max(1);
        let mut limits = self.cfg.limits;
        if let Some(max) = self.dest.max_records(op) {
            limits.max_records = limits.max_records.min(max.max(1));
        }
        futures::stream::iter(batches(records, limits))
            .map(move |b| Arc::clone(&this).run_batch(op, b))
            .buffer_unordered(width)
    }

    async fn wait_gates(&self) {
        loop {
            let until = *self.pause_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
    }

    fn pause_for(&self, d: Duration) {
        // A longer wait ends the delivery instead (see `retry_or_fail`).
        if d > self.cfg.max_retry_after {
            return;
        }
        let t = Instant::now() + d;
        let mut p = self.pause_until.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none_or(|cur| cur < t) {
            *p = Some(t);
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .cfg
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16).saturating_sub(1))
            .min(self.cfg.max_backoff);
        // Full jitter between half and all of the exponential delay spreads retries apart.
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        match retry_after {
            Some(r) => r.max(jittered / 4),
            None => jittered,
        }
    }

    fn take_retry(&self) -> bool {
        self.budget.fetch_sub(1, Ordering::Relaxed) > 0
    }

    async fn run_batch(self: Arc<Self>, op: WriteOp, records: Vec<OutRecord>) -> Delivered {
        let mut done = Vec::with_capacity(records.len());
        let mut queue: VecDeque<(Vec<OutRecord>, u32)> = VecDeque::from([(records, 1)]);
        while let Some((recs, attempt)) = queue.pop_front() {
            if let Some((code, message)) = self.fatal_error() {
                done.extend(recs.into_iter().map(|r| {
                    (
                        r,
                        RecordOutcome::Failed {
                            code: code.clone(),
                            message: message.clone(),
                        },
                    )
                }));
                continue;
            }
            self.wait_gates().await;
            let permit = self.concurrency.acquire().await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let batch = Batch { op, records: recs };
            let res =
                tokio::time::timeout(self.cfg.timeout, self.dest.send(&self.sync, &batch)).await;
            drop(permit);
            let recs = batch.records;
            let err = match res {
                Err(_) => {
                    self.concurrency.on_overload();
                    SendError::Transient {
                        code: "timeout".into(),
                        message: format!("no answer within {:?}", self.cfg.timeout),
                        retry_after: None,
                    }
                }
                Ok(Ok(outcomes)) if outcomes.len() == recs.len() => {
                    self.concurrency.on_success();
                    let mut again = Vec::new();
                    let mut last = None;
                    for (r, o) in recs.into_iter().zip(outcomes) {
                        match o {
                            RecordOutcome::Failed { code, message }
                                if attempt < self.cfg.max_attempts =>
                            {
                                last = Some((code, message));
                                again.push(r);
                            }
                            other => done.push((r, other)),
                        }
                    }
                    if let Some((code, message)) = last {
                        self.retry_or_fail(
                            &mut queue, &mut done, again, attempt, code, message, None,
                        )
                        .await;
                    }
                    continue;
                }
                Ok(Ok(outcomes)) => {
                    let message = format!(
                        "the connector answered {} outcomes for {} records",
                        outcomes.len(),
                        recs.len()
                    );
                    done.extend(recs.into_iter().map(|r| {
                        (
                            r,
                            RecordOutcome::Failed {
                                code: "connector_error".into(),
                                message: message.clone(),
                            },
                        )
                    }));
                    continue;
                }
                Ok(Err(e)) => e,
            };
            match err {
                SendError::RateLimited {
                    message,
                    retry_after,
                } => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    self.concurrency.on_overload();
                    if let Some(d) = retry_after {
                        self.pause_for(d);
                    }
                    self.retry_or_fail(
                        &mut queue,
                        &mut done,
                        recs,
                        attempt,
                        "rate_limited".into(),
                        message,
                        retry_after,
                    )
                    .await;
                }
                SendError::Transient {
                    code,
                    message,
                    retry_after,
                } => {
                    self.stats.transient_errors.fetch_add(1, Ordering::Relaxed);
                    if let Some(d) = retry_after {
                        self.pause_for(d);
                    }
                    self.retry_or_fail(
                        &mut queue,
                        &mut done,
                        recs,
                        attempt,
                        code,
                        message,
                        retry_after,
                    )
                    .await;
                }
                SendError::BatchRejected { code, message } => {
                    if recs.len() == 1 {
                        done.extend(recs.into_iter().map(|r| {
                            (
                                r,
                                RecordOutcome::Rejected {
                                    code: code.clone(),
                                    message: message.clone(),
                                },
                            )
                        }));
                    } else {
                        self.stats.splits.fetch_add(1, Ordering::Relaxed);
                        let mut left = recs;
                        let right = left.split_off(left.len() / 2);
                        queue.push_front((right, attempt));
                        queue.push_front((left, attempt));
                    }
                }
                SendError::Fatal { code, message } => {
                    tracing::error!(%code, %message, "destination refused the write; stopping delivery");
                    *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((code.clone(), message.clone()));
                    done.extend(recs.into_iter().map(|r| {
                        (
                            r,
                            RecordOutcome::Failed {
                                code: code.clone(),
                                message: message.clone(),
                            },
                        )
                    }));
                }
            }
        }
        Delivered { op, results: done }
    }

    #[allow(clippy::too_many_arguments)]
    async fn retry_or_fail(
        &self,
        queue: &mut VecDeque<(Vec<OutRecord>, u32)>,
        done: &mut Vec<(OutRecord, RecordOutcome)>,
        recs: Vec<OutRecord>,
        attempt: u32,
        code: String,
        message: String,
        retry_after: Option<Duration>,
    ) {
        if recs.is_empty() {
            return;
        }
        if let Some(wait) = retry_after.filter(|w| *w > self.cfg.max_retry_after) {
            // A quota that resets in hours: stop this delivery now rather than hold the run.
            let why = format!(
                "{message} (the destination asked to wait {}s, longer than a run waits; planned again by the next run)",
                wait.as_secs()
            );
            self.fatal
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| (code.clone(), why.clone()));
            done.extend(recs.into_iter().map(|r| {
                (
                    r,
                    RecordOutcome::Failed {
                        code: code.clone(),
                        message: why.clone(),
                    },
                )
            }));
            return;
        }
        if attempt < self.cfg.max_attempts && self.take_retry() {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(self.backoff(attempt, retry_after)).await;
            queue.push_front((recs, attempt + 1));
            return;
        }
        let why = if attempt >= self.cfg.max_attempts {
            format!("{message} (gave up after {attempt} attempts)")
        } else {
            format!("{message} (the run's retry budget is used up)")
        };
        done.extend(recs.into_iter().map(|r| {
            (
                r,
                RecordOutcome::Failed {
                    code: code.clone(),
                    message: why.clone(),
                },
            )
        }));
    }
}
