//! Extract benchmark: the extract step (what the extract Lambda runs) of a model of `ROWS`
//! rows (default 1,000,000) in a current ClickHouse engine (chdb behind the HTTP interface,
//! `infra/local/chdb_http.py`), its objects in S3 (a local moto server), streamed over one
//! connection and exported (`export: { slices: N }`: the server writes N files, the step
//! reads them a task each), and the same model from the machine's PostgreSQL over 1, 2 and 4
//! connections (`parallel_reads`); then the plan step of every shard of each first run, one
//! after the other. Prints wall time and rows/s of each, the server's export alone (the same
//! statement sent by the benchmark), and the machine's load.
//!
//! `cargo bench -p retl-tests --bench extract_export` (chdb and moto from the dev
//! virtualenv: `bash infra/scripts/setup-dev.sh`). `ROWS` changes the size, `SLICES` the
//! export widths tried (`1,2,4,8`).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use retl_shared::adapters::aws::S3ObjectStore;
use retl_shared::adapters::local::{EnvSecrets, SqliteStateStore, TerminalNotifier};
use retl_shared::config::load_project;
use retl_shared::engine::keys::RunKeys;
use retl_shared::engine::steps::{step_extract, step_finalize, step_plan_shard, Ending};
use retl_shared::engine::{start_run, Engine, ExtractManifest, NoProgress, StartOptions};
use retl_tests::bench::{env_count, load};
use retl_tests::moto::{create_bucket, Moto};
use retl_tests::warehouses::chdb::Chdb;
use retl_tests::Pg;

const BUCKET: &str = "bench-artifacts";
/// The `parallel_reads` of the PostgreSQL variants.
const PG_READS: [u32; 3] = [1, 2, 4];

fn setup(rows: u64) -> Vec<String> {
    vec![
        "CREATE NAMED COLLECTION retl_s3 AS access_key_id = 'test', secret_access_key = 'test'"
            .into(),
        "CREATE TABLE model (id UInt64, email String, name String, plan String, seats UInt32, \
         updated_at DateTime) ENGINE = MergeTree ORDER BY id"
            .into(),
        format!(
            "INSERT INTO model SELECT number, concat('user', toString(number), '@example.com'), \
             concat('User ', toString(number)), ['free', 'team', 'enterprise'][number % 3 + 1], \
             toUInt32(number % 500), toDateTime('2024-01-01 00:00:00', 'UTC') + number \
             FROM numbers({rows})"
        ),
    ]
}

