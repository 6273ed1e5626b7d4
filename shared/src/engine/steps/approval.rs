//! The approval steps: the request and a person's decision. (On AWS the state machine's task
//! token stays with the approval function, never on the run.)

use super::running;
use crate::config::SyncDef;
use crate::engine::lifecycle::{approve, reject, request_approval};
use crate::engine::plan::read_manifest;
use crate::engine::safety::SafetyVerdict;
use crate::engine::{Engine, EngineError};
use crate::ports::RunRecord;

/// Records the approval request and notifies the approvers; the run keeps its lock while it
/// waits. Returns what the approvers read (written when the plan was summarised).
pub async fn step_request_approval(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
) -> Result<String, EngineError> {
    let mut run = running(engine, run_id).await?;
    let manifest = read_manifest(engine, &run).await?;
    let reason = match &manifest.verdict {
        SafetyVerdict::NeedsApproval { reason } => reason.clone(),
        other => format!("unexpected approval request for verdict {other:?}"),
    };
    request_approval(engine, &mut run, sync, &manifest, &reason).await
}

/// Why an approval did not lead to applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The approver rejected the plan.
    Rejected(String),
    /// The plan went stale before the approval (another run wrote, or the sync changed).
    Stale(String),
}

impl Refusal {
    /// The error a waiting execution ends with: stable name and cause.
    pub fn error(&self) -> (&'static str, &str) {
        match self {
            Refusal::Rejected(why) => ("Retl.Rejected", why),
            Refusal::Stale(why) => ("Retl.StalePlan", why),
        }
    }

    /// The error a command reports for it, if it is one (a rejection is not).
    pub fn into_error(self, run_id: &str) -> Option<EngineError> {
        match self {
            Refusal::Rejected(_) => None,
            Refusal::Stale(reason) => Some(EngineError::StalePlan {
                run_id: run_id.to_string(),
                reason,
            }),
        }
    }
}

/// A person's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionTaken {
    /// The run after the decision.
    pub run: RunRecord,
    /// Why the wait ends without applying (rejected, stale), or none to continue to apply.
    pub failure: Option<Refusal>,
}

/// Records `approve` or `reject` for a run awaiting approval.
pub async fn step_decide(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    approve_it: bool,
    by: &str,
    note: Option<&str>,
) -> Result<DecisionTaken, EngineError> {
    if !approve_it {
        let run = reject(engine, run_id, by, note).await?;
        let why = run.error.clone().unwrap_or_default();
        return Ok(DecisionTaken {
            run,
            failure: Some(Refusal::Rejected(why)),
        });
    }
    match approve(engine, sync, run_id, by, note).await {
        Ok(run) => Ok(DecisionTaken { run, failure: None }),
        Err(EngineError::StalePlan { reason, .. }) => Ok(DecisionTaken {
            run: engine.runs.get_run(run_id).await?,
            failure: Some(Refusal::Stale(reason)),
        }),
        Err(e) => Err(e),
    }
}
