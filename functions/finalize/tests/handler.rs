//! The finalize handler against a deployed stack on moto: the end state recorded, the lock
//! released, and `retl.run.completed` published.

use retl_fn_finalize::{handle, FinalizeRequest, FinalizeResponse, StepError};
use retl_fn_testkit::TestStack;
use retl_shared::engine::steps::{step_apply_unit, Ending};
use retl_shared::ports::{RunStatus, RunStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_run_succeeds_releases_its_lock_and_announces_it() {
    let stack = TestStack::start("fn_finalize").await;
    let events = stack.capture_events("retl.run.completed").await;
    stack.tables("people", &[1, 2], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;
    let summary = stack.plan("people", &run_id).await;
    let (deployed, engine) = stack.host.load("people").await.unwrap();
    for unit in 0..summary.units {
        let applied = step_apply_unit(&engine, &deployed.def, &run_id, unit, false, 1).await;
        applied.expect("applied");
    }

    let request = FinalizeRequest {
        run_id: run_id.clone(),
        sync: "people".into(),
        ending: Ending::Applied,
        error: None,
    };
    let answer = handle(&stack.host, request.clone())
        .await
        .expect("finalized");
    assert_eq!(
        answer,
        FinalizeResponse {
            run_id: run_id.clone(),
            status: RunStatus::Succeeded
        }
    );
    let run = stack.run(&run_id).await;
    assert_eq!(run.counts.creates, 2, "{:?}", run.counts);
    assert!(stack
        .host
        .runs()
        .lock_holder("people")
        .await
        .unwrap()
        .is_none());
    let event = stack.next_event(&events).await;
    assert_eq!(event["source"], "retl", "{event}");
    assert_eq!(event["detail"]["sync"], "people", "{event}");
    assert_eq!(event["detail"]["run_id"], run_id.as_str(), "{event}");
    assert_eq!(event["detail"]["status"], "succeeded", "{event}");

    // Exactly once: finalizing again changes nothing.
    let again = handle(&stack.host, request).await.expect("finalized again");
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(stack.run(&run_id).await.counts.creates, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_records_the_caught_error_by_name_and_message() {
    let stack = TestStack::start("fn_finalize_failed").await;
    stack.tables("people", &[1], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;
    let cause = r#"{"errorType":"Retl.SourceUnavailable","errorMessage":"connection refused"}"#;
    let request = FinalizeRequest {
        run_id: run_id.clone(),
        sync: "people".into(),
        ending: Ending::Failed,
        error: Some(StepError {
            error: Some("Retl.SourceUnavailable".into()),
            cause: Some(cause.into()),
        }),
    };
    let answer = handle(&stack.host, request).await.expect("finalized");
    assert_eq!(answer.status, RunStatus::Failed);
    let run = stack.run(&run_id).await;
    assert_eq!(run.error.as_deref(), Some("connection refused"));
    assert_eq!(run.error_name.as_deref(), Some("Retl.SourceUnavailable"));
    assert!(stack
        .host
        .runs()
        .lock_holder("people")
        .await
        .unwrap()
        .is_none());

    let missing = FinalizeRequest {
        run_id: "no-such-run".into(),
        sync: "people".into(),
        ending: Ending::Applied,
        error: None,
    };
    let err = handle(&stack.host, missing).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
}
