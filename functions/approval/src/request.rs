//! The approval function's payloads:
//! 1. from the state machine (`.waitForTaskToken`):
//!    `{"action": "request", "run_id", "sync", "task_token"}`;
//! 2. from an approver (Lambda console test event, or `retl approve RUN --aws`):
//!    `{"run_id": "...", "decision": "approve" | "reject", "reason": "...", "by": "..."}`.

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
#[serde(try_from = "Wire")]
pub enum ApprovalRequest {
    /// Store the execution's task token on the run and notify approvers.
    Request {
        /// The run stopped for approval.
        run_id: String,
        /// Its sync.
        sync: String,
        /// The token the execution waits on.
        task_token: String,
    },
    /// Record a person's decision and resume (or end) the execution.
    Decide {
        /// The run waiting for approval.
        run_id: String,
        /// The decision.
        verdict: Verdict,
        /// Why, as the approver put it.
        reason: Option<String>,
        /// Who decided; the Lambda console when absent.
        by: Option<String>,
    },
}

#[derive(Deserialize)]
struct Wire {
    action: Option<String>,
    run_id: String,
    sync: Option<String>,
    task_token: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    by: Option<String>,
}

impl TryFrom<Wire> for ApprovalRequest {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Self, String> {
        match wire.action.as_deref() {
            Some("request") => Ok(ApprovalRequest::Request {
                run_id: wire.run_id,
                sync: wire.sync.ok_or("an approval request needs `sync`")?,
                task_token: wire
                    .task_token
                    .ok_or("an approval request needs `task_token`")?,
            }),
            Some(other) => Err(format!("unknown action `{other}`; expected `request`")),
            None => {
                let verdict = match wire.decision.as_deref() {
                    Some("approve") => Verdict::Approve,
                    Some("reject") => Verdict::Reject,
                    Some(other) => {
                        return Err(format!(
                            "decision must be \"approve\" or \"reject\", not \"{other}\""
                        ))
                    }
                    None => return Err(
                        "expected {\"run_id\": \"...\", \"decision\": \"approve\" | \"reject\"}"
                            .into(),
                    ),
                };
                Ok(ApprovalRequest::Decide {
                    run_id: wire.run_id,
                    verdict,
                    reason: wire.reason,
                    by: wire.by,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_state_machine_request_and_a_console_decision_parse() {
        let request = json!({"action": "request", "run_id": "r1", "sync": "s", "task_token": "t"});
        assert_eq!(
            parse::<ApprovalRequest>(request).unwrap(),
            ApprovalRequest::Request {
                run_id: "r1".into(),
                sync: "s".into(),
                task_token: "t".into()
            }
        );
        let decision = json!({"run_id": "r1", "decision": "reject", "reason": "looks wrong"});
        assert_eq!(
            parse::<ApprovalRequest>(decision).unwrap(),
            ApprovalRequest::Decide {
                run_id: "r1".into(),
                verdict: Verdict::Reject,
                reason: Some("looks wrong".into()),
                by: None
            }
        );
    }

    #[test]
    fn payloads_it_cannot_act_on_are_bad_requests_saying_why() {
        for (payload, says) in [
            (json!({"run_id": "r1", "decision": "yes"}), "not \"yes\""),
            (
                json!({"run_id": "r1"}),
                "\"decision\": \"approve\" | \"reject\"",
            ),
            (
                json!({"action": "cancel", "run_id": "r1"}),
                "unknown action `cancel`",
            ),
            (
                json!({"action": "request", "run_id": "r1", "sync": "s"}),
                "`task_token`",
            ),
            (json!({"decision": "approve"}), "missing field `run_id`"),
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
