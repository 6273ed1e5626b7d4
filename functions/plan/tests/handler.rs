//! The plan handler against a deployed stack on moto with a PostgreSQL warehouse: every shard
//! planned, then the summary the state machine's Decide state reads.

use retl_fn_plan::{handle, PlanRequest, PlanResponse};
use retl_fn_testkit::TestStack;
use retl_shared::engine::steps::Decision;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_are_planned_then_summarized_into_a_decision_and_apply_units() {
    let stack = TestStack::start("fn_plan").await;
    stack.tables("people", &[1, 2, 3], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;
    let extracted = stack.extract("people", &run_id).await;

    let mut ops = 0;
    for shard in 0..extracted.shards {
        let request = PlanRequest::Shard {
            run_id: run_id.clone(),
            sync: "people".into(),
            shard,
        };
        match handle(&stack.host, request).await.expect("planned") {
            PlanResponse::Shard(step) => {
                assert_eq!(step.shard, shard);
                ops += step.ops;
            }
            other => panic!("expected a shard step, got {other:?}"),
        }
    }
    assert_eq!(ops, 3, "three creates across the shards");

    let request = PlanRequest::Summarize {
        run_id: run_id.clone(),
        sync: "people".into(),
    };
    let summary = match handle(&stack.host, request).await.expect("summarized") {
        PlanResponse::Summary(summary) => summary,
        other => panic!("expected a summary, got {other:?}"),
    };
    assert_eq!(summary.decision, Decision::Proceed);
    assert_eq!((summary.counts.creates, summary.counts.deletes), (3, 0));
    assert!(summary.units >= 1, "{summary:?}");
    let units: Vec<_> = (0..summary.units).map(|u| json!({"unit": u})).collect();
    assert_eq!(stack.object(&summary.units_key).await, json!(units));
    // The fields the Summarize state's ResultSelector picks, untagged.
    let value = serde_json::to_value(PlanResponse::Summary(summary)).unwrap();
    assert_eq!(value["decision"], "proceed", "{value}");
    for field in ["units", "units_key", "counts", "approval_timeout_seconds"] {
        assert!(value.get(field).is_some(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_without_its_shard_plans_is_corrupt_data() {
    let stack = TestStack::start("fn_plan_missing").await;
    stack.tables("people", &[1], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;
    stack.extract("people", &run_id).await;
    let request = PlanRequest::Summarize {
        run_id,
        sync: "people".into(),
    };
    let err = handle(&stack.host, request).await.unwrap_err();
    assert_eq!(err.error_type, "Retl.CorruptData", "{}", err.error_message);
    assert!(
        err.error_message.contains("shard 0 is missing"),
        "{}",
        err.error_message
    );
}
