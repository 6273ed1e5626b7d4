//! The local host: `retl run`, `retl plan` and `retl approve` drive the same steps the AWS
//! state machine chains ([`super::steps`]), in the same order, in this process: plan shards
//! on parallel tasks (the Map), apply units one after the other, retries on the same errors
//! as the state machine's `Retry`, and every failure ends in `step_finalize(Failed)` as its
//! Catch does.

use std::collections::BTreeSet;

use futures::StreamExt;

use super::lifecycle::{finish_run, start_run, StartOptions};
use super::plan::read_manifest;
use super::retries::retrying;
use super::steps::{
    step_apply_unit, step_decide, step_extract_with, step_finalize, step_plan_shard,
    step_request_approval, step_summarize, Decision, Ending, ExtractRequest,
};
use super::{Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::{RunRecord, RunStatus};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct LocalRunOptions {
    /// Stop after planning (`retl plan`).
    pub dry_run: bool,
    /// Re-send every row even if unchanged.
    pub full_resync: bool,
    /// What started the run.
    pub trigger: String,
    /// Note for a new config version.
    pub note: Option<String>,
    /// Plan only these keys (`retl retry`).
    pub only_keys: Option<BTreeSet<String>>,
}

/// Runs a sync start to end. Errors before the run exists (paused, locked) are returned as
/// errors; once the run exists, failures are recorded on it and the run is returned.
pub async fn run_local(
    engine: &Engine,
    sync: &SyncDef,
    opts: LocalRunOptions,
) -> Result<RunRecord, EngineError> {
    // Starting is a step too: a store busy with other processes starting the same sync
    // ("database is locked") is retried like any step, so the start ends in a run or a
    // clean refusal. A failed start wrote nothing (the lock and the run are one write).
    let start = StartOptions {
        trigger: opts.trigger.clone(),
        note: opts.note.clone(),
        run_id: None,
    };
    let run = retrying(|| start_run(engine, sync, start.clone())).await?;
    let run_id = run.run_id;
    match drive(engine, sync, &run_id, &opts).await {
        Ok(run) => Ok(run),
        Err(e) => fail(engine, sync, &run_id, e).await,
    }
}

/// Removes a dry run's planned operations once whoever ran it has read them: nothing applies
/// them (a run plans again), and a dozen dry runs of a large model would otherwise keep
/// hundreds of megabytes. The run's counts stay for `retl runs show`.
pub async fn discard_dry_run(engine: &Engine, run_id: &str) -> Result<(), EngineError> {
    let ops = crate::engine::keys::RunKeys::new(run_id).plan_ops_prefix();
    Ok(engine.objects.delete_prefix(&ops).await?)
}

/// The state machine's Catch: a step failed for good.
async fn fail(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    e: EngineError,
) -> Result<RunRecord, EngineError> {
    let error = Some((e.error_name().to_string(), e.to_string()));
    step_finalize(engine, sync, run_id, Ending::Failed, error).await
}

async fn drive(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    opts: &LocalRunOptions,
) -> Result<RunRecord, EngineError> {
    let request = ExtractRequest {
        full_resync: opts.full_resync,
        only_keys: opts.only_keys.clone(),
    };
    let extracted = retrying(|| step_extract_with(engine, sync, run_id, &request)).await?;
    plan_shards(engine, sync, run_id, extracted.shards).await?;
    let summary = retrying(|| step_summarize(engine, sync, run_id)).await?;
    match summary.decision {
        Decision::Abort => step_finalize(engine, sync, run_id, Ending::Aborted, None).await,
        _ if opts.dry_run => {
            let mut run = engine.runs.get_run(run_id).await?;
            finish_run(engine, &mut run, RunStatus::Planned).await?;
            Ok(run)
        }
        Decision::NeedsApproval => {
            step_request_approval(engine, sync, run_id).await?;
            Ok(engine.runs.get_run(run_id).await?)
        }
        Decision::Proceed => apply_all(engine, sync, run_id, summary.units).await,
    }
}

/// The plan Map: every shard on its own task, as many at once as there are cores.
async fn plan_shards(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    shards: u32,
) -> Result<(), EngineError> {
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Result<_, EngineError>> = futures::stream::iter(0..shards)
        .map(|shard| {
            let (engine, sync, run_id) = (engine.clone(), sync.clone(), run_id.to_string());
            tokio::spawn(async move {
                retrying(|| step_plan_shard(&engine, &sync, &run_id, shard)).await
            })
        })
        .buffer_unordered(width)
        .map(|joined| {
            joined.map_err(|e| EngineError::Corrupt(format!("planner task failed: {e}")))?
        })
        .collect()
        .await;
    results.into_iter().try_for_each(|r| r.map(|_| ()))
}

/// The apply Map, one unit after the other (they share the destination's limits), then
/// finalize.
async fn apply_all(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    units: usize,
) -> Result<RunRecord, EngineError> {
    for unit in 0..units {
        // A retried unit resumes after what the failed attempt delivered.
        let mut attempt = 0;
        retrying(|| {
            attempt += 1;
            step_apply_unit(engine, sync, run_id, unit, attempt > 1, 1)
        })
        .await?;
    }
    step_finalize(engine, sync, run_id, Ending::Applied, None).await
}

/// A decision on a run awaiting approval (`retl approve` / `retl reject`): approved runs
/// apply exactly their reviewed plan, as the state machine does after its wait.
pub async fn decide_local(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    approve: bool,
    by: &str,
    note: Option<&str>,
) -> Result<RunRecord, EngineError> {
    let decided = step_decide(engine, sync, run_id, approve, by, note).await?;
    if let Some(refusal) = decided.failure {
        return match refusal.into_error(run_id) {
            Some(stale) => Err(stale),
            None => Ok(decided.run),
        };
    }
    let units = super::apply::apply_units(&read_manifest(engine, &decided.run).await?).len();
    match apply_all(engine, sync, run_id, units).await {
        Ok(run) => Ok(run),
        Err(e) => fail(engine, sync, run_id, e).await,
    }
}
