//! Lambda `finalize`: records the run's end state and counts exactly once, releases the lock,
//! evaluates the sync's alert rules (SNS, and the sync's webhook), prints the run's metrics
//! (CloudWatch embedded metric format) and publishes `retl.run.completed` on EventBridge.
//! Invoked by a schedule with `{"action": "check_alerts"}`, it checks every deployed sync
//! instead ([`check_alerts`]).

mod catch;
mod event;

use retl_lambda::lambda_runtime::Diagnostic;
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::{check_alerts, emit_run_completed, metrics_line, AwsHost};
use retl_shared::engine::steps::{step_finalize, Ending};
use retl_shared::ports::RunStatus;
use serde::{Deserialize, Serialize};

pub use catch::{StepError, UNNAMED_ERROR};
pub use event::{CheckAction, CheckRequest, FinalizeEvent, FinalizeOutput};

/// What the state machine's last states send: how the run reached its end, and the error a
/// Catch caught on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeRequest {
    /// The run.
    pub run_id: String,
    /// Its sync.
    pub sync: String,
    /// How the execution ended.
    pub ending: Ending,
    /// A Catch's error, on the failure paths.
    #[serde(default)]
    pub error: Option<StepError>,
}

/// The run's final status (the state machine reads `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeResponse {
    /// The run.
    pub run_id: String,
    /// Its end state.
    pub status: RunStatus,
}

/// Finalizes the run.
pub async fn handle(
    host: &AwsHost,
    request: FinalizeRequest,
) -> Result<FinalizeResponse, Diagnostic> {
    let (deployed, engine) = load(host, &request.sync).await?;
    let error = request.error.as_ref().map(StepError::failure);
    let run = step_finalize(
        &engine,
        &deployed.def,
        &request.run_id,
        request.ending,
        error,
    )
    .await
    .map_err(diagnostic)?;
    // The embedded metric format is read from the function's log stream.
    println!("{}", metrics_line(&host.names.stack, &run));
    if let Err(e) = emit_run_completed(&host.events, &host.names, &run).await {
        tracing::warn!(error = %e, "could not publish the run-completed event");
    }
    Ok(FinalizeResponse {
        run_id: run.run_id,
        status: run.status,
    })
}

/// Serves one invocation: a run's end from the state machine, or the periodic alert check.
pub async fn handle_event(
    host: &AwsHost,
    event: FinalizeEvent,
) -> Result<FinalizeOutput, Diagnostic> {
    match event {
        FinalizeEvent::Finalize(request) => {
            handle(host, request).await.map(FinalizeOutput::Finalized)
        }
        FinalizeEvent::Check(request) => check_alerts(host, request.every_minutes)
            .await
            .map(FinalizeOutput::Checked)
            .map_err(diagnostic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_state_machine_payloads_parse_with_and_without_an_error() {
        let applied = json!({"run_id": "r1", "sync": "s", "ending": "applied"});
        let applied: FinalizeRequest = parse(applied).unwrap();
        assert_eq!((applied.ending, applied.error), (Ending::Applied, None));
        let failed = json!({"run_id": "r1", "sync": "s", "ending": "failed",
                            "error": {"Error": "Retl.Conflict", "Cause": "lost a race"}});
        let failed: FinalizeRequest = parse(failed).unwrap();
        assert_eq!(failed.ending, Ending::Failed);
        assert_eq!(
            failed.error.unwrap().failure(),
            ("Retl.Conflict".into(), "lost a race".into())
        );
        let err = parse::<FinalizeRequest>(json!({"run_id": "r1", "sync": "s", "ending": "done"}));
        let err = err.unwrap_err();
        assert_eq!(err.error_type, "Retl.BadRequest");
        assert!(
            err.error_message.contains("unknown variant `done`"),
            "{}",
            err.error_message
        );
    }
}
