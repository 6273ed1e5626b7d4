//! Planning benchmark: 1,000,000 model rows against a 1,000,000-key set on the local store
//! (10% changed, 5% new, 5% gone), in mirror mode so deletes are computed too.
//!
//! `cargo bench -p retl-shared --bench plan` prints rows/s and peak memory of the plan step
//! (and, for context, of extract and of seeding the key set). `ROWS=...` changes the size.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::config::{ConnectionConfig, SafetyConfig, SyncDef, SyncMode};
use retl_shared::connectors::sqlite::SqliteConnection;
use retl_shared::engine::{
    extract, keyset_id, plan_shard, summarize_plan, Engine, ExtractOptions, NoProgress, PlanContext,
};
use retl_shared::ports::{KeyChange, KeyEntry, KeyOrigin, KeyState, RunRecord};
use retl_shared::record::{value_hash, Values};
use serde_json::json;

/// Peak resident memory since the last reset, in MiB (Linux).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak so each phase is measured on its own (Linux: clear_refs 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn values(id: u64, name: &str) -> Values {
    json!({"id": id, "name": name})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let shards = 16;
    let sync = SyncDef {
        name: "bench".into(),
        description: None,
        source_connection: "warehouse".into(),
        sql: "select id, name from model".into(),
        primary_key: vec!["id".into()],
        key_fields: vec!["id".into()],
        destination_connection: "dest".into(),
        object: "people".into(),
        mapping: [
            ("id".to_string(), "id".to_string()),
            ("name".to_string(), "name".to_string()),
        ]
        .into(),
        mode: SyncMode::Mirror,
        delete_scope: Default::default(),
        safety: SafetyConfig::default(),
        schedule: None,
        triggers: vec![],
        shards,
    };

    // The model: ids 0..rows minus the 5% gone, 10% with a new name, plus 5% new ids.
    let gone = rows / 20;
    let changed = rows / 10;
    let t = Instant::now();
    {
        let c = rusqlite::Connection::open(dir.path().join("warehouse.db")).expect("warehouse");
        c.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; CREATE TABLE model (id INTEGER, name TEXT); BEGIN;")
            .expect("schema");
        let mut ins = c
            .prepare("INSERT INTO model VALUES (?1, ?2)")
            .expect("insert");
        for id in gone..rows {
            let name = if id < gone + changed {
                format!("renamed {id}")
            } else {
                format!("person {id}")
            };
            ins.execute(rusqlite::params![id as i64, name])
                .expect("row");
        }
        for id in rows..rows + gone {
            ins.execute(rusqlite::params![id as i64, format!("person {id}")])
                .expect("row");
        }
        c.execute_batch("COMMIT").expect("commit");
    }
    println!(
        "setup: model of {} rows written in {:.2}s",
        rows,
        t.elapsed().as_secs_f64()
    );

    let store = Arc::new(SqliteStateStore::open(&dir.path().join("state.db")).expect("state"));
    let engine = Engine {
        objects: Arc::new(FileObjectStore::new(dir.path().join("objects"))),
        keysets: store.clone(),
        runs: store,
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier),
        connections: [(
            "warehouse".to_string(),
            ConnectionConfig::Sqlite(SqliteConnection {
                path: "warehouse.db".into(),
                create_tables: false,
                timeout_seconds: None,
                delivery: Default::default(),
            }),
        )]
        .into(),
        root: dir.path().to_path_buf(),
        owner: "bench".into(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };

    // The key set: every id 0..rows as delivered with its original values.
    let keyset = keyset_id(&sync);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(50_000);
    for id in 0..rows {
        batch.push(KeyChange::Put {
            key: id.to_string(),
            entry: KeyEntry {
                hash: value_hash(&values(id, &format!("person {id}"))),
                state: KeyState::Present,
                origin: KeyOrigin::Synced,
                updated_at: 0,
            },
        });
        if batch.len() == 50_000 {
            engine
                .keysets
                .apply(&keyset, shards, &batch)
                .await
                .expect("seed");
            batch.clear();
        }
    }
    engine
        .keysets
        .apply(&keyset, shards, &batch)
        .await
        .expect("seed");
    println!(
        "setup: key set of {} keys written in {:.2}s",
        rows,
        t.elapsed().as_secs_f64()
    );

    let run = RunRecord::new("bench-run".into(), "bench", "bench", 1);
    reset_peak();
    let t = Instant::now();
    let manifest = extract(&engine, &run, &sync, shards, ExtractOptions::default())
        .await
        .expect("extract");
    let extract_s = t.elapsed().as_secs_f64();
    println!(
        "extract: {} rows in {:.2}s = {:.0} rows/s, peak memory {:.0} MiB",
        manifest.rows,
        extract_s,
        manifest.rows as f64 / extract_s,
        peak_mib()
    );

    let ctx = PlanContext {
        keyset,
        shards,
        full_resync: None,
        can_lookup: false,
        only_keys: None,
    };
    let manifest = Arc::new(manifest);
    reset_peak();
    let t = Instant::now();
    let plans: Vec<_> = futures::stream::iter(0..shards)
        .map(|shard| {
            let (engine, sync, ctx, manifest) = (
                engine.clone(),
                sync.clone(),
                ctx.clone(),
                Arc::clone(&manifest),
            );
            tokio::spawn(async move {
                plan_shard(&engine, "bench-run", &sync, &ctx, &manifest, shard, None).await
            })
        })
        .buffer_unordered(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|r| r.expect("task").expect("plan"))
        .collect()
        .await;
    let mut run = run;
    let plan = summarize_plan(&engine, &mut run, &sync, &ctx, &manifest, &plans)
        .await
        .expect("summary");
    let plan_s = t.elapsed().as_secs_f64();
    let c = &plan.counts;
    println!(
        "plan: {} rows against {} keys in {:.2}s = {:.0} rows/s, peak memory {:.0} MiB",
        c.rows,
        rows,
        plan_s,
        c.rows as f64 / plan_s,
        peak_mib()
    );
    println!(
        "plan result: + {} creates, ~ {} updates, - {} deletes, {} unchanged ({} plan files)",
        c.creates,
        c.updates,
        c.deletes,
        c.unchanged,
        plan.files.len()
    );
    assert_eq!(c.creates, gone, "5% new");
    assert_eq!(c.updates, changed, "10% changed");
    assert_eq!(c.deletes, gone, "5% gone");
    assert_eq!(c.unchanged, rows - gone - changed);
}
