//! The contract of [`RunStore`]: runs, the per-sync lock, sync state and config versions.
//! Every backend runs every function here (`tests/tests/port_contracts.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::engine::{start_run, Engine, EngineError, NoProgress, StartOptions};
use retl_shared::ports::{
    Counts, KeySetCounts, LockOutcome, RunRecord, RunStatus, RunStore, StoreError, SyncState,
};

use super::{sync_def, SlowRuns};

/// Makes a new store instance on the backend under test (a new connection, as another
/// process would have), so concurrent callers do not share one client's serialization.
pub type Stores<'a> = &'a (dyn Fn() -> Arc<dyn RunStore> + Sync);

/// An engine on `runs` whose other ports are local files under `dir`: starting a run only
/// talks to the run store.
fn engine_on(runs: Arc<dyn RunStore>, owner: &str, dir: &Path) -> Engine {
    let keysets = SqliteStateStore::open(&dir.join("keysets.db")).expect("open the key sets");
    Engine {
        objects: Arc::new(FileObjectStore::new(dir.join("objects"))),
        keysets: Arc::new(keysets),
        runs,
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier::default()),
        connections: Default::default(),
        root: dir.to_path_buf(),
        owner: owner.to_string(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    }
}

/// Ten engines, each on its own store instance, start one sync at the same moment, over a
/// store that pauses after every call (so each caller is overtaken between any two of its
/// store calls): exactly one starts; the others are refused as `Locked` by that one and
/// record no run; the lock and the run record belong to the winner. Three rounds.
pub async fn simultaneous_starts(stores: Stores<'_>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for round in 0..3 {
        let sync = sync_def(&format!("race{round}"), "select 1 as id, 'a' as name");
        let starts = (0..10).map(|i| {
            let slow: Arc<dyn RunStore> =
                Arc::new(SlowRuns::new(stores(), Duration::from_millis(20)));
            let engine = engine_on(slow, &format!("test:racer{i}"), dir.path());
            let sync = sync.clone();
            tokio::spawn(async move {
                let opts = StartOptions {
                    trigger: "manual".into(),
                    ..StartOptions::default()
                };
                start_run(&engine, &sync, opts).await
            })
        });
        let results: Vec<_> = futures::future::join_all(starts)
            .await
            .into_iter()
            .map(|joined| joined.expect("a racer panicked"))
            .collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one run starts, got {:?}",
            results
                .iter()
                .map(|r| r
                    .as_ref()
                    .map(|run| run.run_id.clone())
                    .map_err(|e| e.to_string()))
                .collect::<Vec<_>>()
        );
        let winner = winners[0];
        for r in &results {
            match r {
                Ok(_) => {}
                Err(EngineError::Locked { holder, .. }) => {
                    assert_eq!(
                        holder.run_id, winner.run_id,
                        "round {round}: refused by the winner"
                    )
                }
                Err(e) => panic!("round {round}: a racer failed instead of being refused: {e}"),
            }
        }
        let store = stores();
        let holder = store.lock_holder(&sync.name).await.unwrap();
        assert_eq!(holder.map(|h| h.run_id), Some(winner.run_id.clone()));
        let recorded = store.list_runs(Some(&sync.name), 20).await.unwrap();
        let recorded: Vec<_> = recorded
            .iter()
            .map(|r| (r.run_id.as_str(), r.status))
            .collect();
        assert_eq!(
            recorded,
            [(winner.run_id.as_str(), RunStatus::Running)],
            "round {round}: only the winner's run is recorded"
        );
    }
}

fn run(id: &str, sync: &str) -> RunRecord {
    RunRecord::new(id.to_string(), sync, "manual", 1)
}

async fn recorded(store: &dyn RunStore, run_id: &str) -> bool {
    match store.get_run(run_id).await {
        Ok(_) => true,
        Err(StoreError::NotFound(_)) => false,
        Err(e) => panic!("reading run {run_id}: {e}"),
    }
}

