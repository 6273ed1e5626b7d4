//! Process exit codes, in one place: what a script running `retl` can rely on.

use retl_shared::engine::EngineError;
use retl_shared::ports::{RunRecord, RunStatus};

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Succeeded.
    Ok = 0,
    /// The run failed (or partially failed), or a transient problem stopped the command.
    Failed = 1,
    /// Usage or config error.
    Usage = 2,
    /// Stopped by a safety rule (awaiting approval, aborted).
    Safety = 3,
    /// Not started: the sync is paused or another run holds its lock.
    Refused = 4,
}

/// Exit code for a run's final status.
pub fn exit_for(run: &RunRecord) -> Exit {
    match run.status {
        RunStatus::Succeeded | RunStatus::Planned | RunStatus::Rejected | RunStatus::Running => {
            Exit::Ok
        }
        RunStatus::AwaitingApproval | RunStatus::Aborted => Exit::Safety,
        RunStatus::Failed
            if matches!(
                run.error_name.as_deref(),
                Some("Retl.InvalidSync" | "Retl.ConfigError" | "Retl.DestinationInvalid")
            ) =>
        {
            Exit::Usage
        }
        _ => Exit::Failed,
    }
}

/// Exit code for an error that stopped a command before or instead of a run.
pub fn exit_for_error(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<retl_shared::config::ConfigError>()
        .is_some()
    {
        return Exit::Usage;
    }
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Locked { .. } | EngineError::Paused(_)) => Exit::Refused,
        Some(
            EngineError::Config(_)
            | EngineError::Invalid(_)
            | EngineError::NotAwaitingApproval { .. }
            | EngineError::ApprovalUnverified { .. },
        ) => Exit::Usage,
        Some(
            EngineError::StalePlan { .. }
            | EngineError::NotApproved { .. }
            | EngineError::SafetyNotGranted { .. },
        ) => Exit::Safety,
        _ => Exit::Failed,
    }
}
