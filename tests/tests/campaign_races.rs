//! The lock race of the fault campaign (issue 8, failure 3): many runs of one sync started at
//! the same moment. Exactly one may apply; every other one is refused with "already running"
//! (exit 4), on a fresh `.retl` too. The same race at the engine level on every run-store
//! backend (SQLite, DynamoDB on moto), over a store that pauses between calls so the window
//! the bug needs is always open; the store-level race (ten starts, then ten takeovers) many
//! seeded rounds on each backend; and a run whose lock is taken over mid-apply stopping
//! before its next batch.

use std::sync::Arc;
use std::time::Duration;

use retl_shared::adapters::aws::DynamoRunStore;
use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::config::{load_project, SyncDef};
use retl_shared::engine::steps::{
    step_apply_unit, step_extract, step_finalize, step_plan_shard, step_summarize, Ending,
};
use retl_shared::engine::{start_run, Engine, NoProgress, StartOptions};
use retl_shared::ports::{RunRecord, RunStatus, RunStore};
use retl_tests::campaign::{races, Campaign};
use retl_tests::contracts::runs;
use retl_tests::fixtures::webhook_append_project;
use retl_tests::http::WebhookReceiver;
use retl_tests::moto::{create_runs_table, Moto};
use retl_tests::{Project, RetlOutput};

/// Simultaneous `retl run` processes per round.
const RACERS: usize = 10;
/// Rounds, each on a fresh project (a fresh `.retl` under contention).
const ROUNDS: usize = 4;
/// Rows of the model: three webhook requests of 100.
const ROWS: usize = 300;
/// Rounds of the store-level lock race per backend.
const LOCK_ROUNDS: u64 = 12;

fn project(url: &str) -> Project {
    webhook_append_project(url, "batch_size: 100", ROWS)
}