/// Starting takes the lock and records the run together; a held lock refuses and records
/// nothing; re-starting the holding run is fine; locks are per sync.
pub async fn starts_lock_and_record_together(r: &dyn RunStore) {
    assert_eq!(r.lock_holder("s").await.unwrap(), None);
    let run1 = run("run1", "s");
    assert_eq!(
        r.lock_and_start(&run1, "host:1").await.unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        r.get_run("run1").await.unwrap(),
        run1,
        "recorded with the lock"
    );
    assert_eq!(
        r.lock_and_start(&run1, "host:1").await.unwrap(),
        LockOutcome::Acquired,
        "re-entrant"
    );
    let held = r.lock_holder("s").await.unwrap().expect("a holder");
    assert_eq!(
        (
            held.sync.as_str(),
            held.run_id.as_str(),
            held.owner.as_str()
        ),
        ("s", "run1", "host:1")
    );
    match r.lock_and_start(&run("run2", "s"), "host:2").await.unwrap() {
        LockOutcome::Held(info) => assert_eq!(info, held),
        other => panic!("run2 took a held lock: {other:?}"),
    }
    assert!(
        !recorded(r, "run2").await,
        "a refused start records nothing"
    );
    assert_eq!(
        r.lock_and_start(&run("run-t", "t"), "host:2")
            .await
            .unwrap(),
        LockOutcome::Acquired,
        "per sync"
    );
}

/// Only the holder's heartbeat counts, and it says whether the lock is still held.
pub async fn heartbeats_tell_the_holder_it_still_holds(r: &dyn RunStore) {
    r.lock_and_start(&run("hb1", "hb"), "host:1").await.unwrap();
    let held = r.lock_holder("hb").await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(r.heartbeat("hb", "hb1").await.unwrap(), "the holder holds");
    let beat = r.lock_holder("hb").await.unwrap().unwrap();
    assert!(beat.heartbeat_at > held.heartbeat_at);
    assert_eq!(beat.acquired_at, held.acquired_at);
    assert!(!r.heartbeat("hb", "hb2").await.unwrap(), "not the holder");
    assert_eq!(
        r.lock_holder("hb").await.unwrap().unwrap(),
        beat,
        "only the holder beats"
    );
    assert!(!r.heartbeat("nobody-locked", "hb2").await.unwrap());
}

/// A takeover moves the lock from the named holder to a new run and records that run,
/// together; it fails (writing nothing) if the named run does not hold the lock. The run
/// that lost the lock learns it from its next heartbeat. Unlocking is the holder's only.
pub async fn takes_over_and_unlocks(r: &dyn RunStore) {
    r.lock_and_start(&run("to1", "o"), "host:1").await.unwrap();
    assert!(
        !r.take_over_and_start("to9", &run("to3", "o"), "host:3")
            .await
            .unwrap(),
        "not the holder"
    );
    assert!(
        !recorded(r, "to3").await,
        "a failed takeover records nothing"
    );
    assert_eq!(r.lock_holder("o").await.unwrap().unwrap().run_id, "to1");
    let to2 = run("to2", "o");
    assert!(r.take_over_and_start("to1", &to2, "host:2").await.unwrap());
    let taken = r.lock_holder("o").await.unwrap().unwrap();
    assert_eq!(
        (taken.run_id.as_str(), taken.owner.as_str()),
        ("to2", "host:2")
    );
    assert_eq!(
        r.get_run("to2").await.unwrap(),
        to2,
        "recorded with the lock"
    );
    assert!(
        !r.heartbeat("o", "to1").await.unwrap(),
        "the old holder learns it lost the lock"
    );
    assert!(
        !r.take_over_and_start("to1", &run("to3", "o"), "host:3")
            .await
            .unwrap(),
        "already taken"
    );
    assert!(
        !r.take_over_and_start("to1", &run("to4", "free"), "host:3")
            .await
            .unwrap(),
        "no lock"
    );
    assert!(!recorded(r, "to3").await && !recorded(r, "to4").await);

    r.unlock("o", "to1").await.unwrap();
    assert_eq!(
        r.lock_holder("o").await.unwrap().unwrap().run_id,
        "to2",
        "only the holder unlocks"
    );
    r.unlock("o", "to2").await.unwrap();
    assert_eq!(r.lock_holder("o").await.unwrap(), None);
    r.unlock("o", "to2").await.unwrap();
    assert_eq!(
        r.lock_and_start(&run("to5", "o"), "host:5").await.unwrap(),
        LockOutcome::Acquired
    );
}

