//! The trigger handler against a deployed stack on moto: a run starts with its lock and its
//! execution, a second trigger is skipped, a succeeded run starts its followers, and a run of
//! another stack in the account starts nothing.

use retl_fn_testkit::TestStack;
use retl_fn_trigger::{handle, TriggerKind, TriggerRequest};
use retl_shared::aws_host::{emit_run_completed, TriggerOutcome};
use retl_shared::ports::{RunRecord, RunStatus, RunStore};
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
        stack: None,
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
        stack: None,
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
        stack: None,
    };
    let err = handle(&stack.host, request).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
    assert!(
        err.error_message.contains("nobody"),
        "{}",
        err.error_message
    );
}

/// Two stacks in one account, both with `upstream` and `follower` (after_sync: upstream, and
/// an event pattern): each rule is on its stack's bus, a run completed in A goes to A's bus
/// only and starts A's follower, and B's trigger, even handed A's event, starts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_completed_in_one_stack_starts_no_sync_of_another() {
    let a = TestStack::start("fn_trigger_two_a").await;
    let b = a.beside("fn_trigger_two_b").await;
    for stack in [&a, &b] {
        stack.tables("upstream", &[1], &[]).await;
        stack.tables("follower", &[7], &[]).await;
        let follows =
            "triggers: [{ after_sync: upstream }, { event_pattern: { source: [dbt] } }]\n";
        stack
            .deploy(&[("upstream", "upsert", ""), ("follower", "upsert", follows)])
            .await;
    }
    // `retl deploy` put each stack's event_pattern rule on that stack's bus.
    for stack in [&a, &b] {
        let rules = stack.host.events.list_rules();
        let rules = rules
            .event_bus_name(&stack.host.names.event_bus)
            .send()
            .await;
        let names: Vec<_> = rules
            .expect("list rules")
            .rules()
            .iter()
            .filter_map(|r| r.name().map(str::to_string))
            .collect();
        assert_eq!(names, [format!("{}-trigger-follower-0", stack.name())]);
    }
    let on_default = a.host.events.list_rules().send().await.expect("list rules");
    assert!(on_default.rules().is_empty(), "{on_default:?}");
    let on_a = a.capture_events("retl.run.completed").await;
    let on_b = b.capture_events("retl.run.completed").await;
    let mut run = RunRecord::new("r-of-a".into(), "upstream", "manual", 1);
    run.status = RunStatus::Succeeded;
    let put = emit_run_completed(&a.host.events, &a.host.names, &run).await;
    put.expect("finalize puts the event on A's bus");

    let events = a.events_now(&on_a).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["stack"], a.name());
    assert!(b.events_now(&on_b).await.is_empty(), "B's bus saw A's run");

    let request: TriggerRequest = serde_json::from_value(events[0].clone()).expect("an event");
    let answer = handle(&a.host, request.clone()).await.expect("answered");
    assert_eq!(answer.started.len(), 1, "{answer:?}");
    assert_eq!(started(&answer.started[0]).0, "follower");

    let answer = handle(&b.host, request).await.expect("answered");
    match &answer.started[..] {
        [TriggerOutcome::Skipped { sync, reason }] => {
            assert_eq!(sync, "upstream");
            assert!(reason.contains("`fn-trigger-two-a`"), "{reason}");
        }
        other => panic!("expected B to skip A's event, got {other:?}"),
    }
    let holder = b.host.runs().lock_holder("follower").await.unwrap();
    assert!(holder.is_none(), "B's follower started: {holder:?}");
}
