//! A person's decision on a run waiting in the state machine: recorded through the engine
//! (which refuses stale plans), then handed to Step Functions with the stored task token.

use serde_json::json;

use super::host::AwsHost;
use crate::engine::steps::step_decide;
use crate::engine::EngineError;
use crate::ports::{RunRecord, RunStore};

/// Approves or rejects `run_id` and resumes (or ends) its execution.
pub async fn decide(
    host: &AwsHost,
    run_id: &str,
    approve: bool,
    by: &str,
    note: Option<&str>,
) -> Result<RunRecord, EngineError> {
    let run = host.runs().get_run(run_id).await?;
    let (deployed, engine) = host.load(&run.sync).await?;
    let taken = step_decide(&engine, &deployed.def, run_id, approve, by, note).await?;
    let token = taken.task_token.ok_or_else(|| {
        EngineError::Invalid(format!(
            "run {run_id} has no Step Functions task token: it was not stopped by the AWS state machine"
        ))
    })?;
    let sent = match &taken.failure {
        None => host
            .sfn
            .send_task_success()
            .task_token(&token)
            .output(json!({"decision": "approve", "by": by}).to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
        Some(refusal) => host
            .sfn
            .send_task_failure()
            .task_token(&token)
            .error(refusal.error().0)
            .cause(refusal.error().1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
    };
    sent.map_err(|e| {
        EngineError::Invalid(format!("the execution did not take the decision: {e}"))
    })?;
    if let Some(stale) = taken.failure.and_then(|r| r.into_error(run_id)) {
        return Err(stale);
    }
    Ok(taken.run)
}
