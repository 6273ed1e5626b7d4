//! Batch delivery: records split into batches within the destination's limits, each batch
//! written through the connection's [`Requester`] (pacing, concurrency, timeouts, retries),
//! refused batches split until the bad record is isolated, and every record ending in exactly
//! one outcome.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use serde::Serialize;

use super::batcher::batches;
use super::requester::{Requester, Retry};
use crate::config::SyncDef;
use crate::ports::{Batch, BatchLimits, Destination, OutRecord, RecordOutcome, SendError, WriteOp};

/// Counters of one delivery, for run reports and benchmarks.
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

/// The outcomes of one batch as given to the caller: every record exactly once.
#[derive(Debug)]
pub struct Delivered {
    /// The write performed.
    pub op: WriteOp,
    /// Each record with its final outcome.
    pub results: Vec<(OutRecord, RecordOutcome)>,
}

/// Sends records to one destination within its limits, through the connection's requester
/// (shared by every batch of the run, and by the connector's own reads).
pub struct Deliverer {
    dest: Arc<dyn Destination>,
    sync: Arc<SyncDef>,
    limits: BatchLimits,
    op_limits: Vec<(WriteOp, usize)>,
    requests: Arc<Requester>,
    fatal: Mutex<Option<(String, String)>>,
    splits: AtomicU64,
}

impl Deliverer {
    /// A deliverer for `dest` with batch `limits` (and lower record limits per operation),
    /// sending through `requests`.
    pub fn new(
        dest: Arc<dyn Destination>,
        sync: Arc<SyncDef>,
        limits: BatchLimits,
        op_limits: Vec<(WriteOp, usize)>,
        requests: Arc<Requester>,
    ) -> Arc<Self> {
        Arc::new(Deliverer {
            dest,
            sync,
            limits,
            op_limits,
            requests,
            fatal: Mutex::new(None),
            splits: AtomicU64::new(0),
        })
    }

    /// The destination delivered to.
    pub fn destination(&self) -> &dyn Destination {
        self.dest.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        let r = self.requests.stats();
        DeliveryStatsSnapshot {
            requests: r.requests,
            retries: r.retries,
            rate_limited: r.rate_limited,
            transient_errors: r.transient_errors,
            splits: self.splits.load(Ordering::Relaxed),
        }
    }

