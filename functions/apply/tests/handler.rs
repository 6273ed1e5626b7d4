//! The apply handler against a deployed stack on moto with a PostgreSQL destination.

use retl_fn_apply::{handle, ApplyRequest};
use retl_fn_testkit::TestStack;
use retl_shared::engine::steps::Decision;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_is_delivered_and_a_retried_attempt_sends_nothing_twice() {
    let stack = TestStack::start("fn_apply").await;
    stack.tables("people", &[1, 2, 3], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;
    let summary = stack.plan("people", &run_id).await;
    assert_eq!((summary.decision, summary.units), (Decision::Proceed, 1));
    let request = |retry| ApplyRequest {
        run_id: run_id.clone(),
        sync: "people".into(),
        unit: 0,
        retry,
    };

    let answer = handle(&stack.host, 2, request(0)).await.expect("applied");
    assert_eq!(answer.unit, 0);
    assert_eq!(
        (answer.counts.creates, answer.counts.failed),
        (3, 0),
        "{answer:?}"
    );
    let named = "SELECT count(*) FROM people_dest WHERE name = 'person ' || id";
    assert_eq!(stack.pg.count(named).await, 3);

    // The state machine retries a unit whose invocation failed after delivering: the retry
    // counts what the first attempt delivered and sends none of it again, so rows changed
    // in the destination since then keep their new values.
    stack
        .pg
        .exec("UPDATE people_dest SET name = 'edited'")
        .await;
    let again = handle(&stack.host, 2, request(1)).await.expect("resumed");
    assert_eq!(again.counts, answer.counts);
    let edited = "SELECT count(*) FROM people_dest WHERE name = 'edited'";
    assert_eq!(stack.pg.count(edited).await, 3, "nothing was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_the_plan_does_not_have_or_an_unapproved_plan_writes_nothing() {
    let stack = TestStack::start("fn_apply_missing").await;
    stack.tables("people", &[1], &[]).await;
    stack.tables("purge", &[1], &[1, 2, 3, 4]).await;
    stack
        .deploy(&[("people", "upsert", ""), ("purge", "mirror", "")])
        .await;

    // A plan that needs approval is not applied without one, whoever invokes apply.
    let run_id = stack.start_run("purge").await;
    let summary = stack.plan("purge", &run_id).await;
    assert_eq!(summary.decision, Decision::NeedsApproval, "{summary:?}");
    let request = ApplyRequest {
        run_id,
        sync: "purge".into(),
        unit: 0,
        retry: 0,
    };
    let err = handle(&stack.host, 1, request).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.NotApproved", "{}", err.error_message);
    assert!(
        err.error_message.contains("no approval request"),
        "{}",
        err.error_message
    );
    assert_eq!(stack.pg.count("SELECT count(*) FROM purge_dest").await, 4);

    let run_id = stack.start_run("people").await;
    let summary = stack.plan("people", &run_id).await;
    let request = ApplyRequest {
        run_id,
        sync: "people".into(),
        unit: summary.units + 5,
        retry: 0,
    };
    let err = handle(&stack.host, 1, request).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.CorruptData", "{}", err.error_message);
    assert!(
        err.error_message.contains("does not exist"),
        "{}",
        err.error_message
    );
}
