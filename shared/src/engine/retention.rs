//! Retention of local runs' artefacts: what S3's lifecycle rules do for the AWS bundle, done by
//! the local host after each run, so that a state folder does not grow with every run.
//!
//! A run's age is the time in its id (a ULID), the moment it started. Runs still running or
//! awaiting approval keep everything, whatever their age: an approval can come late.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Engine, EngineError};
use crate::config::RetentionConfig;
use crate::ports::StoreError;

/// The object kinds (the first part of every key, see [`super::keys`]) and their periods.
fn periods(config: &RetentionConfig) -> [(&'static str, u32); 4] {
    [
        ("extract", config.extract_days),
        ("plan", config.plan_days),
        ("apply", config.plan_days),
        ("rejected", config.record_log_days),
    ]
}

/// What a pruning pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// `(kind, run id)` of every run folder removed.
    pub removed: Vec<(String, String)>,
}

/// The start of a run from its id; `None` for an id that is not a ULID (kept).
fn started_ms(run_id: &str) -> Option<u64> {
    ulid::Ulid::from_string(&run_id.to_uppercase())
        .ok()
        .map(|u| u.timestamp_ms())
}

/// Removes the artefacts of finished runs older than their kind's period at `now_ms`.
pub async fn prune_artifacts(
    engine: &Engine,
    config: &RetentionConfig,
    now_ms: u64,
) -> Result<Pruned, EngineError> {
    let mut pruned = Pruned::default();
    for (kind, days) in periods(config) {
        let limit = Duration::from_secs(u64::from(days) * 86_400).as_millis() as u64;
        let runs: BTreeSet<String> = engine
            .objects
            .list(&format!("{kind}/"))
            .await?
            .iter()
            .filter_map(|key| key.split('/').nth(1).map(str::to_string))
            .collect();
        for run_id in runs {
            let Some(started) = started_ms(&run_id) else {
                continue;
            };
            if now_ms.saturating_sub(started) <= limit || !finished(engine, &run_id).await? {
                continue;
            }
            engine
                .objects
                .delete_prefix(&format!("{kind}/{run_id}/"))
                .await?;
            pruned.removed.push((kind.to_string(), run_id));
        }
    }
    Ok(pruned)
}

/// Whether the run has ended; a run whose record is gone has ended too (nothing can resume it).
async fn finished(engine: &Engine, run_id: &str) -> Result<bool, EngineError> {
    match engine.runs.get_run(run_id).await {
        Ok(run) => Ok(run.status.is_terminal()),
        Err(StoreError::NotFound(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}
