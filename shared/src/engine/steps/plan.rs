//! The plan steps: one per key-set shard (in parallel), then the summary that applies the
//! safety rules and lays out the apply units.

use serde::{Deserialize, Serialize};

use super::{elapsed_ms, get_json, put_json, running};
use crate::config::SyncDef;
use crate::engine::apply::apply_units;
use crate::engine::keys::RunKeys;
use crate::engine::parts::ExtractManifest;
use crate::engine::plan::{plan_shard, summarize_plan, PlanContext, ShardPlan};
use crate::engine::preview::write_approval_request;
use crate::engine::safety::SafetyVerdict;
use crate::engine::{Engine, EngineError};
use crate::ports::{Counts, StoreError};

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
    let keys = RunKeys::new(run_id);
    let ctx: PlanContext = get_json(engine, &keys.plan_context()).await?;
    let manifest: ExtractManifest = get_json(engine, &keys.extract_manifest()).await?;
    // The destination answers lookups and redacts what the record log may show.
    let dest = engine.destination(sync).await?;
    let plan = plan_shard(
        engine,
        run_id,
        sync,
        &ctx,
        &manifest,
        shard,
        Some(dest.as_ref()),
    )
    .await?;
    put_json(engine, &keys.shard_plan(shard), &plan).await?;
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

/// Every shard's stored plan; a shard whose planner never stored its result must not be
/// mistaken for an empty one.
async fn shard_plans(
    engine: &Engine,
    keys: RunKeys<'_>,
    shards: u32,
) -> Result<Vec<ShardPlan>, EngineError> {
    let mut plans = Vec::with_capacity(shards as usize);
    for shard in 0..shards {
        let plan = get_json(engine, &keys.shard_plan(shard))
            .await
            .map_err(|e| match e {
                EngineError::Store(StoreError::NotFound(_)) => {
                    EngineError::Corrupt(format!("the plan of shard {shard} is missing"))
                }
                other => other,
            })?;
        plans.push(plan);
    }
    Ok(plans)
}

/// Combines the shard plans, applies the safety rules, lays out the apply units and drops
/// the extract parts, which nothing reads any more.
pub async fn step_summarize(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
) -> Result<SummaryStep, EngineError> {
    let mut run = running(engine, run_id).await?;
    let keys = RunKeys::new(run_id);
    let ctx: PlanContext = get_json(engine, &keys.plan_context()).await?;
    let extracted: ExtractManifest = get_json(engine, &keys.extract_manifest()).await?;
    let plans = shard_plans(engine, keys, ctx.shards).await?;
    if let Some(done) = extracted.finished_at {
        run.timings.insert("plan_ms".into(), elapsed_ms(done));
    }
    let manifest = summarize_plan(engine, &mut run, sync, &ctx, &extracted, &plans).await?;
    let units = apply_units(&manifest);
    let list: Vec<serde_json::Value> = (0..units.len())
        .map(|u| serde_json::json!({ "unit": u }))
        .collect();
    let units_key = keys.unit_list();
    put_json(engine, &units_key, &list).await?;
    for part in &extracted.parts {
        engine.objects.delete_prefix(&part.key).await?;
    }
    if let SafetyVerdict::NeedsApproval { reason } = &manifest.verdict {
        // Here, not in the approval step: a large delete's preview takes as long as it takes
        // within the plan function's 15 minutes, and the approvers' text is ready when asked.
        write_approval_request(engine, sync, &manifest, reason).await?;
    }
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