    /// The error that stopped delivery, if the destination failed in a way retries cannot fix.
    pub fn fatal_error(&self) -> Option<(String, String)> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_fatal(&self, code: &str, message: &str) {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| (code.to_string(), message.to_string()));
    }

    /// Sends `records` with `op`, yielding each batch's outcomes as it completes.
    pub fn deliver(
        self: &Arc<Self>,
        op: WriteOp,
        records: Vec<OutRecord>,
    ) -> impl Stream<Item = Delivered> + Send + 'static {
        let this = Arc::clone(self);
        let width = self.requests.policy().concurrency.max(1);
        let mut limits = self.limits;
        if let Some((_, max)) = self.op_limits.iter().find(|(o, _)| *o == op) {
            limits.max_records = limits.max_records.min((*max).max(1));
        }
        futures::stream::iter(batches(records, limits))
            .map(move |b| Arc::clone(&this).run_batch(op, b))
            .buffer_unordered(width)
    }

    async fn run_batch(self: Arc<Self>, op: WriteOp, records: Vec<OutRecord>) -> Delivered {
        let mut done = Vec::with_capacity(records.len());
        let mut queue: VecDeque<Pending> = VecDeque::from([Pending::first(records)]);
        while let Some(Pending {
            records: recs,
            attempt,
            resend,
        }) = queue.pop_front()
        {
            if let Some((code, message)) = self.fatal_error() {
                done.extend(failed(recs, &code, &message));
                continue;
            }
            let batch = Batch {
                op,
                records: recs,
                resend,
            };
            let res = self
                .requests
                .attempt(op, self.dest.send(&self.sync, &batch))
                .await;
            let recs = batch.records;
            match res {
                Ok(outcomes) if outcomes.len() == recs.len() => {
                    let sent = Pending {
                        records: recs,
                        attempt,
                        resend,
                    };
                    self.settle(&mut queue, &mut done, sent, outcomes).await
                }
                Ok(outcomes) => {
                    let message = format!(
                        "the connector answered {} outcomes for {} records",
                        outcomes.len(),
                        recs.len()
                    );
                    done.extend(failed(recs, "connector_error", &message));
                }
                Err(err) => {
                    let sent = Pending {
                        records: recs,
                        attempt,
                        resend,
                    };
                    self.on_error(&mut queue, &mut done, sent, err).await
                }
            }
        }
        Delivered { op, results: done }
    }

    /// Records the outcomes of an answered batch; records reported `failed` are tried again
    /// as a new request of their own (a new `resend`: the destination answered, so this is not
    /// a repeat of the same request).
    async fn settle(
        &self,
        queue: &mut VecDeque<Pending>,
        done: &mut Vec<(OutRecord, RecordOutcome)>,
        sent: Pending,
        outcomes: Vec<RecordOutcome>,
    ) {
        let Pending {
            records: recs,
            attempt,
            resend,
        } = sent;
        let mut again = Vec::new();
        let mut last = None;
        for (r, o) in recs.into_iter().zip(outcomes) {
            match o {
                RecordOutcome::Failed { code, message } => {
                    last = Some(SendError::Transient {
                        code: code.clone(),
                        message: message.clone(),
                        retry_after: None,
                    });
                    again.push((r, RecordOutcome::Failed { code, message }));
                }
                other => done.push((r, other)),
            }
        }
        let Some(err) = last else { return };
        match self.requests.after_failure(attempt, &err) {
            Retry::After(wait) => {
                tokio::time::sleep(wait).await;
                queue.push_front(Pending {
                    records: again.into_iter().map(|(r, _)| r).collect(),
                    attempt: attempt + 1,
                    resend: resend + 1,
                });
            }
            Retry::GiveUp(_) | Retry::Stop(_) => done.extend(again),
        }
    }

    async fn on_error(
        &self,
        queue: &mut VecDeque<Pending>,
        done: &mut Vec<(OutRecord, RecordOutcome)>,
        sent: Pending,
        err: SendError,
    ) {
        let Pending {
            records: mut recs,
            attempt,
            resend,
        } = sent;
        match err {
            SendError::BatchRejected { code, message } if recs.len() == 1 => {
                done.extend(recs.into_iter().map(|r| {
                    (
                        r,
                        RecordOutcome::Rejected {
                            code: code.clone(),
                            message: message.clone(),
                        },
                    )
                }));
            }
            SendError::BatchRejected { .. } => {
                self.splits.fetch_add(1, Ordering::Relaxed);
                // Halves are new requests: the destination refused the whole one.
                let right = recs.split_off(recs.len() / 2);
                for half in [right, recs] {
                    queue.push_front(Pending {
                        records: half,
                        attempt,
                        resend: resend + 1,
                    });
                }
            }
            SendError::Fatal { code, message } => {
                tracing::error!(%code, %message, "destination refused the write; stopping delivery");
                self.set_fatal(&code, &message);
                done.extend(failed(recs, &code, &message));
            }
            SendError::Transient {
                ref code,
                ref message,
                ..
            } => {
                let (code, message) = (code.clone(), message.clone());
                let sent = Pending {
                    records: recs,
                    attempt,
                    resend,
                };
                self.retry_or_fail(queue, done, sent, &err, &code, &message)
                    .await
            }
            SendError::RateLimited { ref message, .. } => {
                let message = message.clone();
                let sent = Pending {
                    records: recs,
                    attempt,
                    resend,
                };
                self.retry_or_fail(queue, done, sent, &err, "rate_limited", &message)
                    .await
            }
        }
    }

    /// A transport failure: the same request again (same `resend`: the destination may have
    /// processed it), or the records failed.
    async fn retry_or_fail(
        &self,
        queue: &mut VecDeque<Pending>,
        done: &mut Vec<(OutRecord, RecordOutcome)>,
        sent: Pending,
        err: &SendError,
        code: &str,
        message: &str,
    ) {
        let recs = sent.records;
        match self.requests.after_failure(sent.attempt, err) {
            Retry::After(wait) => {
                tokio::time::sleep(wait).await;
                queue.push_front(Pending {
                    records: recs,
                    attempt: sent.attempt + 1,
                    resend: sent.resend,
                });
            }
            Retry::GiveUp(why) => done.extend(failed(recs, code, &format!("{message} ({why})"))),
            Retry::Stop(why) => {
                // A quota that resets in hours: stop this delivery now rather than hold the
                // run; the records are planned again by the next run.
                let message = format!("{message} ({why})");
                self.set_fatal(code, &message);
                done.extend(failed(recs, code, &message));
            }
        }
    }
}

/// Records waiting to be sent, with the attempts so far and their request generation.
struct Pending {
    records: Vec<OutRecord>,
    attempt: u32,
    resend: u32,
}

impl Pending {
    fn first(records: Vec<OutRecord>) -> Self {
        Pending {
            records,
            attempt: 1,
            resend: 0,
        }
    }
}

fn failed(
    recs: Vec<OutRecord>,
    code: &str,
    message: &str,
) -> impl Iterator<Item = (OutRecord, RecordOutcome)> {
    let (code, message) = (code.to_string(), message.to_string());
    recs.into_iter().map(move |r| {
        (
            r,
            RecordOutcome::Failed {
                code: code.clone(),
                message: message.clone(),
            },
        )
    })
}
