//! Lambda `approval`: stores the task token of a run the state machine stopped for approval
//! and notifies approvers; takes an approver's decision and resumes the execution
//! (SendTaskSuccess) or ends it (SendTaskFailure `Retl.Rejected`, or `Retl.StalePlan`). See
//! [`ApprovalRequest`] for the payloads.

mod request;

use retl_lambda::lambda_runtime::Diagnostic;
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::{decide, AwsHost};
use retl_shared::engine::steps::step_request_approval;
use retl_shared::ports::RunStatus;
use serde::{Deserialize, Serialize};

pub use request::{ApprovalRequest, Verdict};

/// Who decided when the payload does not say: a test event in the Lambda console.
pub const CONSOLE_APPROVER: &str = "lambda-console";

/// Where the run stands after the request or the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalResponse {
    /// The run.
    pub run_id: String,
    /// The decision taken, for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    /// The run's status now.
    pub status: RunStatus,
}

/// Handles one payload.
pub async fn handle(
    host: &AwsHost,
    request: ApprovalRequest,
) -> Result<ApprovalResponse, Diagnostic> {
    match request {
        ApprovalRequest::Request {
            run_id,
            sync,
            task_token,
        } => {
            let (deployed, engine) = load(host, &sync).await?;
            step_request_approval(&engine, &deployed.def, &run_id, Some(&task_token))
                .await
                .map_err(diagnostic)?;
            Ok(ApprovalResponse {
                run_id,
                decision: None,
                status: RunStatus::AwaitingApproval,
            })
        }
        ApprovalRequest::Decide {
            run_id,
            verdict,
            reason,
            by,
        } => {
            let by = by.unwrap_or_else(|| CONSOLE_APPROVER.into());
            let approve = verdict == Verdict::Approve;
            let run = decide(host, &run_id, approve, &by, reason.as_deref())
                .await
                .map_err(diagnostic)?;
            Ok(ApprovalResponse {
                run_id,
                decision: Some(verdict),
                status: run.status,
            })
        }
    }
}
