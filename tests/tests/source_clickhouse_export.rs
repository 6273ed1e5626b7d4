//! ClickHouse's export path for real: a current ClickHouse engine (chdb behind the HTTP
//! interface) writes the model to S3 (moto) with `INSERT INTO FUNCTION s3(<named
//! collection>, ...) PARTITION BY`, and runs read the files in parallel. A run that exports
//! after one that streamed finds every record unchanged (the same values, so the same
//! hashes), then sees exactly the rows the warehouse changed and added; the export's files
//! are gone once read; a collection the server lacks fails the run with the server's error.

use std::sync::Arc;

use retl_shared::adapters::aws::{AwsClients, DynamoKeySetStore, DynamoRunStore, S3ObjectStore};
use retl_shared::adapters::local::{EnvSecrets, TerminalNotifier};
use retl_shared::config::{load_project, SyncDef};
use retl_shared::engine::keys::RunKeys;
use retl_shared::engine::{run_local, Engine, ExtractManifest, LocalRunOptions, NoProgress};
use retl_shared::ports::{RunRecord, RunStatus};
use retl_tests::moto::{create_bucket, create_keyset_table, create_runs_table, Moto};
use retl_tests::warehouses::chdb::Chdb;
use retl_tests::Project;

/// Rows of the model at first.
const ROWS: u64 = 20_000;
const BUCKET: &str = "export-artifacts";

/// The model's table: every kind of value the streamed path reads, with tabs, newlines,
/// quotes and backslashes in the text.
const SETUP: &[&str] = &[
    "CREATE NAMED COLLECTION retl_s3 AS access_key_id = 'test', secret_access_key = 'test'",
    "CREATE TABLE people (id UInt64, name String, amount Nullable(Decimal(12, 2)), \
     at DateTime('Europe/Paris'), day Date, tags Array(String)) ENGINE = MergeTree ORDER BY id",
    "INSERT INTO people SELECT number, concat('n', toString(number), if(number % 7 = 0, \
     '\\ttab\\nline \\'q\\' \\\\', '')), if(number % 5 = 0, NULL, toDecimal64(number / 4, 2)), \
     toDateTime('2024-03-01 10:00:00', 'Europe/Paris') + number, toDate('2024-01-01') + \
     (number % 400), [toString(number % 3), 'x'] FROM numbers(20000)",
];

fn retl_yaml(ch: &Chdb, export: Option<&str>) -> String {
    let export = export.map_or_else(String::new, |collection| {
        format!(", export: {{ named_collection: {collection}, slices: 4 }}")
    });
    format!(
        "connections:\n  ch: {{ type: clickhouse, url: \"{}\"{export} }}\n  \
         app: {{ type: sqlite, path: app.db, create_tables: true }}\n",
        ch.http_url
    )
}

const SYNC: &str = "name: people\nsource: { connection: ch, sql: \"select * from people\" }\n\
    primary_key: id\ndestination: { connection: app, object: people }\n\
    mapping: { id: id, name: name, amount: amount, at: at, day: day, tags: tags }\nmode: mirror\n";

/// An engine on DynamoDB and S3 (moto), as the functions build it, for the project as it is
/// now: its connections are read again after `retl.yaml` changes.
fn engine(c: &AwsClients, moto: &Moto, p: &Project) -> (Engine, SyncDef) {
    let loaded = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    let sync = loaded.sync("people").unwrap().clone();
    let objects =
        S3ObjectStore::new(c.s3.clone(), BUCKET, "").with_export_endpoint(Some(&moto.endpoint));
    let engine = Engine {
        objects: Arc::new(objects),
        keysets: Arc::new(DynamoKeySetStore::new(c.dynamodb.clone(), "export-keysets")),
        runs: Arc::new(DynamoRunStore::new(c.dynamodb.clone(), "export-runs")),
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier::default()),
        connections: loaded.connections.clone(),
        root: loaded.root.clone(),
        owner: "test:execution".to_string(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };
    (engine, sync)
}

