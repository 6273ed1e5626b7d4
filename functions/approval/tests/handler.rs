//! The approval handler against a deployed stack on moto: the request stores the token of an
//! execution that really waits on it, and the decision resumes or ends that execution.

use retl_fn_approval::{handle, ApprovalRequest, ApprovalResponse, Verdict};
use retl_fn_testkit::TestStack;
use retl_shared::engine::steps::Decision;
use retl_shared::ports::RunStatus;
use serde_json::json;

/// A mirror run of `sync` stopped for approval (3 of 4 records would be deleted), its
/// execution waiting on the token the approval request stored.
async fn stopped_for_approval(stack: &TestStack, sync: &str) -> String {
    let run_id = stack.start_run(sync).await;
    let summary = stack.plan(sync, &run_id).await;
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    let token = stack.waiting_execution(&run_id).await;
    let request = ApprovalRequest::Request {
        run_id: run_id.clone(),
        sync: sync.into(),
        task_token: token.clone(),
    };
    let answer = handle(&stack.host, request).await.expect("requested");
    assert_eq!(
        answer,
        ApprovalResponse {
            run_id: run_id.clone(),
            decision: None,
            status: RunStatus::AwaitingApproval
        }
    );
    let run = stack.run(&run_id).await;
    assert_eq!(run.status, RunStatus::AwaitingApproval);
    let approval = run.approval.expect("the approval request is recorded");
    assert_eq!(approval.task_token.as_deref(), Some(token.as_str()));
    run_id
}

fn decision(run_id: &str, verdict: Verdict, by: Option<&str>) -> ApprovalRequest {
    ApprovalRequest::Decide {
        run_id: run_id.into(),
        verdict,
        reason: Some("checked".into()),
        by: by.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_resumes_the_execution_and_a_rejection_ends_it() {
    let stack = TestStack::start("fn_approval").await;
    stack.tables("approve_me", &[1], &[1, 2, 3, 4]).await;
    stack.tables("reject_me", &[1], &[1, 2, 3, 4]).await;
    stack
        .deploy(&[("approve_me", "mirror", ""), ("reject_me", "mirror", "")])
        .await;

    let run_id = stopped_for_approval(&stack, "approve_me").await;
    let answer = handle(&stack.host, decision(&run_id, Verdict::Approve, None)).await;
    let answer = answer.expect("approved");
    assert_eq!(answer.decision, Some(Verdict::Approve));
    assert_eq!(
        answer.status,
        RunStatus::Running,
        "the run goes on to apply"
    );
    let end = stack.execution_end(&run_id).await;
    assert_eq!(end.status, "SUCCEEDED", "{end:?}");
    assert_eq!(
        end.output,
        Some(json!({"decision": "approve", "by": "lambda-console"}))
    );
    let approval = stack.run(&run_id).await.approval.unwrap();
    assert_eq!(approval.decided_by.as_deref(), Some("lambda-console"));
    assert_eq!(approval.note.as_deref(), Some("checked"));

    let run_id = stopped_for_approval(&stack, "reject_me").await;
    let answer = handle(&stack.host, decision(&run_id, Verdict::Reject, Some("ana"))).await;
    let answer = answer.expect("rejected");
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({"run_id": run_id, "decision": "reject", "status": "rejected"})
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_runs_that_do_not_wait_are_refused_with_stable_names() {
    let stack = TestStack::start("fn_approval_refused").await;
    stack.tables("people", &[1, 2], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let running = stack.start_run("people").await;

    let err = handle(&stack.host, decision(&running, Verdict::Approve, None)).await;
    let err = err.unwrap_err();
    assert_eq!(
        err.error_type, "Retl.NotAwaitingApproval",
        "{}",
        err.error_message
    );
    let err = handle(&stack.host, decision("no-such-run", Verdict::Reject, None)).await;
    let err = err.unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
}
