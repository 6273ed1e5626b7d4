//! Key-set capacity benchmark: the DynamoDB read and write units a sync's runs cost.
//!
//! The engine runs a mirror sync of `KEYS` rows (default 1,000,000) from an SQLite model into
//! an SQLite destination, with its key set in DynamoDB (a local moto server) and everything
//! else local: a first run, a no-change run, and a run after 10% of the rows changed, 5% are
//! new and 5% are gone. For each it prints the units the key-set store's requests cost,
//! worked out from the items' sizes by DynamoDB's rules (moto answers made-up figures), per
//! million keys, beside what the one-item-per-key layout of earlier releases costs for the
//! same run (every key written is an item of at least one unit; every load, and every count,
//! reads every item).
//!
//! `cargo bench -p retl-tests --bench keyset_capacity` (moto from the dev virtualenv:
//! `bash infra/scripts/setup-dev.sh`). `KEYS` changes the size.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use retl_shared::adapters::aws::{CapacityUsed, DynamoKeySetStore};
use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::config::load_project;
use retl_shared::engine::{keyset_id, local_owner, run_local, Engine, LocalRunOptions, NoProgress};
use retl_shared::ports::RunRecord;
use retl_tests::bench::{env_count, load};
use retl_tests::moto::{create_keyset_table, Moto};

const SHARDS: u64 = 16;

fn write_project(dir: &Path, keys: u64) {
    std::fs::create_dir_all(dir.join("syncs")).unwrap();
    std::fs::write(
        dir.join("retl.yaml"),
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  \
         app: { type: sqlite, path: app.db }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("syncs/bench.yaml"),
        "name: bench\n\
         source: { connection: warehouse, sql: \"select id, email, name, plan, seats from model\" }\n\
         primary_key: id\n\
         destination: { connection: app, object: users }\n\
         mapping: { id: id, email: email, name: name, plan: plan, seats: seats }\n\
         mode: mirror\n",
    )
    .unwrap();
    let app = rusqlite::Connection::open(dir.join("app.db")).unwrap();
    app.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name TEXT, plan TEXT, seats INTEGER)",
    )
    .unwrap();
    let mut db = rusqlite::Connection::open(dir.join("warehouse.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE model (id INTEGER PRIMARY KEY, email TEXT, name TEXT, plan TEXT, seats INTEGER)",
    )
    .unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO model VALUES (?, ?, ?, ?, ?)")
            .unwrap();
        let plans = ["free", "pro", "team", "enterprise"];
        for i in 1..=keys {
            insert
                .execute(rusqlite::params![
                    i,
                    format!("user{i}@example.com"),
                    format!("User {i}"),
                    plans[(i % 4) as usize],
                    i % 50
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// 10% changed, 5% gone, 5% new (as infra/bench/bench.py).
fn mutate(dir: &Path, keys: u64) {
    let db = rusqlite::Connection::open(dir.join("warehouse.db")).unwrap();
    db.execute_batch(&format!(
        "UPDATE model SET name = name || ' (changed)' WHERE id % 10 = 0;
         DELETE FROM model WHERE id % 20 = 1;
         WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO model SELECT i, 'user' || i || '@example.com', 'User ' || i, 'pro', 1 FROM n;",
        first = keys + 1,
        last = keys + keys / 20
    ))
    .unwrap();
}

/// What the one-item-per-key layout costs for a run that wrote `written` keys over a key
/// set of `before` keys before and `after` keys after: each write at least one unit (these
/// items are ~70 bytes), and the plan's load and the two counts (plan and end of run) each
/// read every item, 4 KB to a unit.
fn per_key_layout(item_bytes: u64, before: u64, after: u64, written: u64) -> CapacityUsed {
    let pass = |keys: u64| (keys * item_bytes).div_ceil(4096);
    CapacityUsed {
        read_units: pass(before) * 2 + pass(after),
        write_units: written,
    }
}

fn report(
    name: &str,
    keys: u64,
    wall: f64,
    run: &RunRecord,
    packed: CapacityUsed,
    old: CapacityUsed,
) {
    let per_m = |units: u64| units as f64 * 1_000_000.0 / keys as f64;
    let c = &run.counts;
    println!(
        "  {name:<16} {wall:6.1} s  {:>7} creates {:>7} updates {:>7} deletes   \
         packed: {:>8.0} RCU {:>8.0} WCU per 1M keys   per-key items: {:>9.0} RCU {:>9.0} WCU",
        c.creates,
        c.updates,
        c.deletes,
        per_m(packed.read_units),
        per_m(packed.write_units),
        per_m(old.read_units),
        per_m(old.write_units),
    );
}

fn minus(a: CapacityUsed, b: CapacityUsed) -> CapacityUsed {
    CapacityUsed {
        read_units: a.read_units - b.read_units,
        write_units: a.write_units - b.write_units,
    }
}

#[tokio::main]
async fn main() {
    let keys = env_count("KEYS", 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), keys);
    let project = load_project(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let sync = project.sync("bench").unwrap().clone();
    let moto = Moto::start();
    let clients = moto.clients().await;
    create_keyset_table(&clients, "bench-keysets").await;
    let keysets = Arc::new(DynamoKeySetStore::new(
        clients.dynamodb.clone(),
        "bench-keysets",
    ));
    let store = Arc::new(SqliteStateStore::open(&dir.path().join("state.db")).unwrap());
    let engine = Engine {
        objects: Arc::new(FileObjectStore::new(dir.path().join("objects"))),
        keysets: keysets.clone(),
        runs: store.clone(),
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier::shown_by_caller()),
        connections: project.connections.clone(),
        root: project.root.clone(),
        owner: local_owner(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };
    // A per-key item of this key set: partition `{keyset}#0000`, the key, a 16-byte hash,
    // state, origin and time attributes.
    let item_bytes = (2 + keyset_id(&sync).len() + 5)
        + (1 + keys.to_string().len())
        + (1 + 16)
        + (2 + 2)
        + (1 + 2)
        + (1 + 6);
    println!(
        "key-set capacity: {keys} keys, {SHARDS} shards, DynamoDB on moto (units from item sizes), \
         load {:.2}",
        load()
    );
    let mut seen = keysets.capacity_used();
    let mut held = 0u64;
    for (name, change) in [
        ("first run", false),
        ("no-change run", false),
        ("10%/5%/5% change", true),
    ] {
        if change {
            mutate(dir.path(), keys);
        }
        let start = Instant::now();
        let run = run_local(&engine, &sync, LocalRunOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let wall = start.elapsed().as_secs_f64();
        let now = keysets.capacity_used();
        let c = &run.counts;
        let after = held + c.creates - c.deletes;
        let old = per_key_layout(
            item_bytes as u64,
            held,
            after,
            c.creates + c.updates + c.deletes,
        );
        report(name, keys, wall, &run, minus(now, seen), old);
        seen = now;
        held = after;
    }
    println!("load at the end: {:.2}", load());
}
