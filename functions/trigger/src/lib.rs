//! Lambda `trigger`: starts runs from schedules, upstream events and manual calls (see
//! [`TriggerRequest`] for the payloads), and starts the syncs declaring `after_sync` on a sync
//! whose run succeeded.
//!
//! Paused syncs and syncs already running are skipped; the lock makes simultaneous triggers
//! start exactly one run.

mod request;

use retl_lambda::diagnostic;
use retl_lambda::lambda_runtime::Diagnostic;
use retl_shared::aws_host::{start_dependents, start_sync, AwsHost, TriggerOutcome};
use retl_shared::ports::RunStatus;
use serde::Serialize;

pub use request::{TriggerKind, TriggerRequest};

/// What the trigger did: one outcome per sync it tried to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerResponse {
    /// Runs started, and syncs skipped with the reason.
    pub started: Vec<TriggerOutcome>,
}

/// Handles one payload. An event naming another stack starts nothing (it reached this
/// stack's bus by a forwarding rule, or was put on the wrong bus).
pub async fn handle(
    host: &AwsHost,
    request: TriggerRequest,
) -> Result<TriggerResponse, Diagnostic> {
    if let Some(other) = request.stack().filter(|s| *s != host.names.stack) {
        let reason = format!(
            "the event is for the stack `{other}`; this is the stack `{}`",
            host.names.stack
        );
        tracing::info!(sync = request.sync(), %reason, "trigger skipped");
        let sync = request.sync().to_string();
        return Ok(TriggerResponse {
            started: vec![TriggerOutcome::Skipped { sync, reason }],
        });
    }
    let started = match request {
        TriggerRequest::Start { sync, trigger, .. } => {
            vec![start_sync(host, &sync, trigger.as_str())
                .await
                .map_err(diagnostic)?]
        }
        TriggerRequest::RunCompleted {
            sync,
            status: RunStatus::Succeeded,
            ..
        } => start_dependents(host, &sync).await.map_err(diagnostic)?,
        TriggerRequest::RunCompleted { .. } => Vec::new(),
    };
    Ok(TriggerResponse { started })
}
