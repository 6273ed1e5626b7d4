//! The contract of [`RunStore`]: runs, the per-sync lock, sync state and config versions.
//! Every backend runs every function here (`tests/tests/port_contracts.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use retl_shared::adapters::local::{EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier};
use retl_shared::engine::{start_run, Engine, EngineError, NoProgress, StartOptions};
use retl_shared::ports::{RunStatus, RunStore};

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
                .map(|r| r.as_ref().map(|run| run.run_id.clone()).map_err(|e| e.to_string()))
                .collect::<Vec<_>>()
        );
        let winner = winners[0];
        for r in &results {
            match r {
                Ok(_) => {}
                Err(EngineError::Locked { holder, .. }) => {
                    assert_eq!(holder.run_id, winner.run_id, "round {round}: refused by the winner")
                }
                Err(e) => panic!("round {round}: a racer failed instead of being refused: {e}"),
            }
        }
        let store = stores();
        let holder = store.lock_holder(&sync.name).await.unwrap();
        assert_eq!(holder.map(|h| h.run_id), Some(winner.run_id.clone()));
        let recorded = store.list_runs(Some(&sync.name), 20).await.unwrap();
        let recorded: Vec<_> = recorded.iter().map(|r| (r.run_id.as_str(), r.status)).collect();
        assert_eq!(
            recorded,
            [(winner.run_id.as_str(), RunStatus::Running)],
            "round {round}: only the winner's run is recorded"
        );
    }
}
