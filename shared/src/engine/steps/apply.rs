//! The apply step: one unit of plan files through the delivery framework.

use serde::{Deserialize, Serialize};

use super::{put_json, running};
use crate::config::SyncDef;
use crate::engine::apply::{apply_files, apply_units};
use crate::engine::keys::RunKeys;
use crate::engine::lifecycle::approval_holds;
use crate::engine::plan::read_manifest;
use crate::engine::safety::SafetyVerdict;
use crate::engine::{Engine, EngineError};
use crate::ports::Counts;

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
    if matches!(manifest.verdict, SafetyVerdict::NeedsApproval { .. }) {
        approval_holds(&run)?;
    }
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
    put_json(engine, &RunKeys::new(run_id).unit_result(unit), &outcome).await?;
    Ok(ApplyStep {
        unit,
        counts: outcome.counts,
    })
}
