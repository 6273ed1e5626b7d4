//! The approval handler against a deployed stack on moto: the request keeps the token of an
//! execution that really waits on it and asks the approvers through the stack's runbook (from
//! template.yaml, run by the Systems Manager emulator); the decision the approvers take there
//! resumes or ends that execution.

use retl_fn_approval::{handle, ApprovalRequest, ApprovalResponse, Verdict};
use retl_fn_testkit::TestStack;
use retl_shared::engine::steps::Decision;
use retl_shared::ports::RunStatus;
use retl_tests::approvals::{decided, DEFAULT_CALLER};
use serde_json::json;

/// A mirror run of `sync` stopped for approval (3 of 4 records would be deleted), its
/// execution waiting on the token the approval request kept; returns the run and the
/// automation execution asking its approvers.
async fn stopped_for_approval(stack: &TestStack, sync: &str) -> (String, String) {
    let run_id = stack.start_run(sync).await;
    let summary = stack.plan(sync, &run_id).await;
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    let token = stack.waiting_execution(&run_id).await;
    let request = ApprovalRequest::Request {
        run_id: run_id.clone(),
        sync: sync.into(),
        task_token: token.clone(),
    };
    let answer = handle(&stack.host, request.clone())
        .await
        .expect("requested");
    assert_eq!(
        answer,
        ApprovalResponse {
            run_id: run_id.clone(),
            decision: None,
            decided_by: None,
            reminded: None,
            withdrawn: None,
            status: RunStatus::AwaitingApproval
        }
    );
    let run = stack.run(&run_id).await;
    assert_eq!(run.status, RunStatus::AwaitingApproval);
    let approval = run.approval.expect("the approval request is recorded");
    let execution = approval
        .automation_execution_id
        .expect("the approvers are asked");
    let kept = stack.host.approval_tokens().get(&run_id).await.unwrap();
    assert_eq!(kept.map(|k| k.token), Some(token));
    // A retried request (a new token) keeps asking through the same execution.
    handle(&stack.host, request).await.expect("requested again");
    let again = stack.run(&run_id).await.approval.unwrap();
    assert_eq!(again.automation_execution_id.as_ref(), Some(&execution));
    (run_id, execution)
}

