//! Lambda `approval`, two entry points:
//! 1. From the state machine (`.waitForTaskToken`):
//!    `{"action": "request", "run_id", "sync", "task_token"}` stores the token on the run and
//!    publishes the approval request (counts, a sample, the deletion preview's S3 location).
//! 2. From an approver (Lambda console test event, or `retl approve RUN --aws`):
//!    `{"run_id": "...", "decision": "approve" | "reject", "reason": "...", "by": "..."}`
//!    records the decision and resumes the execution (SendTaskSuccess / SendTaskFailure).

use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::{decide, AwsHost};
use retl_shared::engine::steps::step_request_approval;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ApprovalEvent {
    Request {
        action: String,
        run_id: String,
        sync: String,
        task_token: String,
    },
    Decision {
        run_id: String,
        decision: String,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        by: Option<String>,
    },
}

async fn handle(host: &AwsHost, event: ApprovalEvent) -> Result<Value, Diagnostic> {
    match event {
        ApprovalEvent::Request {
            action,
            run_id,
            sync,
            task_token,
        } if action == "request" => {
            let (deployed, engine) = load(host, &sync).await?;
            step_request_approval(&engine, &deployed.def, &run_id, &task_token)
                .await
                .map_err(diagnostic)?;
            Ok(json!({"run_id": run_id, "status": "awaiting_approval"}))
        }
        ApprovalEvent::Request { action, .. } => Err(Diagnostic {
            error_type: "Retl.BadRequest".into(),
            error_message: format!("unknown action `{action}`; expected `request`"),
        }),
        ApprovalEvent::Decision {
            run_id,
            decision,
            reason,
            by,
        } => {
            let approve = match decision.as_str() {
                "approve" => true,
                "reject" => false,
                other => {
                    return Err(Diagnostic {
                        error_type: "Retl.BadRequest".into(),
                        error_message: format!(
                            "decision must be \"approve\" or \"reject\", not \"{other}\""
                        ),
                    })
                }
            };
            let by = by.unwrap_or_else(|| "lambda-console".into());
            let run = decide(host, &run_id, approve, &by, reason.as_deref())
                .await
                .map_err(diagnostic)?;
            Ok(json!({"run_id": run_id, "decision": decision, "status": run.status.as_str()}))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    lambda_runtime::run(service_fn(|e: LambdaEvent<ApprovalEvent>| {
        handle(&host, e.payload)
    }))
    .await
}
