//! The run split into steps that a state machine chains (one Lambda invocation each). Steps
//! pass only object keys and counts between them; everything else is in the stores. Every step
//! can be retried: it rewrites the same objects, and apply resumes after acknowledged records.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::apply::{apply_files, apply_units, finish_apply, ApplyOutcome};
use super::extract::{extract, ExtractOptions};
use super::lifecycle::{approve, finish_run, reject, request_approval};
use super::parts::ExtractManifest;
use super::plan::{
    plan_shard, prepare_plan, read_manifest, summarize_plan, PlanContext, ShardPlan,
};
use super::safety::SafetyVerdict;
use super::{run_prefix, Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::{Counts, RunRecord, RunStatus, StoreError};

async fn put_json<T: Serialize>(engine: &Engine, key: &str, v: &T) -> Result<(), EngineError> {
    let body = serde_json::to_vec(v).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    engine.objects.put(key, Bytes::from(body)).await?;
    Ok(())
}

async fn get_json<T: DeserializeOwned>(engine: &Engine, key: &str) -> Result<T, EngineError> {
    let body = engine.objects.get(key).await?;
    serde_json::from_slice(&body).map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))
}

fn context_key(run_id: &str) -> String {
    format!("{}context.json", run_prefix("plan", run_id))
}

fn shard_plan_key(run_id: &str, shard: u32) -> String {
    format!("{}shard-{shard:04}.json", run_prefix("plan", run_id))
}

fn unit_result_key(run_id: &str, unit: usize) -> String {
    format!("{}unit-{unit:05}.json", run_prefix("apply", run_id))
}

async fn running(engine: &Engine, run_id: &str) -> Result<RunRecord, EngineError> {
    let run = engine.runs.get_run(run_id).await?;
    if run.status.is_terminal() {
        return Err(EngineError::Invalid(format!(
            "run {run_id} already ended ({})",
            run.status.as_str()
        )));
    }
    engine.runs.heartbeat(&run.sync, run_id).await?;
    Ok(run)
}

/// What extract hands to the plan fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractStep {
    /// Rows the model returned.
    pub rows: u64,
    /// Shard count.
    pub shards: u32,
    /// Object key of the JSON list `[{"shard": n}, ...]` the plan Map iterates.
    pub shards_key: String,
}

/// Prepares the plan (destination check, baseline) and extracts the model.
pub async fn step_extract(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
) -> Result<ExtractStep, EngineError> {
    let mut run = running(engine, run_id).await?;
    let t = std::time::Instant::now();
    let ctx = prepare_plan(engine, &mut run, sync, false).await?;
    put_json(engine, &context_key(run_id), &ctx).await?;
    let manifest = extract(engine, &run, sync, ctx.shards, ExtractOptions::default()).await?;
    let shards: Vec<serde_json::Value> = (0..ctx.shards)
        .map(|s| serde_json::json!({ "shard": s }))
        .collect();
    let shards_key = format!("{}shards.json", run_prefix("extract", run_id));
    put_json(engine, &shards_key, &shards).await?;
    run.timings
        .insert("extract_ms".into(), t.elapsed().as_millis() as u64);
    run.updated_at = chrono::Utc::now();
    engine.runs.put_run(&run).await?;
    Ok(ExtractStep {
        rows: manifest.rows,
        shards: ctx.shards,
        shards_key,
    })
}

/// What one shard's planning reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStep {
    /// The shard.
    pub shard: u32,
    /// Operations planned in it.
    pub ops: u64,
}

/// Plans one shard and stores its plan summary.
pub async fn step_plan_shard(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    shard: u32,
) -> Result<ShardStep, EngineError> {
    running(engine, run_id).await?;
    let ctx: PlanContext = get_json(engine, &context_key(run_id)).await?;
    let manifest: ExtractManifest = get_json(
        engine,
        &format!("{}manifest.json", run_prefix("extract", run_id)),
    )
    .await?;
    // The destination answers lookups and redacts what the record log may show.
    let dest = Some(engine.destination(sync).await?);
    let plan = plan_shard(
        engine,
        run_id,
        sync,
        &ctx,
        &manifest,
        shard,
        dest.as_deref(),
    )
    .await?;
    put_json(engine, &shard_plan_key(run_id, shard), &plan).await?;
    Ok(ShardStep {
        shard,
        ops: plan.file_ops.iter().sum(),
    })
}

