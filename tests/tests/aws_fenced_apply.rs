//! The apply step is fenced by the sync's lock on AWS's stores (DynamoDB and S3 on moto): a
//! unit still sending when the run was finalized (the apply Map failed on another unit and
//! the state machine's `RecordFailure` ended the run and released the lock) stops at its
//! next batch commit with `Retl.LockLost`, instead of writing on after the lock is gone.

use std::sync::Arc;
use std::time::Duration;

use retl_shared::adapters::aws::{DynamoKeySetStore, DynamoRunStore, S3ObjectStore};
use retl_shared::adapters::local::{EnvSecrets, TerminalNotifier};
use retl_shared::config::{load_project, SyncDef};
use retl_shared::engine::steps::{
    step_apply_unit, step_extract, step_finalize, step_plan_shard, step_summarize, Ending,
};
use retl_shared::engine::{start_run, Engine, NoProgress, StartOptions};
use retl_shared::ports::{RunStatus, RunStore};
use retl_tests::fixtures::webhook_append_project;
use retl_tests::http::WebhookReceiver;
use retl_tests::moto::{create_bucket, create_keyset_table, create_runs_table, Moto};
use retl_tests::Project;

/// Rows of the model: ten webhook requests of 100, sent one at a time.
const ROWS: usize = 1000;

fn project(url: &str) -> Project {
    webhook_append_project(url, "batch_size: 100, concurrency: 1", ROWS)
}

/// An engine on DynamoDB and S3 (on `moto`), as the functions build it, for `p`'s sync.
async fn aws_engine(moto: &Moto, p: &Project) -> (Arc<Engine>, SyncDef, Arc<DynamoRunStore>) {
    let c = moto.clients().await;
    create_bucket(&c, "fence-artifacts").await;
    create_keyset_table(&c, "fence-keysets").await;
    create_runs_table(&c, "fence-runs").await;
    let loaded = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    let sync = loaded.sync("people").unwrap().clone();
    let runs = Arc::new(DynamoRunStore::new(c.dynamodb.clone(), "fence-runs"));
    let engine = Arc::new(Engine {
        objects: Arc::new(S3ObjectStore::new(c.s3.clone(), "fence-artifacts", "")),
        keysets: Arc::new(DynamoKeySetStore::new(c.dynamodb.clone(), "fence-keysets")),
        runs: runs.clone(),
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier::default()),
        connections: loaded.connections.clone(),
        root: loaded.root.clone(),
        owner: "test:execution".to_string(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    });
    (engine, sync, runs)
}

/// A unit that is mid-apply when its run is finalized sends at most the batch it had in
/// flight, then stops with `Retl.LockLost`; the run stays failed and the sync unlocked.
#[tokio::test(flavor = "multi_thread")]
async fn an_apply_unit_stops_when_finalize_released_the_lock() {
    let moto = Moto::start();
    let hook = WebhookReceiver::start().await;
    hook.delay(Duration::from_millis(400));
    let p = project(&hook.url);
    let (engine, sync, runs) = aws_engine(&moto, &p).await;

    let opts = StartOptions {
        trigger: "manual".into(),
        ..StartOptions::default()
    };
    let run = start_run(&engine, &sync, opts).await.unwrap();
    let run_id = run.run_id.clone();
    let extracted = step_extract(&engine, &sync, &run_id).await.unwrap();
    for shard in 0..extracted.shards {
        step_plan_shard(&engine, &sync, &run_id, shard)
            .await
            .unwrap();
    }
    let summary = step_summarize(&engine, &sync, &run_id).await.unwrap();
    assert_eq!(summary.counts.creates, ROWS as u64, "{summary:?}");
    assert_eq!(
        summary.units, 1,
        "one unit sends all ten batches: {summary:?}"
    );

    let apply = {
        let (engine, sync, run_id) = (engine.clone(), sync.clone(), run_id.clone());
        tokio::spawn(async move { step_apply_unit(&engine, &sync, &run_id, 0, false, 1).await })
    };
    while hook.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another unit failed for good: the state machine's RecordFailure ends the run.
    let failure = Some((
        "Retl.DestinationUnavailable".to_string(),
        "unit 1 failed".to_string(),
    ));
    let ended = step_finalize(&engine, &sync, &run_id, Ending::Failed, failure)
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Failed);
    let sent_at_release = hook.received().len();

    let err = apply
        .await
        .expect("the apply task")
        .expect_err("a unit without the lock stops");
    assert_eq!(err.error_name(), "Retl.LockLost", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("run {run_id} lost the lock of sync `people`")),
        "{err}"
    );
    let sent = hook.received().len();
    assert!(
        sent <= sent_at_release + 1,
        "only the batch in flight at the release was sent: {sent_at_release} then {sent}"
    );
    assert!(
        sent < ROWS / 100,
        "the unit stopped before its last batch: {sent}"
    );
    assert!(
        runs.lock_holder("people").await.unwrap().is_none(),
        "unlocked"
    );
    assert_eq!(
        runs.get_run(&run_id).await.unwrap().status,
        RunStatus::Failed
    );
}
