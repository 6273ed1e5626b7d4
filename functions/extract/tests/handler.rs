//! The extract handler against a deployed stack on moto with a PostgreSQL warehouse.

use retl_fn_extract::{handle, ExtractRequest};
use retl_fn_testkit::TestStack;
use serde_json::json;

fn request(run_id: &str, sync: &str) -> ExtractRequest {
    ExtractRequest {
        run_id: run_id.into(),
        sync: sync.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_streams_the_model_and_lists_the_shards_for_the_plan_map() {
    let stack = TestStack::start("fn_extract").await;
    stack.tables("people", &[1, 2, 3], &[]).await;
    stack.deploy(&[("people", "upsert", "")]).await;
    let run_id = stack.start_run("people").await;

    let answer = handle(&stack.host, request(&run_id, "people")).await;
    let answer = answer.expect("extracted");
    assert_eq!(answer.rows, 3);
    assert!(answer.shards >= 1, "{answer:?}");
    let shards: Vec<_> = (0..answer.shards).map(|s| json!({"shard": s})).collect();
    assert_eq!(stack.object(&answer.shards_key).await, json!(shards));
    // The fields the state machine's ResultSelector picks.
    let value = serde_json::to_value(&answer).unwrap();
    for field in ["rows", "shards", "shards_key"] {
        assert!(value.get(field).is_some(), "{value}");
    }
    assert!(stack.run(&run_id).await.timings.contains_key("extract_ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_carry_the_engine_error_name_for_the_state_machine() {
    let stack = TestStack::start("fn_extract_fail").await;
    // The destination table exists; the model's does not, so the warehouse refuses the query.
    let dest = "CREATE TABLE ghost_dest (id integer PRIMARY KEY, name text NOT NULL)";
    stack.pg.exec(dest).await;
    stack.deploy(&[("ghost", "upsert", "")]).await;
    let run_id = stack.start_run("ghost").await;
    let err = handle(&stack.host, request(&run_id, "ghost"))
        .await
        .unwrap_err();
    assert_eq!(
        err.error_type, "Retl.SourceQueryFailed",
        "{}",
        err.error_message
    );
    assert!(
        err.error_message.contains("ghost_model"),
        "{}",
        err.error_message
    );

    let err = handle(&stack.host, request("no-such-run", "ghost"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
    let err = handle(&stack.host, request(&run_id, "not-deployed"))
        .await
        .unwrap_err();
    assert_eq!(err.error_type, "Retl.NotFound", "{}", err.error_message);
}
