//! The trial runner: a bounded number of seeded trials, a few at a time, each in its own task
//! (a panic fails that trial only). It counts the trials that held, prints one summary line,
//! and on failure names each failed trial with the seeds that replay it alone.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::rng::{campaign_seed, Rng};

/// What a trial that held reports: short tags counted in the summary (`killed`, `changed`).
pub type Tags = Vec<String>;

/// A trial's result: its tags, or why it did not hold.
pub type TrialResult = Result<Tags, String>;

/// One trial: its index, its own seed and a generator started from it.
#[derive(Debug, Clone)]
pub struct Trial {
    /// 0-based position in the campaign.
    pub index: u64,
    /// The trial's seed (derived from the campaign's seed and the index).
    pub seed: u64,
    /// The trial's random numbers.
    pub rng: Rng,
}

/// The counts of a finished campaign.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Trials run.
    pub trials: u64,
    /// Trials whose checks all held.
    pub held: u64,
    /// How many held trials reported each tag.
    pub tags: BTreeMap<String, u64>,
}

impl Summary {
    /// How many held trials reported `tag`.
    pub fn tagged(&self, tag: &str) -> u64 {
        self.tags.get(tag).copied().unwrap_or(0)
    }
}

/// A named campaign, seeded from `RETL_CAMPAIGN_SEED`; `RETL_CAMPAIGN_TRIAL=N` runs only trial
/// N (with the same seed it had in the full campaign).
pub struct Campaign {
    name: String,
    seed: u64,
    only: Option<u64>,
}

impl Campaign {
    /// The campaign `name` (used in the summary line and in replay instructions).
    pub fn new(name: &str) -> Self {
        let only = std::env::var("RETL_CAMPAIGN_TRIAL").ok().map(|t| {
            t.trim()
                .parse()
                .unwrap_or_else(|_| panic!("RETL_CAMPAIGN_TRIAL={t:?} is not a trial number"))
        });
        Campaign {
            name: name.to_string(),
            seed: campaign_seed(),
            only,
        }
    }

    /// The campaign's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A generator for choices made once for the whole campaign (not per trial).
    pub fn rng(&self) -> Rng {
        Rng::new(Rng::derive(self.seed, u64::MAX))
    }

    /// Runs `count` trials, `parallel` at a time, prints the summary line, and panics naming
    /// every trial that did not hold. Returns the counts when all held.
    pub async fn run<F, Fut>(&self, count: u64, parallel: usize, trial: F) -> Summary
    where
        F: Fn(Trial) -> Fut,
        Fut: Future<Output = TrialResult> + Send + 'static,
    {
        let started = Instant::now();
        let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
        let mut tasks = Vec::new();
        for index in (0..count).filter(|i| self.only.is_none_or(|o| o == *i)) {
            let seed = Rng::derive(self.seed, index);
            let fut = trial(Trial {
                index,
                seed,
                rng: Rng::new(seed),
            });
            let gate = gate.clone();
            tasks.push((
                index,
                seed,
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await.expect("the gate stays open");
                    fut.await
                }),
            ));
        }
        let mut summary = Summary::default();
        let mut failures = Vec::new();
        for (index, seed, task) in tasks {
            summary.trials += 1;
            let result = match task.await {
                Ok(r) => r,
                Err(e) => Err(format!("the trial panicked: {}", panic_text(e))),
            };
            match result {
                Ok(tags) => {
                    summary.held += 1;
                    for t in tags {
                        *summary.tags.entry(t).or_default() += 1;
                    }
                }
                Err(why) => failures.push(format!(
                    "trial {index} (seed {seed:#x}; replay: RETL_CAMPAIGN_SEED={:#x} \
                     RETL_CAMPAIGN_TRIAL={index}): {why}",
                    self.seed
                )),
            }
        }
        let tags: Vec<String> = summary
            .tags
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        eprintln!(
            "campaign {}: {} trials, {} held{} (seed {:#x}, {:.1} s)",
            self.name,
            summary.trials,
            summary.held,
            if tags.is_empty() {
                String::new()
            } else {
                format!("; {}", tags.join(", "))
            },
            self.seed,
            started.elapsed().as_secs_f64()
        );
        assert!(
            failures.is_empty(),
            "campaign {}: {} of {} trials did not hold:\n{}",
            self.name,
            failures.len(),
            summary.trials,
            failures.join("\n")
        );
        summary
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "(a non-text panic)".into()),
        Err(e) => e.to_string(),
    }
}

/// Returns `Err(message)` from the enclosing trial when `cond` is false: checks that report
/// instead of panicking, so the runner can name the trial and its seed.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