/// A project whose sync reads `table` over the connection `wh` (its YAML flow mapping).
fn write_project(dir: &Path, wh: &str, table: &str) {
    std::fs::create_dir_all(dir.join("syncs")).unwrap();
    std::fs::write(
        dir.join("retl.yaml"),
        format!(
            "connections:\n  wh: {wh}\n  app: {{ type: sqlite, path: app.db, create_tables: true }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("syncs/bench.yaml"),
        format!(
            "name: bench\nsource: {{ connection: wh, sql: \"select * from {table}\" }}\n\
             primary_key: id\ndestination: {{ connection: app, object: users }}\n\
             mapping: {{ id: id, email: email, name: name, plan: plan, seats: seats, \
             updated_at: updated_at }}\nmode: mirror\n"
        ),
    )
    .unwrap();
}

/// The same model in the machine's PostgreSQL.
async fn postgres_model(rows: u64) -> Pg {
    let pg = Pg::new("bench_extract").await;
    pg.exec(&format!(
        "CREATE TABLE model (id bigint PRIMARY KEY, email text, name text, plan text, \
         seats integer, updated_at timestamptz); INSERT INTO model SELECT i, 'user' || i || \
         '@example.com', 'User ' || i, (ARRAY['free', 'team', 'enterprise'])[i % 3 + 1], \
         i % 500, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' \
         FROM generate_series(0, {rows} - 1) AS i; ANALYZE model"
    ))
    .await;
    pg
}

/// One extract and the plan of every shard; returns (extract s, plan s, shards, bytes of
/// the parts).
async fn extract_and_plan(dir: &Path, moto: &Moto, name: &str) -> (f64, f64, u32, u64) {
    let project = load_project(dir).unwrap_or_else(|e| panic!("{e}"));
    let sync = project.sync("bench").unwrap().clone();
    let clients = moto.clients().await;
    let state = Arc::new(SqliteStateStore::open(&dir.join(format!("{name}.db"))).unwrap());
    let objects = S3ObjectStore::new(clients.s3.clone(), BUCKET, name)
        .with_export_endpoint(Some(&moto.endpoint));
    let engine = Engine {
        objects: Arc::new(objects),
        keysets: state.clone(),
        runs: state,
        secrets: Arc::new(EnvSecrets),
        // The runs end failed after planning: their alerts are not the benchmark's output.
        notifier: Arc::new(TerminalNotifier::into_buffer(Default::default())),
        connections: project.connections.clone(),
        root: project.root.clone(),
        owner: "bench".into(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };
    let run = start_run(&engine, &sync, StartOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let start = Instant::now();
    let extracted = step_extract(&engine, &sync, &run.run_id)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let extract = start.elapsed().as_secs_f64();
    let manifest = engine
        .objects
        .get(&RunKeys::new(&run.run_id).extract_manifest())
        .await
        .unwrap();
    let manifest: ExtractManifest = serde_json::from_slice(&manifest).unwrap();
    let part_bytes: u64 = manifest
        .parts
        .iter()
        .flat_map(|p| p.segments.iter().map(|s| s.len))
        .sum();
    let start = Instant::now();
    for shard in 0..extracted.shards {
        step_plan_shard(&engine, &sync, &run.run_id, shard)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let plan = start.elapsed().as_secs_f64();
    let stopped = Some(("Bench".to_string(), "stopped after planning".to_string()));
    step_finalize(&engine, &sync, &run.run_id, Ending::Failed, stopped)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (extract, plan, extracted.shards, part_bytes)
}

#[tokio::main]
async fn main() {
    let rows = env_count("ROWS", 1_000_000);
    let widths: Vec<u32> = std::env::var("SLICES")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let moto = Moto::start();
    let clients = moto.clients().await;
    create_bucket(&clients, BUCKET).await;
    let statements = setup(rows);
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    let ch = Chdb::start(&statements);
    let dir = tempfile::tempdir().unwrap();
    println!(
        "extract of {rows} rows from ClickHouse (chdb) into S3 (moto), {} cores, load {:.2}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    println!(
        "  {:<22} {:>9} {:>12} {:>9} {:>14}",
        "extract", "wall s", "rows/s", "plan s", "plan rows/s"
    );
    let clickhouse =
        |export: String| format!("{{ type: clickhouse, url: \"{}\"{export} }}", ch.http_url);
    let mut variants: Vec<(String, String, String)> =
        vec![("streamed".into(), clickhouse(String::new()), "model".into())];
    variants.extend(widths.iter().map(|n| {
        let export = format!(", export: {{ named_collection: retl_s3, slices: {n} }}");
        (
            format!("exported, {n} slices"),
            clickhouse(export),
            "model".into(),
        )
    }));
    let pg = postgres_model(rows).await;
    variants.extend(PG_READS.iter().map(|n| {
        let wh = format!(
            "{{ type: postgres, url: \"{}\", parallel_reads: {n} }}",
            pg.url
        );
        (format!("PostgreSQL, {n} reads"), wh, pg.table("model"))
    }));
    for (i, (label, wh, table)) in variants.iter().enumerate() {
        write_project(dir.path(), wh, table);
        let (extract, plan, shards, bytes) =
            extract_and_plan(dir.path(), &moto, &format!("v{i}")).await;
        println!(
            "  {label:<22} {extract:>9.2} {:>12.0} {plan:>9.2} {:>14.0}   ({shards} shards, \
             parts {:.0} bytes a row, load {:.2})",
            rows as f64 / extract,
            rows as f64 / plan,
            bytes as f64 / rows as f64,
            load()
        );
    }
    server_export(&ch, &moto, &widths, rows).await;
}

/// The server's export statement alone, sent by the benchmark, for each width: its time and
/// the bytes it wrote.
async fn server_export(ch: &Chdb, moto: &Moto, widths: &[u32], rows: u64) {
    let clients = moto.clients().await;
    for n in widths {
        let url = format!(
            "{}/{BUCKET}/scratch-{n}/slice-{{_partition_id}}.tsv.gz",
            moto.endpoint
        );
        let start = Instant::now();
        ch.execute(&format!(
            "INSERT INTO FUNCTION s3(retl_s3, url = '{url}', format = \
             'TabSeparatedWithNamesAndTypes', compression_method = 'gzip') PARTITION BY \
             rand() % {n} SELECT * FROM model SETTINGS s3_truncate_on_insert = 1"
        ))
        .await;
        let wall = start.elapsed().as_secs_f64();
        let listed = clients
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(format!("scratch-{n}/"))
            .send()
            .await
            .unwrap();
        let bytes: i64 = listed.contents().iter().filter_map(|o| o.size()).sum();
        println!(
            "  server export alone, {n} slices: {wall:.2} s ({:.0} rows/s), {:.1} MB written \
             ({:.1} bytes a row)",
            rows as f64 / wall,
            bytes as f64 / 1e6,
            bytes as f64 / rows as f64
        );
    }
}