/// Ten callers, each on its own store instance, start runs of one sync at once: exactly
/// one gets the lock, the others see it, and only its run is recorded. Then ten take the
/// winner's lock over at once: exactly one does.
pub async fn races_for_the_lock(stores: Stores<'_>) {
    let outcomes = futures::future::join_all((0..10).map(|i| {
        let r = stores();
        tokio::spawn(async move {
            r.lock_and_start(&run(&format!("race{i}"), "race"), "host")
                .await
                .unwrap()
        })
    }))
    .await;
    let outcomes: Vec<LockOutcome> = outcomes.into_iter().map(|o| o.unwrap()).collect();
    let store = stores();
    let winner = store.lock_holder("race").await.unwrap().unwrap();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == LockOutcome::Acquired)
            .count(),
        1
    );
    assert!(outcomes.iter().all(|o| match o {
        LockOutcome::Acquired => true,
        LockOutcome::Held(h) => h.run_id == winner.run_id,
    }));
    let listed = store.list_runs(Some("race"), 20).await.unwrap();
    assert_eq!(
        ids(&listed),
        [winner.run_id.as_str()],
        "only the winner is recorded"
    );

    let takeovers = futures::future::join_all((0..10).map(|i| {
        let (r, from) = (stores(), winner.run_id.clone());
        tokio::spawn(async move {
            r.take_over_and_start(&from, &run(&format!("take{i}"), "race"), "host")
                .await
                .unwrap()
        })
    }))
    .await;
    let took = takeovers
        .into_iter()
        .filter(|t| *t.as_ref().unwrap())
        .count();
    assert_eq!(took, 1, "exactly one takeover");
    let holder = store.lock_holder("race").await.unwrap().unwrap();
    assert!(holder.run_id.starts_with("take"));
    assert_eq!(store.list_runs(Some("race"), 20).await.unwrap().len(), 2);
}