/// The safety decision, as the state machine's Choice reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Apply.
    Proceed,
    /// Wait for a person.
    NeedsApproval,
    /// Stop; nothing to approve.
    Abort,
}

/// What summarizing the plan hands on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryStep {
    /// What the safety rules decided.
    pub decision: Decision,
    /// Why, when not proceeding.
    pub reason: Option<String>,
    /// Planned counts.
    pub counts: Counts,
    /// Apply units.
    pub units: usize,
    /// Object key of the JSON list `[{"unit": n}, ...]` the apply Map iterates.
    pub units_key: String,
    /// How long an approval request may wait.
    pub approval_timeout_seconds: u64,
}

/// Combines the shard plans, applies the safety rules and lays out the apply units.
pub async fn step_summarize(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
) -> Result<SummaryStep, EngineError> {
    let mut run = running(engine, run_id).await?;
    let ctx: PlanContext = get_json(engine, &context_key(run_id)).await?;
    let extract_manifest: ExtractManifest = get_json(
        engine,
        &format!("{}manifest.json", run_prefix("extract", run_id)),
    )
    .await?;
    let mut plans: Vec<ShardPlan> = Vec::with_capacity(ctx.shards as usize);
    for shard in 0..ctx.shards {
        // A shard whose planner never stored its result must not be mistaken for an empty one.
        plans.push(
            get_json(engine, &shard_plan_key(run_id, shard))
                .await
                .map_err(|e| match e {
                    EngineError::Store(StoreError::NotFound(_)) => {
                        EngineError::Corrupt(format!("the plan of shard {shard} is missing"))
                    }
                    other => other,
                })?,
        );
    }
    let manifest = summarize_plan(engine, &mut run, sync, &ctx, &extract_manifest, &plans).await?;
    let units = apply_units(&manifest);
    let list: Vec<serde_json::Value> = (0..units.len())
        .map(|u| serde_json::json!({ "unit": u }))
        .collect();
    let units_key = format!("{}units.json", run_prefix("plan", run_id));
    put_json(engine, &units_key, &list).await?;
    let (decision, reason) = match &manifest.verdict {
        SafetyVerdict::Proceed => (Decision::Proceed, None),
        SafetyVerdict::NeedsApproval { reason } => (Decision::NeedsApproval, Some(reason.clone())),
        SafetyVerdict::Abort { reason } => (Decision::Abort, Some(reason.clone())),
    };
    Ok(SummaryStep {
        decision,
        reason,
        counts: manifest.counts,
        units: units.len(),
        units_key,
        approval_timeout_seconds: (sync.safety.approval_timeout_hours * 3600.0).ceil() as u64,
    })
}

/// Records the approval request with the state machine's task token and notifies approvers.
pub async fn step_request_approval(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    task_token: &str,
) -> Result<(), EngineError> {
    let mut run = running(engine, run_id).await?;
    let manifest = read_manifest(engine, &run).await?;
    let reason = match &manifest.verdict {
        SafetyVerdict::NeedsApproval { reason } => reason.clone(),
        other => format!("unexpected approval request for verdict {other:?}"),
    };
    request_approval(
        engine,
        &mut run,
        sync,
        &manifest,
        &reason,
        Some(task_token.to_string()),
    )
    .await
}

/// A person's decision, with the task token to resume the state machine with.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionTaken {
    /// The run after the decision.
    pub run: RunRecord,
    /// The token the execution waits on.
    pub task_token: Option<String>,
    /// The error to end the wait with (rejected, stale), or none to continue to apply.
    pub failure: Option<(String, String)>,
}

/// Records `approve` or `reject` for a run waiting in a state machine.
pub async fn step_decide(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    approve_it: bool,
    by: &str,
    note: Option<&str>,
) -> Result<DecisionTaken, EngineError> {
    let before = engine.runs.get_run(run_id).await?;
    let task_token = before.approval.as_ref().and_then(|a| a.task_token.clone());
    if !approve_it {
        let run = reject(engine, run_id, by, note).await?;
        let why = run.error.clone().unwrap_or_default();
        return Ok(DecisionTaken {
            run,
            task_token,
            failure: Some(("Retl.Rejected".into(), why)),
        });
    }
    match approve(engine, sync, run_id, by, note).await {
        Ok(run) => Ok(DecisionTaken {
            run,
            task_token,
            failure: None,
        }),
        Err(e @ EngineError::StalePlan { .. }) => Ok(DecisionTaken {
            run: engine.runs.get_run(run_id).await?,
            task_token,
            failure: Some((e.error_name().into(), e.to_string())),
        }),
        Err(e) => Err(e),
    }
}

