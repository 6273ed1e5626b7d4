//! Lambda `approval`: asks the approvers of a run the state machine stopped for approval (the
//! stack's Systems Manager runbook, the task token kept where only this function reads it),
//! reminds them before the request expires, withdraws the request once it expired, and takes the decision they made in Systems
//! Manager, resuming the execution (SendTaskSuccess) or ending it (SendTaskFailure
//! `Retl.Rejected`, or `Retl.StalePlan`). See [`ApprovalRequest`] for the payloads.

mod request;

use retl_lambda::diagnostic;
use retl_lambda::lambda_runtime::Diagnostic;
use retl_shared::aws_host::{remind, request_approval, take_decision, withdraw, AwsHost};
use retl_shared::ports::{RunStatus, RunStore};
use serde::{Deserialize, Serialize};

pub use request::{ApprovalRequest, Verdict};

/// Where the run stands after the request, the decision or the reminder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalResponse {
    /// The run.
    pub run_id: String,
    /// The decision taken, for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Verdict>,
    /// Who took it: the principals Systems Manager authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Whether the approvers were reminded, for a reminder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded: Option<bool>,
    /// Whether a waiting request was withdrawn, for a withdrawal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<bool>,
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
            let run = request_approval(host, &sync, &run_id, &task_token)
                .await
                .map_err(diagnostic)?;
            Ok(ApprovalResponse {
                run_id,
                decision: None,
                decided_by: None,
                reminded: None,
                withdrawn: None,
                status: run.status,
            })
        }
        ApprovalRequest::Decided {
            run_id,
            automation_execution_id,
        } => {
            let run = take_decision(host, &run_id, &automation_execution_id)
                .await
                .map_err(diagnostic)?;
            let approval = run.approval.clone().unwrap_or_default();
            let decision = match approval.decision.as_deref() {
                Some("approve") => Some(Verdict::Approve),
                Some("reject") => Some(Verdict::Reject),
                _ => None,
            };
            Ok(ApprovalResponse {
                run_id,
                decision,
                decided_by: approval.decided_by,
                reminded: None,
                withdrawn: None,
                status: run.status,
            })
        }
        ApprovalRequest::Remind { run_id } => {
            let (run, reminded) = remind(host, &run_id).await.map_err(diagnostic)?;
            Ok(ApprovalResponse {
                run_id,
                decision: None,
                decided_by: None,
                reminded: Some(reminded),
                withdrawn: None,
                status: run.status,
            })
        }
        ApprovalRequest::Withdraw { run_id } => {
            let withdrawn = withdraw(host, &run_id).await.map_err(diagnostic)?;
            let run = host.runs().get_run(&run_id).await;
            let run = run.map_err(|e| diagnostic(e.into()))?;
            Ok(ApprovalResponse {
                run_id,
                decision: None,
                decided_by: None,
                reminded: None,
                withdrawn: Some(withdrawn),
                status: run.status,
            })
        }
    }
}
