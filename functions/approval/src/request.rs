//! The approval function's payloads:
//! 1. from the state machine (`.waitForTaskToken`):
//!    `{"action": "request", "run_id", "sync", "task_token"}`;
//! 2. from the approval runbook's last step, once the approvers decided:
//!    `{"action": "decided", "run_id", "automation_execution_id"}` (the decision and who took
//!    it are read from Systems Manager, never from the payload);
//! 3. from the reminder schedule: `{"action": "remind", "run_id"}`;
//! 4. from the state machine once the wait expired: `{"action": "withdraw", "run_id"}`.

use serde::{Deserialize, Serialize};

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Apply exactly the stored plan.
    Approve,
    /// End the run without writing.
    Reject,
}

/// What the approval function is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApprovalRequest {
    /// Keep the execution's task token and ask the approvers.
    Request {
        /// The run stopped for approval.
        run_id: String,
        /// Its sync.
        sync: String,
        /// The token the execution waits on.
        task_token: String,
    },
    /// The approvers decided in the automation execution: take their decision.
    Decided {
        /// The run waiting for approval.
        run_id: String,
        /// The automation execution that asked them.
        automation_execution_id: String,
    },
    /// Remind the approvers if the run still waits.
    Remind {
        /// The run.
        run_id: String,
    },
    /// The wait expired: cancel the request in Systems Manager and drop the token.
    Withdraw {
        /// The run.
        run_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_state_machine_runbook_and_reminder_payloads_parse() {
        let request = json!({"action": "request", "run_id": "r1", "sync": "s", "task_token": "t"});
        assert_eq!(
            parse::<ApprovalRequest>(request).unwrap(),
            ApprovalRequest::Request {
                run_id: "r1".into(),
                sync: "s".into(),
                task_token: "t".into()
            }
        );
        let decided =
            json!({"action": "decided", "run_id": "r1", "automation_execution_id": "e-1"});
        assert_eq!(
            parse::<ApprovalRequest>(decided).unwrap(),
            ApprovalRequest::Decided {
                run_id: "r1".into(),
                automation_execution_id: "e-1".into()
            }
        );
        let withdraw = json!({"action": "withdraw", "run_id": "r1"});
        assert_eq!(
            parse::<ApprovalRequest>(withdraw).unwrap(),
            ApprovalRequest::Withdraw {
                run_id: "r1".into()
            }
        );
        let remind = json!({"action": "remind", "run_id": "r1"});
        assert_eq!(
            parse::<ApprovalRequest>(remind).unwrap(),
            ApprovalRequest::Remind {
                run_id: "r1".into()
            }
        );
    }

    #[test]
    fn a_typed_decision_is_no_payload_the_function_takes() {
        for (payload, says) in [
            (
                json!({"run_id": "r1", "decision": "approve", "by": "jane"}),
                "action",
            ),
            (
                json!({"action": "decided", "run_id": "r1", "by": "jane"}),
                "by",
            ),
            (json!({"action": "cancel", "run_id": "r1"}), "cancel"),
            (
                json!({"action": "request", "run_id": "r1", "sync": "s"}),
                "task_token",
            ),
        ] {
            let err = parse::<ApprovalRequest>(payload.clone()).unwrap_err();
            assert_eq!(err.error_type, "Retl.BadRequest", "{payload}");
            assert!(
                err.error_message.contains(says),
                "{payload}: {}",
                err.error_message
            );
        }
    }
}
