//! The trigger handler against a deployed stack on moto: a run starts with its lock and its
//! execution, a second trigger is skipped, and a succeeded run starts its followers.

use retl_fn_testkit::TestStack;
use retl_fn_trigger::{handle, TriggerKind, TriggerRequest};
use retl_shared::aws_host::TriggerOutcome;
use retl_shared::ports::{RunStatus, RunStore};
use serde_json::json;

fn started(outcome: &TriggerOutcome) -> (&str, &str) {
    match outcome {
        TriggerOutcome::Started { sync, run_id } => (sync, run_id),
        other => panic!("expected a started run, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_starts_one_run_with_its_execution_and_skips_a_running_sync() {
    let stack = TestStack::start("fn_trigger_start").await;
    stack.tables("people", &[1, 2], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let request = TriggerRequest::Start {
        sync: "people".into(),
        trigger: TriggerKind::Schedule,
    };

    let answer = handle(&stack.host, request.clone()).await.expect("started");
    assert_eq!(answer.started.len(), 1, "{answer:?}");
    let (sync, run_id) = started(&answer.started[0]);
    assert_eq!(sync, "people");
    let run = stack.run(run_id).await;
    assert_eq!(
        (run.trigger.as_str(), run.status),
        ("schedule", RunStatus::Running)
    );
    let holder = stack.host.runs().lock_holder("people").await.unwrap();
    assert_eq!(holder.map(|h| h.run_id).as_deref(), Some(run_id));
    assert_eq!(
        stack.execution_input(run_id).await,
        json!({"run_id": run_id, "sync": "people"})
    );
    // The response is what the state machine and `retl` read.
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({"started": [{"status": "started", "sync": "people", "run_id": run_id}]})
    );

    let again = handle(&stack.host, request).await.expect("answered");
    match &again.started[..] {
        [TriggerOutcome::Skipped { sync, reason }] => {
            assert_eq!(sync, "people");
            assert!(reason.contains(run_id), "{reason}");
        }
        other => panic!("expected the sync to be skipped, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_run_starts_its_followers_and_a_failed_one_does_not() {
    let stack = TestStack::start("fn_trigger_follow").await;
    stack.tables("upstream", &[1], &[]).await;
    stack.tables("follower", &[7], &[]).await;
    stack
        .deploy(&[
            ("upstream", "upsert", ""),
            (
                "follower",
                "upsert",
                "triggers: [{ after_sync: upstream }]\n",
            ),
        ])
        .await;
    let completed = |status| TriggerRequest::RunCompleted {
        sync: "upstream".into(),
        status,
    };

    let answer = handle(&stack.host, completed(RunStatus::Failed)).await;
    assert!(answer.expect("answered").started.is_empty());

    let answer = handle(&stack.host, completed(RunStatus::Succeeded)).await;
    let answer = answer.expect("answered");
    assert_eq!(answer.started.len(), 1, "{answer:?}");
    let (sync, run_id) = started(&answer.started[0]);
    assert_eq!(sync, "follower");
    assert_eq!(stack.run(run_id).await.trigger, "after_sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_is_not_deployed_is_a_not_found_error() {
    let stack = TestStack::start("fn_trigger_missing").await;
    let request = TriggerRequest::Start {
        sync: "nobody".into(),
        trigger: TriggerKind::Manual,
    };
    let err = handle(&stack.host, request).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
    assert!(
        err.error_message.contains("nobody"),
        "{}",
        err.error_message
    );
}
