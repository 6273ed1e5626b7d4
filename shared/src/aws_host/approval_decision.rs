//! Who decided, read from the automation execution Systems Manager ran for the run: the
//! execution must run this stack's runbook for this run, and its `aws:approve` step must have
//! ended approved or rejected; the approvers are the principals Systems Manager authenticated
//! (its `ApproverDecisions`), never a name anyone typed.

use serde_json::Value;

use super::automation::AutomationExecution;

/// A decision as the approval step recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomationDecision {
    /// Approved (else rejected).
    pub approve: bool,
    /// The ARNs of the principals who took it, comma-separated.
    pub by: String,
    /// Their comments.
    pub note: Option<String>,
}

/// One entry of `ApproverDecisions` (a JSON map per decision; the keys' case varies).
fn field<'a>(entry: &'a Value, names: &[&str]) -> Option<&'a str> {
    let map = entry.as_object()?;
    map.iter()
        .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
        .and_then(|(_, v)| v.as_str())
}

/// The decision of `execution`, if it is the approval request of `run_id` made with
/// `runbook`; else why not.
pub fn read_decision(
    execution: &AutomationExecution,
    runbook: &str,
    run_id: &str,
) -> Result<AutomationDecision, String> {
    let id = &execution.automation_execution_id;
    if execution.document_name != runbook {
        return Err(format!(
            "automation execution {id} runs `{}`, not this stack's runbook `{runbook}`",
            execution.document_name
        ));
    }
    let asked_for = execution.parameters.get("RunId").map(Vec::as_slice);
    if asked_for != Some(&[run_id.to_string()][..]) {
        return Err(format!(
            "automation execution {id} asks about run {}, not {run_id}",
            asked_for
                .map(|v| v.join(","))
                .unwrap_or_else(|| "none".into())
        ));
    }
    let step = execution
        .step_executions
        .iter()
        .find(|s| s.action == "aws:approve")
        .ok_or_else(|| format!("automation execution {id} has run no approval step"))?;
    let status = step
        .outputs
        .get("ApprovalStatus")
        .and_then(|v| v.first())
        .map(String::as_str);
    let approve = match status {
        Some("Approved") => true,
        Some("Rejected") => false,
        other => {
            return Err(format!(
                "the approval step of automation execution {id} is {} ({}), not decided",
                step.step_status,
                other.unwrap_or("no approval status")
            ))
        }
    };
    let wanted = if approve { "Approve" } else { "Reject" };
    let mut by = Vec::new();
    let mut notes = Vec::new();
    for text in step.outputs.get("ApproverDecisions").into_iter().flatten() {
        let entry: Value = serde_json::from_str(text)
            .map_err(|e| format!("an approver decision of execution {id} is no JSON map: {e}"))?;
        let decision = field(&entry, &["ApprovalStatus", "Decision"]).unwrap_or_default();
        if !decision.eq_ignore_ascii_case(wanted) {
            continue;
        }
        if let Some(approver) = field(&entry, &["Approver"]).filter(|a| !a.trim().is_empty()) {
            by.push(approver.to_string());
        }
        if let Some(comment) = field(&entry, &["Comment"]).filter(|c| !c.trim().is_empty()) {
            notes.push(comment.trim().to_string());
        }
    }
    if by.is_empty() {
        return Err(format!(
            "the approval step of automation execution {id} names nobody who decided"
        ));
    }
    Ok(AutomationDecision {
        approve,
        by: by.join(", "),
        note: (!notes.is_empty()).then(|| notes.join(" / ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_host::automation::StepExecution;
    use serde_json::json;

    const RUNBOOK: &str = "retl-approve-deletes";

    fn execution(status: &str, decisions: &[Value]) -> AutomationExecution {
        let approve = StepExecution {
            step_name: "Approve".into(),
            action: "aws:approve".into(),
            step_status: if status == "Approved" {
                "Success"
            } else {
                "Failed"
            }
            .into(),
            outputs: [
                ("ApprovalStatus".to_string(), vec![status.to_string()]),
                (
                    "ApproverDecisions".to_string(),
                    decisions.iter().map(Value::to_string).collect(),
                ),
            ]
            .into(),
        };
        AutomationExecution {
            automation_execution_id: "e-1".into(),
            document_name: RUNBOOK.into(),
            automation_execution_status: "InProgress".into(),
            parameters: [("RunId".to_string(), vec!["r1".to_string()])].into(),
            step_executions: vec![approve],
        }
    }

    #[test]
    fn the_approvers_are_the_principals_systems_manager_recorded() {
        let e = execution(
            "Approved",
            &[
                json!({"Approver": "arn:aws:iam::1:user/jane", "ApprovalStatus": "Approve", "Comment": "expected churn"}),
                json!({"approver": "arn:aws:sts::1:assumed-role/Ops/ana", "decision": "approve"}),
            ],
        );
        assert_eq!(
            read_decision(&e, RUNBOOK, "r1"),
            Ok(AutomationDecision {
                approve: true,
                by: "arn:aws:iam::1:user/jane, arn:aws:sts::1:assumed-role/Ops/ana".into(),
                note: Some("expected churn".into()),
            })
        );
        let e = execution(
            "Rejected",
            &[
                json!({"Approver": "arn:aws:iam::1:user/bob", "ApprovalStatus": "Reject", "Comment": "no"}),
            ],
        );
        let d = read_decision(&e, RUNBOOK, "r1").unwrap();
        assert!(!d.approve);
        assert_eq!(d.by, "arn:aws:iam::1:user/bob");
    }

    #[test]
    fn another_runbook_run_or_an_undecided_step_is_refused() {
        let e = execution(
            "Approved",
            &[json!({"Approver": "a", "ApprovalStatus": "Approve"})],
        );
        let other = AutomationExecution {
            document_name: "someone-elses".into(),
            ..e.clone()
        };
        assert!(read_decision(&other, RUNBOOK, "r1")
            .unwrap_err()
            .contains("not this stack's runbook"));
        assert!(read_decision(&e, RUNBOOK, "r2")
            .unwrap_err()
            .contains("asks about run r1, not r2"));
        let waiting = execution("Waiting", &[]);
        assert!(read_decision(&waiting, RUNBOOK, "r1")
            .unwrap_err()
            .contains("not decided"));
        let nobody = execution("Approved", &[]);
        assert!(read_decision(&nobody, RUNBOOK, "r1")
            .unwrap_err()
            .contains("names nobody"));
    }
}
