//! One whole run in this process: what `retl run` and `retl plan` do.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;

use super::apply::{apply_files, apply_units, finish_apply, ApplyOutcome};
use super::extract::{extract, ExtractOptions};
use super::lifecycle::{finish_run, request_approval, start_run, StartOptions};
use super::plan::{
    plan_shard, prepare_plan, read_manifest, summarize_plan, PlanManifest, ShardPlan,
};
use super::safety::SafetyVerdict;
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
    /// Extract tuning.
    pub extract: ExtractOptions,
    /// Plan only these keys (`retl retry`).
    pub only_keys: Option<std::collections::BTreeSet<String>>,
}

/// Runs a sync start to end. Errors before the run exists (paused, locked) are returned as
/// errors; once the run exists, failures are recorded on it and the run is returned.
pub async fn run_local(
    engine: &Engine,
    sync: &SyncDef,
    opts: LocalRunOptions,
) -> Result<RunRecord, EngineError> {
    let mut run = start_run(
        engine,
        sync,
        StartOptions {
            trigger: opts.trigger.clone(),
            note: opts.note.clone(),
            run_id: None,
        },
    )
    .await?;
    if let Err(e) = drive(engine, &mut run, sync, &opts).await {
        run.error = Some(e.to_string());
        run.error_name = Some(e.error_name().to_string());
        finish_run(engine, &mut run, RunStatus::Failed).await?;
    }
    Ok(run)
}

async fn drive(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    opts: &LocalRunOptions,
) -> Result<(), EngineError> {
    let t = Instant::now();
    let mut ctx = prepare_plan(engine, run, sync, opts.full_resync).await?;
    ctx.only_keys = opts.only_keys.clone().map(Arc::new);
    let manifest = extract(engine, run, sync, ctx.shards, opts.extract).await?;
    run.timings
        .insert("extract_ms".into(), t.elapsed().as_millis() as u64);

    let t = Instant::now();
    let dest = engine.destination(sync).await?;
    let manifest = Arc::new(manifest);
    let shard_plans: Vec<ShardPlan> = futures::stream::iter(0..ctx.shards)
        .map(|shard| {
            let (engine, sync, ctx, manifest, dest) = (
                engine.clone(),
                sync.clone(),
                ctx.clone(),
                Arc::clone(&manifest),
                Arc::clone(&dest),
            );
            let run_id = run.run_id.clone();
            // Shards are independent: plan them on separate tasks to use every core.
            tokio::spawn(async move {
                plan_shard(
                    &engine,
                    &run_id,
                    &sync,
                    &ctx,
                    &manifest,
                    shard,
                    Some(dest.as_ref()),
                )
                .await
            })
        })
        .buffer_unordered(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|joined| {
            joined.map_err(|e| EngineError::Corrupt(format!("planner task failed: {e}")))?
        })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let plan = summarize_plan(engine, run, sync, &ctx, &manifest, &shard_plans).await?;
    run.timings
        .insert("plan_ms".into(), t.elapsed().as_millis() as u64);
    engine
        .objects
        .delete_prefix(&super::run_prefix("extract", &run.run_id))
        .await?;

    match &plan.verdict {
        SafetyVerdict::Abort { reason } => {
            run.error = Some(reason.clone());
            run.error_name = Some("Retl.SafetyAbort".into());
            finish_run(engine, run, RunStatus::Aborted).await
        }
        _ if opts.dry_run => finish_run(engine, run, RunStatus::Planned).await,
        SafetyVerdict::NeedsApproval { reason } => {
            request_approval(engine, run, sync, &plan, reason, None).await
        }
        SafetyVerdict::Proceed => apply_plan(engine, run, sync, &plan).await,
    }
}

/// Applies every file of a plan in this process and ends the run.
pub async fn apply_plan(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    plan: &PlanManifest,
) -> Result<(), EngineError> {
    let t = Instant::now();
    let deliverer = engine.deliverer(sync, plan.counts.changes()).await?;
    let mut total = ApplyOutcome::default();
    // After a fatal destination error the deliverer sends nothing more; every remaining
    // record still passes through it so that it ends counted as failed.
    for unit in apply_units(plan) {
        let out = apply_files(engine, &run.run_id, sync, plan, &deliverer, &unit, false).await?;
        total.add(&out);
    }
    run.timings
        .insert("apply_ms".into(), t.elapsed().as_millis() as u64);
    finish_apply(engine, run, sync, plan, &total, None).await
}

/// Applies the plan of an approved run (after [`super::approve`]).
pub async fn apply_approved(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
) -> Result<(), EngineError> {
    let plan = read_manifest(engine, run).await?;
    if let Err(e) = apply_plan(engine, run, sync, &plan).await {
        run.error = Some(e.to_string());
        run.error_name = Some(e.error_name().to_string());
        finish_run(engine, run, RunStatus::Failed).await?;
    }
    Ok(())
}
