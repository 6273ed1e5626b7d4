//! The finalize step: the run's one end state, recorded exactly once, with the lock
//! released on every path.

use serde::{Deserialize, Serialize};

use super::get_json;
use crate::config::SyncDef;
use crate::engine::apply::{apply_units, finish_apply, ApplyOutcome};
use crate::engine::keys::RunKeys;
use crate::engine::lifecycle::finish_run;
use crate::engine::plan::{read_manifest, PlanManifest};
use crate::engine::safety::SafetyVerdict;
use crate::engine::{Engine, EngineError};
use crate::ports::{RunRecord, RunStatus, StoreError};

/// How the run reached its end.
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

/// What the apply units did, summed from their stored outcomes; a unit with no stored
/// outcome counts its records as failed. The flag says whether any unit stored one.
async fn applied(
    engine: &Engine,
    run_id: &str,
    manifest: &PlanManifest,
) -> Result<(ApplyOutcome, bool), EngineError> {
    let mut total = ApplyOutcome::default();
    let mut any = false;
    for (unit, files) in apply_units(manifest).iter().enumerate() {
        match get_json::<ApplyOutcome>(engine, &RunKeys::new(run_id).unit_result(unit)).await {
            Ok(out) => {
                any = true;
                total.add(&out);
            }
            Err(EngineError::Store(StoreError::NotFound(_))) => {
                total.counts.failed += manifest
                    .files
                    .iter()
                    .zip(&manifest.file_ops)
                    .filter(|(f, _)| files.contains(f))
                    .map(|(_, n)| *n)
                    .sum::<u64>();
            }
            Err(e) => return Err(e),
        }
    }
    Ok((total, any))
}

/// Records the run's end state exactly once, releases the lock on every path, and sums what
/// the apply units did.
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
    if matches!(ending, Ending::Applied | Ending::Failed) && run.plan.is_some() {
        let manifest = read_manifest(engine, &run).await?;
        let (total, any) = applied(engine, run_id, &manifest).await?;
        if ending == Ending::Applied || any {
            // Some units delivered: keep their counts and move the key-set generation, even
            // when a step failed for good afterwards.
            let failure = (ending == Ending::Failed).then(|| {
                error
                    .clone()
                    .unwrap_or_else(|| ("Retl.Error".into(), "a step failed".into()))
            });
            let since = run.approval.as_ref().and_then(|a| a.decided_at);
            let since = since.or(manifest.created_at);
            if let Some(since) = since {
                run.timings
                    .insert("apply_ms".into(), super::elapsed_ms(since));
            }
            finish_apply(engine, &mut run, sync, &manifest, &total, failure).await?;
            return Ok(run);
        }
    }
    end_without_apply(engine, &mut run, ending, error).await?;
    Ok(run)
}

/// Ends a run that wrote nothing: aborted, rejected, expired, or failed before applying.
async fn end_without_apply(
    engine: &Engine,
    run: &mut RunRecord,
    ending: Ending,
    error: Option<(String, String)>,
) -> Result<(), EngineError> {
    let status = match ending {
        Ending::Applied | Ending::Failed => RunStatus::Failed,
        Ending::Aborted => RunStatus::Aborted,
        Ending::Rejected => RunStatus::Rejected,
        Ending::Expired => RunStatus::Expired,
    };
    match (ending, error) {
        (Ending::Aborted, _) => {
            let manifest = read_manifest(engine, run).await.ok();
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
    finish_run(engine, run, status).await
}