/// What one apply unit reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyStep {
    /// The unit.
    pub unit: usize,
    /// Its outcome.
    pub counts: Counts,
}

/// Applies one unit of plan files. `resume` (a retried invocation) skips records an earlier
/// attempt delivered; `parallel_units` divides the destination's rate limit between the
/// concurrent apply invocations.
pub async fn step_apply_unit(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    unit: usize,
    resume: bool,
    parallel_units: usize,
) -> Result<ApplyStep, EngineError> {
    let run = running(engine, run_id).await?;
    let manifest = read_manifest(engine, &run).await?;
    let units = apply_units(&manifest);
    let files = units
        .get(unit)
        .ok_or_else(|| EngineError::Corrupt(format!("apply unit {unit} does not exist")))?;
    let engine = &Engine {
        rate_share: parallel_units.max(1),
        ..engine.clone()
    };
    let deliverer = engine.deliverer(sync, manifest.counts.changes()).await?;
    let outcome = apply_files(engine, run_id, sync, &manifest, &deliverer, files, resume).await?;
    put_json(engine, &unit_result_key(run_id, unit), &outcome).await?;
    Ok(ApplyStep {
        unit,
        counts: outcome.counts,
    })
}

/// How the state machine reached its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Every apply unit ran.
    Applied,
    /// The safety rules aborted the run.
    Aborted,
    /// The approver refused.
    Rejected,
    /// The approval request timed out.
    Expired,
    /// A step failed for good.
    Failed,
}

/// Records the run's end state exactly once, releases the lock on every path, and sums what
/// the apply units did (a unit with no stored result counts its records as failed).
pub async fn step_finalize(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    ending: Ending,
    error: Option<(String, String)>,
) -> Result<RunRecord, EngineError> {
    let mut run = engine.runs.get_run(run_id).await?;
    if run.status.is_terminal() {
        engine.runs.unlock(&run.sync, run_id).await?;
        return Ok(run);
    }
    let applied = if run.plan.is_some() {
        let manifest = read_manifest(engine, &run).await?;
        let mut total = ApplyOutcome::default();
        let mut any = false;
        for (unit, files) in apply_units(&manifest).iter().enumerate() {
            match get_json::<ApplyOutcome>(engine, &unit_result_key(run_id, unit)).await {
                Ok(out) => {
                    any = true;
                    total.add(&out);
                }
                Err(EngineError::Store(StoreError::NotFound(_))) => {
                    let ops: u64 = manifest
                        .files
                        .iter()
                        .zip(&manifest.file_ops)
                        .filter(|(f, _)| files.contains(f))
                        .map(|(_, n)| *n)
                        .sum();
                    total.counts.failed += ops;
                }
                Err(e) => return Err(e),
            }
        }
        Some((manifest, total, any))
    } else {
        None
    };
    match (ending, applied) {
        (Ending::Applied, Some((manifest, total, _))) => {
            finish_apply(engine, &mut run, sync, &manifest, &total, None).await?;
            return Ok(run);
        }
        (Ending::Failed, Some((manifest, total, true))) => {
            // Some units delivered: keep their counts and move the generation, then fail.
            let failure = error
                .clone()
                .unwrap_or_else(|| ("Retl.Error".into(), "a step failed".into()));
            finish_apply(engine, &mut run, sync, &manifest, &total, Some(failure)).await?;
            return Ok(run);
        }
        _ => {}
    }
    let status = match ending {
        Ending::Applied | Ending::Failed => RunStatus::Failed,
        Ending::Aborted => RunStatus::Aborted,
        Ending::Rejected => RunStatus::Rejected,
        Ending::Expired => RunStatus::Expired,
    };
    match (ending, error) {
        (Ending::Aborted, _) => {
            let manifest = read_manifest(engine, &run).await.ok();
            run.error = manifest.and_then(|m| match m.verdict {
                SafetyVerdict::Abort { reason } => Some(reason),
                _ => None,
            });
            run.error_name = Some("Retl.SafetyAbort".into());
        }
        (Ending::Expired, _) => {
            run.error = Some("the approval request expired before anyone approved it".into());
        }
        (_, Some((name, message))) => {
            run.error = Some(message);
            run.error_name = Some(name);
        }
        _ => {}
    }
    finish_run(engine, &mut run, status).await?;
    Ok(run)
}