/// Ten `retl run` of one append sync at once, against a receiver that counts what it gets
/// and answers slowly (so the winner holds the lock longer than a start retried on a busy
/// store waits): one run delivers every record once, the nine others exit 4 saying the
/// sync is already running.
#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_cli_runs_apply_exactly_once() {
    for round in 0..ROUNDS {
        let hook = WebhookReceiver::start().await;
        hook.delay(Duration::from_millis(1500));
        let p = Arc::new(project(&hook.url));
        let racers = (0..RACERS).map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.run(&["run", "people"]).await })
        });
        let outs: Vec<RetlOutput> = futures::future::join_all(racers)
            .await
            .into_iter()
            .map(|joined| joined.expect("a racer task panicked"))
            .collect();
        let summary: Vec<(i32, String)> = outs
            .iter()
            .map(|o| {
                (
                    o.code,
                    o.stderr.lines().last().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let applied = outs.iter().filter(|o| o.code == 0).count();
        assert_eq!(
            applied, 1,
            "round {round}: exactly one run applies: {summary:#?}"
        );
        for o in outs.iter().filter(|o| o.code != 0) {
            assert_eq!(
                o.code, 4,
                "round {round}: refused, not failed: {summary:#?}"
            );
            assert!(
                o.stderr.contains("sync `people` is already running"),
                "round {round}: {}",
                o.stderr
            );
        }
        let mut keys: Vec<String> = hook.accepted().into_iter().map(|(_, k, _)| k).collect();
        let delivered = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(
            (delivered, keys.len()),
            (ROWS, ROWS),
            "round {round}: every record created once"
        );
        assert_eq!(
            hook.received().len(),
            ROWS / 100,
            "round {round}: one run's requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_starts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    runs::simultaneous_starts(&|| -> Arc<dyn RunStore> {
        Arc::new(SqliteStateStore::open(&path).expect("open the state"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn simultaneous_starts_on_dynamodb() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-race").await;
    runs::simultaneous_starts(&|| -> Arc<dyn RunStore> {
        Arc::new(DynamoRunStore::new(c.dynamodb.clone(), "runs-race"))
    })
    .await;
}

/// The lock race, many rounds, on SQLite: each racer on its own connection.
#[tokio::test(flavor = "multi_thread")]
async fn lock_race_rounds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let stores: Vec<Arc<dyn RunStore>> = (0..races::RACERS)
        .map(|_| Arc::new(SqliteStateStore::open(&path).expect("open the state")) as _)
        .collect();
    Campaign::new("lock race on SQLite")
        .run(LOCK_ROUNDS, 1, |trial| races::round(trial, stores.clone()))
        .await;
}

/// The lock race, many rounds, on the DynamoDB run store on moto: each racer with its own
/// SDK client, as ten Lambda invocations would have.
#[tokio::test(flavor = "multi_thread")]
async fn lock_race_rounds_on_dynamodb() {
    let moto = Moto::start();
    let first = moto.clients().await;
    create_runs_table(&first, "runs-rounds").await;
    let mut stores: Vec<Arc<dyn RunStore>> = Vec::new();
    for _ in 0..races::RACERS {
        let c = moto.clients().await;
        stores.push(Arc::new(DynamoRunStore::new(
            c.dynamodb.clone(),
            "runs-rounds",
        )));
    }
    Campaign::new("lock race on DynamoDB")
        .run(LOCK_ROUNDS, 1, |trial| races::round(trial, stores.clone()))
        .await;
}

/// `retl run` whose lock is taken over while a slow receiver holds one of its batches (the
/// lock row rewritten to another run, as a takeover does): the batch in flight may land, but
/// the run stops with `Retl.LockLost` at that batch's commit and sends nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_lock_is_taken_mid_apply_sends_no_further_batch() {
    let hook = WebhookReceiver::start().await;
    hook.delay(Duration::from_millis(300));
    let p = webhook_append_project(&hook.url, "batch_size: 10, concurrency: 1", 100);
    let child = tokio::process::Command::from(p.command(&["--json", "run", "people"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("retl starts");
    let started = std::time::Instant::now();
    while hook.received().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "delivery never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state = rusqlite::Connection::open(p.path().join(".retl/state.db")).unwrap();
    state.busy_timeout(Duration::from_secs(10)).unwrap();
    let taken = state
        .execute(
            "UPDATE locks SET run_id = 'intruder', owner = 'test:intruder' WHERE sync = 'people'",
            [],
        )
        .unwrap();
    assert_eq!(taken, 1, "the run held its lock");
    let at_takeover = hook.received().len();
    let out: RetlOutput = child.wait_with_output().await.unwrap().into();
    let sent = hook.received().len();
    assert!(
        sent <= at_takeover + 1,
        "{sent} requests, {at_takeover} when the lock was taken: at most the one in flight may follow"
    );
    assert!(
        sent < 10,
        "the run stopped before its last batch ({sent} sent)"
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert_eq!(v["error_name"], "Retl.LockLost", "{v}");
    let holder: String = state
        .query_row("SELECT run_id FROM locks WHERE sync = 'people'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(holder, "intruder", "the new holder keeps the lock");
}

/// An engine on the project's local state (as `retl` opens it), owned by `owner`.
fn local_engine(p: &Project, owner: &str) -> (Engine, SyncDef, Arc<SqliteStateStore>) {
    let project = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    let sync = project.sync("people").unwrap().clone();
    let store = Arc::new(SqliteStateStore::open(&project.state_dir.join("state.db")).unwrap());
    let engine = Engine {
        objects: Arc::new(FileObjectStore::new(project.state_dir.join("objects"))),
        keysets: store.clone(),
        runs: store.clone(),
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier::default()),
        connections: project.connections.clone(),
        root: project.root.clone(),
        owner: owner.to_string(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };
    (engine, sync, store)
}

/// A run whose lock was taken over while it planned (its heartbeat went stale) finds out
/// at its next heartbeat and stops before applying anything: `Retl.LockLost`, the
/// destination untouched, its run failed with that name, the new holder's lock kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_lost_its_lock_stops_before_applying() {
    let hook = WebhookReceiver::start().await;
    let p = project(&hook.url);
    let (engine, sync, store) = local_engine(&p, "test:first");
    let opts = StartOptions {
        trigger: "manual".into(),
        ..StartOptions::default()
    };
    let run = start_run(&engine, &sync, opts).await.unwrap();
    let extracted = step_extract(&engine, &sync, &run.run_id).await.unwrap();
    for shard in 0..extracted.shards {
        step_plan_shard(&engine, &sync, &run.run_id, shard)
            .await
            .unwrap();
    }
    let summary = step_summarize(&engine, &sync, &run.run_id).await.unwrap();
    assert!(summary.units > 0, "{summary:?}");

    let second = RunRecord::new("second".into(), "people", "manual", 1);
    assert!(store
        .take_over_and_start(&run.run_id, &second, "test:second")
        .await
        .unwrap());
    let err = step_apply_unit(&engine, &sync, &run.run_id, 0, false, 1)
        .await
        .expect_err("a run without its lock applies nothing");
    assert_eq!(err.error_name(), "Retl.LockLost", "{err}");
    assert!(
        err.to_string()
            .contains("lost the lock of sync `people` to run second"),
        "{err}"
    );
    assert!(
        hook.received().is_empty(),
        "nothing reached the destination"
    );

    let error = Some((err.error_name().to_string(), err.to_string()));
    let ended = step_finalize(&engine, &sync, &run.run_id, Ending::Failed, error)
        .await
        .unwrap();
    assert_eq!(ended.status, RunStatus::Failed);
    assert_eq!(ended.error_name.as_deref(), Some("Retl.LockLost"));
    let holder = store.lock_holder("people").await.unwrap().unwrap();
    assert_eq!(holder.run_id, "second", "the new holder keeps the lock");
}