/// The approvers' decision, taken in Systems Manager as the tests' identity; then handed to
/// the function as the runbook's last step does.
async fn decide(
    stack: &TestStack,
    run_id: &str,
    execution: &str,
    approve: bool,
) -> ApprovalResponse {
    let automation = &stack.host.automation;
    automation
        .signal(execution, approve, Some("checked"))
        .await
        .expect("the tests' identity is an approver");
    decided(automation, execution).await;
    let request = ApprovalRequest::Decided {
        run_id: run_id.into(),
        automation_execution_id: execution.into(),
    };
    handle(&stack.host, request)
        .await
        .expect("the decision is taken")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_resumes_the_execution_and_a_rejection_ends_it() {
    let stack = TestStack::start("fn_approval").await;
    stack.tables("approve_me", &[1], &[1, 2, 3, 4]).await;
    stack.tables("reject_me", &[1], &[1, 2, 3, 4]).await;
    stack.tables("expire_me", &[1], &[1, 2, 3, 4]).await;
    stack
        .deploy(&[
            ("approve_me", "mirror", ""),
            ("reject_me", "mirror", ""),
            ("expire_me", "mirror", ""),
        ])
        .await;

    let (run_id, execution) = stopped_for_approval(&stack, "approve_me").await;
    let answer = decide(&stack, &run_id, &execution, true).await;
    assert_eq!(answer.decision, Some(Verdict::Approve));
    assert_eq!(answer.decided_by.as_deref(), Some(DEFAULT_CALLER));
    assert_eq!(
        answer.status,
        RunStatus::Running,
        "the run goes on to apply"
    );
    let end = stack.execution_end(&run_id).await;
    assert_eq!(end.status, "SUCCEEDED", "{end:?}");
    assert_eq!(
        end.output,
        Some(json!({"decision": "approve", "by": DEFAULT_CALLER}))
    );
    let approval = stack.run(&run_id).await.approval.unwrap();
    assert_eq!(approval.decided_by.as_deref(), Some(DEFAULT_CALLER));
    assert_eq!(approval.note.as_deref(), Some("checked"));
    assert!(stack
        .host
        .approval_tokens()
        .get(&run_id)
        .await
        .unwrap()
        .is_none());

    let (run_id, execution) = stopped_for_approval(&stack, "reject_me").await;
    let answer = decide(&stack, &run_id, &execution, false).await;
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({"run_id": run_id, "decision": "reject", "decided_by": DEFAULT_CALLER, "status": "rejected"})
    );
    let end = stack.execution_end(&run_id).await;
    assert_eq!(
        (end.status.as_str(), end.error.as_deref()),
        ("FAILED", Some("Retl.Rejected"))
    );
    assert_eq!(
        stack.pg.count("SELECT count(*) FROM reject_me_dest").await,
        4
    );

    // The wait expired: the state machine withdraws the request before recording the expiry.
    let (run_id, execution) = stopped_for_approval(&stack, "expire_me").await;
    let withdraw = ApprovalRequest::Withdraw {
        run_id: run_id.clone(),
    };
    let answer = handle(&stack.host, withdraw.clone())
        .await
        .expect("withdrawn");
    assert_eq!(answer.withdrawn, Some(true), "{answer:?}");
    let asked = stack.host.automation.get(&execution).await.unwrap();
    assert_eq!(
        asked.automation_execution_status, "Cancelled",
        "the console no longer offers Approve and Deny: {asked:?}"
    );
    let token = stack.host.approval_tokens().get(&run_id).await.unwrap();
    assert!(token.is_none(), "the token is gone");
    let again = handle(&stack.host, withdraw)
        .await
        .expect("withdrawn twice");
    assert_eq!(
        again.withdrawn,
        Some(false),
        "a retried withdrawal finds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_that_no_approver_took_here_are_refused_with_stable_names() {
    let stack = TestStack::start("fn_approval_refused").await;
    stack.tables("people", &[1, 2], &[]).await;
    stack.tables("purge", &[1], &[1, 2, 3, 4]).await;
    stack
        .deploy(&[("people", "upsert", ""), ("purge", "mirror", "")])
        .await;
    let running = stack.start_run("people").await;
    let decided_for = |run_id: &str, execution: &str| ApprovalRequest::Decided {
        run_id: run_id.into(),
        automation_execution_id: execution.into(),
    };

    let err = handle(&stack.host, decided_for(&running, "e-1")).await;
    let err = err.unwrap_err();
    assert_eq!(
        err.error_type, "Retl.ApprovalUnverified",
        "{}",
        err.error_message
    );
    assert!(
        err.error_message.contains("waits for no decision"),
        "{}",
        err.error_message
    );

    // The run waits, but its approvers have not decided: nothing is taken.
    let (run_id, execution) = stopped_for_approval(&stack, "purge").await;
    let err = handle(&stack.host, decided_for(&run_id, &execution)).await;
    let err = err.unwrap_err();
    assert_eq!(
        err.error_type, "Retl.ApprovalUnverified",
        "{}",
        err.error_message
    );
    assert!(
        err.error_message.contains("not decided"),
        "{}",
        err.error_message
    );
    let err = handle(&stack.host, decided_for(&run_id, "another-execution")).await;
    assert!(err
        .unwrap_err()
        .error_message
        .contains("not the request this run made"));
    assert_eq!(stack.run(&run_id).await.status, RunStatus::AwaitingApproval);

    let remind = ApprovalRequest::Remind {
        run_id: run_id.clone(),
    };
    let answer = handle(&stack.host, remind).await.expect("reminded");
    assert_eq!(answer.reminded, Some(true));
    let remind = ApprovalRequest::Remind { run_id: running };
    let answer = handle(&stack.host, remind)
        .await
        .expect("nothing to remind");
    assert_eq!(answer.reminded, Some(false));
}