async fn run(engine: &Engine, sync: &SyncDef) -> RunRecord {
    run_local(engine, sync, LocalRunOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The part objects `run`'s extract wrote (planning removes them; its manifest stays).
async fn parts(engine: &Engine, run: &RunRecord) -> Vec<String> {
    let key = RunKeys::new(&run.run_id).extract_manifest();
    let body = engine.objects.get(&key).await.unwrap();
    let manifest: ExtractManifest = serde_json::from_slice(&body).unwrap();
    manifest.parts.into_iter().map(|p| p.key).collect()
}

fn destination_rows(p: &Project, sql: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    let mut statement = db.prepare(sql).unwrap();
    let rows = statement
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// The run's parts came from four exported files, which are gone.
async fn assert_read_from_the_export(engine: &Engine, run: &RunRecord) {
    let exported_parts = parts(engine, run).await;
    let slices: std::collections::BTreeSet<&str> = exported_parts
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.get(5..9))
        .collect();
    assert_eq!(
        slices.len(),
        4,
        "one reader per exported file: {exported_parts:?}"
    );
    let left = engine
        .objects
        .list(&RunKeys::new(&run.run_id).export_prefix())
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "the export's files are removed once read: {left:?}"
    );
}

/// 2,000 rows changed, 1,000 added, 500 gone.
async fn change_the_model(ch: &Chdb) {
    ch.execute(
        "ALTER TABLE people UPDATE name = concat(name, ' changed') WHERE id < 2000 \
         SETTINGS mutations_sync = 2",
    )
    .await;
    ch.execute(
        "INSERT INTO people SELECT number, concat('n', toString(number)), NULL, \
         toDateTime('2024-03-01 10:00:00', 'UTC'), toDate('2024-01-01'), [] \
         FROM numbers(20000, 1000)",
    )
    .await;
    ch.execute("DELETE FROM people WHERE id >= 19500 AND id < 20000")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_model_plans_the_same_records_as_a_streamed_one() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_bucket(&c, BUCKET).await;
    create_keyset_table(&c, "export-keysets").await;
    create_runs_table(&c, "export-runs").await;
    let ch = Chdb::start(SETUP);
    let p = Project::new();
    p.write("syncs/people.yaml", SYNC);

    p.write("retl.yaml", &retl_yaml(&ch, None));
    let (streaming, sync) = engine(&c, &moto, &p);
    let first = run(&streaming, &sync).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(first.counts.creates, ROWS, "{first:?}");
    let streamed_parts = parts(&streaming, &first).await;
    let file_name = |k: &String| k.rsplit('/').next().unwrap_or_default().len();
    assert!(
        !streamed_parts.is_empty()
            && streamed_parts
                .iter()
                .all(|k| file_name(k) == "part-00000.bin".len()),
        "streamed parts are not named after a slice: {streamed_parts:?}"
    );

    p.write("retl.yaml", &retl_yaml(&ch, Some("retl_s3")));
    let (exporting, sync) = engine(&c, &moto, &p);
    let second = run(&exporting, &sync).await;
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        (
            second.counts.rows,
            second.counts.unchanged,
            second.counts.changes()
        ),
        (ROWS, ROWS, 0),
        "every exported record hashes as it did streamed: {second:?}"
    );
    assert_read_from_the_export(&exporting, &second).await;
    change_the_model(&ch).await;
    let third = run(&exporting, &sync).await;
    assert_eq!(third.status, RunStatus::Succeeded, "{third:?}");
    assert_eq!(
        (
            third.counts.updates,
            third.counts.creates,
            third.counts.deletes
        ),
        (2000, 1000, 500),
        "{third:?}"
    );
    assert_eq!(
        destination_rows(&p, "SELECT CAST(count(*) AS TEXT) FROM people"),
        ["20500"]
    );
    assert_eq!(
        destination_rows(&p, "SELECT name FROM people WHERE id = 14"),
        ["n14\ttab\nline 'q' \\ changed"]
    );

    p.write("retl.yaml", &retl_yaml(&ch, Some("no_such_collection")));
    let (missing, sync) = engine(&c, &moto, &p);
    let failed = run(&missing, &sync).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("no_such_collection") || error.contains("NAMED_COLLECTION"),
        "the server's error names the collection: {failed:?}"
    );
}