fn ids(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

/// Runs are kept and listed newest first, per sync and across syncs, with limits; the
/// lock, state and versions of a sync stay out of its listing; replacing a run replaces
/// it everywhere.
pub async fn keeps_and_lists_runs(r: &dyn RunStore) {
    for i in 1..=9 {
        let sync = if i % 2 == 1 { "alpha" } else { "beta" };
        r.put_run(&run(&format!("run-{i:03}"), sync)).await.unwrap();
    }
    r.lock_and_start(&run("run-009", "alpha"), "host")
        .await
        .unwrap();
    r.put_sync_state(&SyncState {
        sync: "alpha".into(),
        ..SyncState::default()
    })
    .await
    .unwrap();
    r.record_version(
        &sync_def("alpha", "select 1 as id, 'a' as name"),
        None,
        None,
    )
    .await
    .unwrap();

    let mut third = r.get_run("run-003").await.unwrap();
    assert_eq!(
        (third.sync.as_str(), third.status),
        ("alpha", RunStatus::Running)
    );
    let missing = r.get_run("run-404").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    assert_eq!(
        ids(&r.list_runs(Some("alpha"), 10).await.unwrap()),
        ["run-009", "run-007", "run-005", "run-003", "run-001"]
    );
    assert_eq!(
        ids(&r.list_runs(Some("alpha"), 2).await.unwrap()),
        ["run-009", "run-007"]
    );
    assert_eq!(
        ids(&r.list_runs(Some("beta"), 10).await.unwrap()),
        ["run-008", "run-006", "run-004", "run-002"]
    );
    let all = r.list_runs(None, 100).await.unwrap();
    let all: Vec<&str> = ids(&all)
        .into_iter()
        .filter(|id| id.starts_with("run-0"))
        .collect();
    let expected: Vec<String> = (1..=9).rev().map(|i| format!("run-{i:03}")).collect();
    assert_eq!(all, expected);
    assert_eq!(r.list_runs(None, 3).await.unwrap().len(), 3);
    assert!(r.list_runs(Some("gamma"), 5).await.unwrap().is_empty());
    assert!(r.list_runs(None, 0).await.unwrap().is_empty());

    third.counts = Counts {
        rows: 3,
        creates: 3,
        ..Counts::default()
    };
    third.keyset_after = Some(KeySetCounts {
        keyset: "alpha@f".into(),
        shards: 2,
        entries: vec![3, 0],
        pending_removals: 0,
    });
    third.finish(RunStatus::Succeeded);
    r.put_run(&third).await.unwrap();
    assert_eq!(r.get_run("run-003").await.unwrap(), third);
    assert_eq!(r.list_runs(Some("alpha"), 10).await.unwrap()[3], third);
    let listed = r.list_runs(None, 100).await.unwrap();
    let listed: Vec<&RunRecord> = listed
        .iter()
        .filter(|r| r.run_id.starts_with("run-0"))
        .collect();
    assert_eq!(listed[6], &third, "replaced in the listing across syncs");
}

/// Sync state round-trips (default when never saved), with every field: the watermark's
/// exact type and value, the key set's recorded counts.
pub async fn keeps_sync_state(r: &dyn RunStore) {
    let fresh = r.sync_state("people").await.unwrap();
    assert_eq!(
        fresh,
        SyncState {
            sync: "people".into(),
            ..SyncState::default()
        }
    );
    let state = SyncState {
        sync: "people".into(),
        paused: true,
        shards: Some(16),
        baseline_identity: Some("id1".into()),
        identity_fingerprint: Some("id1".into()),
        mapping_fingerprint: Some("map1".into()),
        generation: 3,
        last_run_id: Some("run-001".into()),
        // An incremental model's watermark survives with its exact type and value.
        watermark: Some(retl_shared::ports::Watermark {
            column: "updated_at".into(),
            value: retl_shared::ports::Bound::Decimal("9007199254740993.50".into()),
        }),
        // What the key set held when last recorded, per shard: the next plan's check.
        keyset_counts: Some(KeySetCounts {
            keyset: "people@id1".into(),
            shards: 3,
            entries: vec![0, 7, u64::from(u32::MAX) + 1],
            pending_removals: 2,
        }),
    };
    r.put_sync_state(&state).await.unwrap();
    assert_eq!(r.sync_state("people").await.unwrap(), state);
    assert_eq!(r.sync_state("other").await.unwrap().generation, 0);
}

/// Versions are numbered from 1, a same definition keeps its version (a note is added to
/// it), a change back is a new version, and concurrent callers on two store instances agree.
pub async fn keeps_versions(stores: Stores<'_>) {
    let r = stores();
    assert!(r.versions("people").await.unwrap().is_empty());
    let a = sync_def("people", "select 1 as id, 'a' as name");
    let b = sync_def("people", "select 2 as id, 'b' as name");
    let v1 = r.record_version(&a, None, None).await.unwrap();
    assert_eq!((v1.version, v1.note.as_deref()), (1, None));
    assert_eq!(
        r.record_version(&a, None, None).await.unwrap(),
        v1,
        "same definition, same version"
    );
    let noted = r.record_version(&a, Some("first"), None).await.unwrap();
    assert_eq!((noted.version, noted.note.as_deref()), (1, Some("first")));
    assert_eq!(noted.created_at, v1.created_at);
    assert_eq!(r.record_version(&b, None, None).await.unwrap().version, 2);
    assert_eq!(r.record_version(&b, None, None).await.unwrap().version, 2);
    let lead = "arn:aws:iam::123456789012:user/lead";
    let back = r
        .record_version(&a, Some("back to a"), Some(lead))
        .await
        .unwrap();
    assert_eq!(back.version, 3, "a change back is a new version");
    let all = r.versions("people").await.unwrap();
    let deployers: Vec<Option<&str>> = all.iter().map(|v| v.deployed_by.as_deref()).collect();
    assert_eq!(
        deployers,
        [None, None, Some(lead)],
        "who deployed each version"
    );
    let summary: Vec<(u32, String, Option<&str>)> = all
        .iter()
        .map(|v| (v.version, v.config_hash.clone(), v.note.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, a.config_hash(), Some("first")),
            (2, b.config_hash(), None),
            (3, a.config_hash(), Some("back to a")),
        ]
    );
    assert_eq!(all[1].definition, b);

    let (r1, r2) = (stores(), stores());
    let c1 = sync_def("people", "select 3 as id, 'c' as name");
    let (x, y) = tokio::join!(
        r1.record_version(&c1, None, None),
        r2.record_version(&c1, None, None)
    );
    assert_eq!((x.unwrap().version, y.unwrap().version), (4, 4));
    let d = sync_def("people", "select 4 as id, 'd' as name");
    let e = sync_def("people", "select 5 as id, 'e' as name");
    let (x, y) = tokio::join!(
        r1.record_version(&d, None, None),
        r2.record_version(&e, None, None)
    );
    let got: BTreeSet<u32> = [x.unwrap().version, y.unwrap().version].into();
    assert_eq!(got, BTreeSet::from([5, 6]));
    let versions: Vec<u32> = r
        .versions("people")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert!(r.versions("other").await.unwrap().is_empty());
}

/// Every function above, in order, each on a fresh instance of the same backend.
pub async fn all(stores: Stores<'_>) {
    starts_lock_and_record_together(stores().as_ref()).await;
    heartbeats_tell_the_holder_it_still_holds(stores().as_ref()).await;
    takes_over_and_unlocks(stores().as_ref()).await;
    races_for_the_lock(stores).await;
    keeps_and_lists_runs(stores().as_ref()).await;
    keeps_sync_state(stores().as_ref()).await;
    keeps_versions(stores).await;
    simultaneous_starts(stores).await;
}
