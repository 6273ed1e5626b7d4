//! The AWS adapters of the ports against a local moto server (one per test): each port's
//! contract suite (`retl_tests::contracts`, the same the local adapters run), what only the
//! AWS adapters do (S3 multipart uploads and key prefixes, DynamoDB item layouts, Secrets
//! Manager caching and unwrapping, SNS subjects, the SDK's error mapping), then a whole sync
//! run through the engine on S3, DynamoDB, Secrets Manager and SNS, proving the engine does
//! not care which host it runs on.
// Scenario tests read top to bottom; the 80-line bound is for the code they test.
#![allow(clippy::too_many_lines)]

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use bytes::Bytes;
use retl_shared::adapters::aws::{
    AwsClients, DynamoKeySetStore, DynamoRunStore, S3ObjectStore, SecretsManagerSecrets,
    SnsNotifier,
};
use retl_shared::config::load_project;
use retl_shared::engine::{keyset_id, run_local, Engine, LocalRunOptions, NoProgress};
use retl_shared::ports::{
    KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState, Notifier, ObjectStore, RunRecord,
    RunStatus, RunStore, SecretError, Secrets, StoreError, SyncState,
};
use retl_shared::record::shard_of;
use retl_tests::contracts::notifier::{self, NotifierBackend};
use retl_tests::contracts::secrets::{self, SecretsBackend};
use retl_tests::contracts::{keyset, object_store, runs};
use retl_tests::fixtures::{people, people_sync, set_model};
use retl_tests::moto::{
    create_bucket, create_keyset_table, create_runs_table, sdk_config, sns_envelopes,
    subscribe_queue, Moto,
};
use retl_tests::{Pg, Project};
use serde_json::{json, Value};

/// A bucket and a store on it. The endpoint is named `localhost`, not an IP, so that only the
/// path-style addressing `AwsClients` chooses for endpoint overrides can reach the bucket
/// (`bucket.localhost` does not resolve).
async fn object_store(moto: &Moto, bucket: &str) -> (AwsClients, S3ObjectStore) {
    let endpoint = moto.endpoint.replace("127.0.0.1", "localhost");
    let c = AwsClients::new(&sdk_config(&endpoint).await);
    create_bucket(&c, bucket).await;
    let store = S3ObjectStore::new(c.s3.clone(), bucket, "retl");
    (c, store)
}

/// A key-set table and a store on it.
async fn keyset_store(moto: &Moto, table: &str) -> (AwsClients, DynamoKeySetStore) {
    let c = moto.clients().await;
    create_keyset_table(&c, table).await;
    let store = DynamoKeySetStore::new(c.dynamodb.clone(), table);
    (c, store)
}

#[tokio::test]
async fn s3_object_store_contract() {
    let moto = Moto::start();
    let (_c, s) = object_store(&moto, "objects-contract").await;
    object_store::all(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamo_key_set_contract() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_keyset_table(&c, "keysets-contract").await;
    keyset::all(&DynamoKeySetStore::new(
        c.dynamodb.clone(),
        "keysets-contract",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamo_run_store_contract() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-contract").await;
    runs::all(&|| -> Arc<dyn RunStore> {
        Arc::new(DynamoRunStore::new(c.dynamodb.clone(), "runs-contract"))
    })
    .await;
}

struct SecretsManager {
    clients: AwsClients,
}

#[async_trait]
impl SecretsBackend for SecretsManager {
    fn secrets(&self) -> Arc<dyn Secrets> {
        Arc::new(SecretsManagerSecrets::new(
            self.clients.secrets.clone(),
            "retl/",
        ))
    }
    async fn set(&self, name: &str, value: &str) {
        create_secret(&self.clients, &format!("retl/{name}"), value).await;
    }
    fn hint_for(&self, name: &str) -> String {
        format!("retl/{name}")
    }
}

#[tokio::test]
async fn secrets_manager_secrets_contract() {
    let moto = Moto::start();
    let clients = moto.clients().await;
    secrets::all(&SecretsManager { clients }).await;
}

/// What only S3 does: the key prefix is where the objects really are in the bucket, the
/// location is an s3:// URL, a missing bucket is a configuration problem.
#[tokio::test]
async fn s3_keeps_objects_under_its_prefix() {
    let moto = Moto::start();
    let (c, s) = object_store(&moto, "objects-basic").await;
    for k in ["runs/r1/a.bin", "runs/r1/b.bin", "runs/r2/c.bin"] {
        s.put(k, Bytes::from_static(b"x")).await.unwrap();
    }
    assert_eq!(
        s.location("runs/r1/a.bin"),
        "s3://objects-basic/retl/runs/r1/a.bin"
    );
    let raw =
        c.s3.list_objects_v2()
            .bucket("objects-basic")
            .send()
            .await
            .unwrap();
    let raw: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        raw,
        [
            "retl/runs/r1/a.bin",
            "retl/runs/r1/b.bin",
            "retl/runs/r2/c.bin"
        ]
    );

    // A bucket that does not exist is a configuration problem, not a missing object.
    let lost = S3ObjectStore::new(c.s3.clone(), "no-such-bucket", "");
    let err = lost.get("x").await;
    assert!(matches!(err, Err(StoreError::Other(_))), "{err:?}");
}

#[tokio::test]
async fn s3_uploads_large_bodies_in_parts() {
    let moto = Moto::start();
    let (c, s) = object_store(&moto, "objects-big").await;
    let mib = 1024 * 1024;
    let body: Vec<u8> = (0..20 * mib + 123).map(|i| (i % 251) as u8).collect();
    s.put("big/blob", Bytes::from(body.clone())).await.unwrap();

    let head =
        c.s3.head_object()
            .bucket("objects-big")
            .key("retl/big/blob")
            .send()
            .await
            .unwrap();
    assert_eq!(head.content_length(), Some(body.len() as i64));
    let etag = head.e_tag().unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-3"),
        "three 8 MiB parts, etag {etag}"
    );
    let open =
        c.s3.list_multipart_uploads()
            .bucket("objects-big")
            .send()
            .await
            .unwrap();
    assert!(open.uploads().is_empty(), "no upload left open");
}

/// Every item of a DynamoDB partition: (sort key, item).
async fn partition_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    partition: &str,
) -> Vec<(String, std::collections::HashMap<String, AttributeValue>)> {
    ddb.query()
        .table_name(table)
        .key_condition_expression("ks = :ks")
        .expression_attribute_values(":ks", AttributeValue::S(partition.into()))
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|item| {
            let item = item.unwrap();
            (item["k"].as_s().unwrap().clone(), item)
        })
        .collect()
}

/// Items in the four journal partitions of a key set.
async fn journal_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    set: &str,
) -> Vec<(String, std::collections::HashMap<String, AttributeValue>)> {
    let mut items = Vec::new();
    for p in 0..4 {
        items.extend(partition_items(ddb, table, &format!("{set}#j{p}")).await);
    }
    items
}

/// What only DynamoDB does: an apply writes one journal item, not an item per key; a fold
/// moves the journal into a manifest and buckets in `{keyset}#p{shard:04}` and marks it
/// folded; a key DynamoDB's old layout could not hold (empty) is refused plainly.
#[tokio::test]
async fn dynamo_key_set_packed_layout() {
    let moto = Moto::start();
    let table = "keysets-packed";
    let (c, ks) = keyset_store(&moto, table).await;
    let (set, shards) = ("people@abc", 4);
    let entry = |i: u32| KeyEntry {
        hash: 0x0123_4567_89ab_cdef_0fed_cba9_8765_4321 ^ u128::from(i),
        state: KeyState::Present,
        origin: KeyOrigin::Synced,
        updated_at: 1_700_000_001,
    };
    let puts: Vec<KeyChange> = (0..3000)
        .map(|i| KeyChange::Put {
            key: format!("user-{i}"),
            entry: entry(i),
        })
        .collect();
    ks.apply(set, shards, &puts).await.unwrap();
    assert_eq!(
        journal_items(&c.dynamodb, table, set).await.len(),
        1,
        "one item for 3,000 changes"
    );
    for shard in 0..shards {
        let items = partition_items(&c.dynamodb, table, &format!("{set}#p{shard:04}")).await;
        assert!(items.is_empty(), "nothing folded before compact");
    }
    let before = keyset::load_all(&ks, set, shards).await;
    assert_eq!(before.len(), 3000);

    ks.compact(set, shards).await.unwrap();
    // Folded journal items stay for DynamoDB's TTL to delete (unbilled); the folded mark
    // keeps loads from reading them: one that could not be decoded changes nothing.
    let journal = journal_items(&c.dynamodb, table, set).await;
    assert_eq!(journal.len(), 1);
    let ttl: i64 = journal[0].1["ttl"].as_n().unwrap().parse().unwrap();
    let days = (ttl - chrono::Utc::now().timestamp()) / 86_400;
    assert!((34..=35).contains(&days), "expires in {days} days");
    let mark = partition_items(&c.dynamodb, table, &format!("{set}#f")).await;
    assert_eq!(mark[0].1["through"].as_s().unwrap(), &journal[0].0);
    c.dynamodb
        .put_item()
        .table_name(table)
        .item("ks", AttributeValue::S(format!("{set}#j0")))
        .item("k", AttributeValue::S("00000000000000000000000000".into()))
        .item("d", AttributeValue::B(vec![0xff; 3].into()))
        .send()
        .await
        .unwrap();
    let mut buckets = 0;
    for shard in 0..shards {
        let items = partition_items(&c.dynamodb, table, &format!("{set}#p{shard:04}")).await;
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys.last(), Some(&"m"), "a manifest per shard: {keys:?}");
        assert!(
            keys[..keys.len() - 1].iter().all(|k| k.starts_with("b#")),
            "{keys:?}"
        );
        buckets += keys.len() - 1;
    }
    assert!(buckets >= shards as usize, "{buckets} buckets");
    assert_eq!(keyset::load_all(&ks, set, shards).await, before);
    let used = ks.capacity_used();
    assert!(
        used.write_units < 3000 / 10,
        "3,000 keys written and folded for {} write units",
        used.write_units
    );

    let empty = ks
        .apply(set, shards, &[KeyChange::Remove { key: String::new() }])
        .await;
    assert!(matches!(empty, Err(StoreError::Other(_))), "{empty:?}");
}

/// A key set written one item per key by an earlier retl is read as it is, counted, and moved
/// into buckets by the first fold (its per-key items deleted), entries unchanged.
#[tokio::test]
async fn dynamo_key_set_moves_the_per_key_layout_into_buckets() {
    let moto = Moto::start();
    let table = "keysets-legacy";
    let (c, ks) = keyset_store(&moto, table).await;
    let (set, shards) = ("old@abc", 4);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..200u32 {
        let key = format!("k{i}");
        let shard = shard_of(&key, shards);
        let e = KeyEntry {
            hash: u128::from(i) << 64 | 7,
            state: if i % 5 == 0 {
                KeyState::Deleted
            } else {
                KeyState::Present
            },
            origin: if i % 2 == 0 {
                KeyOrigin::Baseline
            } else {
                KeyOrigin::Synced
            },
            updated_at: 1_600_000_000 + i64::from(i),
        };
        c.dynamodb
            .put_item()
            .table_name(table)
            .item("ks", AttributeValue::S(format!("{set}#{shard:04}")))
            .item("k", AttributeValue::S(key.clone()))
            .item("h", AttributeValue::B(e.hash.to_be_bytes().to_vec().into()))
            .item(
                "st",
                AttributeValue::N(u8::from(e.state == KeyState::Deleted).to_string()),
            )
            .item(
                "o",
                AttributeValue::N(u8::from(e.origin == KeyOrigin::Synced).to_string()),
            )
            .item("t", AttributeValue::N(e.updated_at.to_string()))
            .send()
            .await
            .unwrap();
        expected.insert(key, e);
    }
    assert_eq!(keyset::load_all(&ks, set, shards).await, expected);
    assert_eq!(
        ks.counts(set, shards).await.unwrap().iter().sum::<u64>(),
        200
    );

    // A run's changes on top of the old layout, then its fold.
    ks.apply(set, shards, &[KeyChange::Remove { key: "k1".into() }])
        .await
        .unwrap();
    expected.remove("k1");
    assert_eq!(keyset::load_all(&ks, set, shards).await, expected);
    ks.compact(set, shards).await.unwrap();
    for shard in 0..shards {
        let old = partition_items(&c.dynamodb, table, &format!("{set}#{shard:04}")).await;
        assert!(
            old.is_empty(),
            "shard {shard} keeps {} per-key items",
            old.len()
        );
    }
    assert_eq!(keyset::load_all(&ks, set, shards).await, expected);
    assert_eq!(
        ks.counts(set, shards).await.unwrap().iter().sum::<u64>(),
        199
    );
}

/// A fold that stopped after writing a bucket it never listed: loads ignore the bucket, the
/// next fold deletes it, and no entry is lost or invented.
#[tokio::test]
async fn dynamo_key_set_survives_a_fold_stopped_midway() {
    let moto = Moto::start();
    let table = "keysets-stopped";
    let (c, ks) = keyset_store(&moto, table).await;
    let (set, shards) = ("stopped@abc", 1);
    let e = |h: u128| KeyEntry {
        hash: h,
        state: KeyState::Present,
        origin: KeyOrigin::Synced,
        updated_at: 5,
    };
    let put = |key: &str, h| KeyChange::Put {
        key: key.into(),
        entry: e(h),
    };
    ks.apply(set, shards, &[put("a", 1), put("b", 2)])
        .await
        .unwrap();
    ks.compact(set, shards).await.unwrap();
    let partition = format!("{set}#p0000");
    let manifest = partition_items(&c.dynamodb, table, &partition)
        .await
        .into_iter()
        .find(|(k, _)| k == "m")
        .unwrap()
        .1;
    let next_id: u64 = manifest["nx"].as_n().unwrap().parse().unwrap();
    // What the stopped fold left: a bucket copied from a live one under the next free id,
    // which would double its keys if it were read.
    let live = partition_items(&c.dynamodb, table, &partition)
        .await
        .into_iter()
        .find(|(k, _)| k.starts_with("b#"))
        .unwrap()
        .1;
    c.dynamodb
        .put_item()
        .table_name(table)
        .item("ks", AttributeValue::S(partition.clone()))
        .item("k", AttributeValue::S(format!("b#{next_id:016x}")))
        .item("d", live["d"].clone())
        .send()
        .await
        .unwrap();
    // The run the fold belonged to changed `a` and removed `b`; its journal is still there.
    ks.apply(
        set,
        shards,
        &[put("a", 10), KeyChange::Remove { key: "b".into() }],
    )
    .await
    .unwrap();
    let want: std::collections::BTreeMap<String, KeyEntry> =
        [("a".to_string(), e(10))].into_iter().collect();
    assert_eq!(keyset::load_all(&ks, set, shards).await, want);
    ks.compact(set, shards).await.unwrap();
    assert_eq!(keyset::load_all(&ks, set, shards).await, want);
    let keys: Vec<String> = partition_items(&c.dynamodb, table, &partition)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 2, "one bucket and the manifest: {keys:?}");
    assert_eq!(ks.counts(set, shards).await.unwrap(), vec![1]);
}

/// What only DynamoDB does: a run is kept three times (its item, its sync's listing, the
/// listing across syncs), and a lock taken writes them in the same transaction.
#[tokio::test]
async fn dynamo_run_store_item_layout() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-layout").await;
    let r = DynamoRunStore::new(c.dynamodb.clone(), "runs-layout");
    let run = RunRecord::new("run-1".into(), "people", "manual", 1);
    r.lock_and_start(&run, "host").await.unwrap();
    let items = c
        .dynamodb
        .scan()
        .table_name("runs-layout")
        .send()
        .await
        .unwrap();
    let mut keys: Vec<(String, String)> = items
        .items()
        .iter()
        .map(|i| {
            (
                i["pk"].as_s().unwrap().clone(),
                i["sk"].as_s().unwrap().clone(),
            )
        })
        .collect();
    keys.sort();
    let want = [
        ("RUN#run-1", "RUN"),
        ("RUNS", "run-1"),
        ("SYNC#people", "LOCK"),
        ("SYNC#people", "RUN#run-1"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, s)| ((*p).to_string(), (*s).to_string()))
        .collect();
    assert_eq!(keys, want);
}

async fn create_secret(c: &AwsClients, id: &str, value: &str) {
    c.secrets
        .create_secret()
        .name(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn update_secret(c: &AwsClients, id: &str, value: &str) {
    c.secrets
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn secrets_manager_unwraps_and_caches() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_secret(&c, "retl/APP_DB", "postgres://one").await;
    create_secret(&c, "retl/WRAPPED", r#"{"url":"postgres://wrapped"}"#).await;
    create_secret(&c, "retl/NAMED", r#"{"NAMED":"by-name","other":"x"}"#).await;
    create_secret(&c, "retl/PAIR", r#"{"user":"u","password":"p"}"#).await;
    let secrets = SecretsManagerSecrets::new(c.secrets.clone(), "retl/");

    assert_eq!(secrets.get("APP_DB").await.unwrap(), "postgres://one");
    assert_eq!(secrets.get("WRAPPED").await.unwrap(), "postgres://wrapped");
    assert_eq!(secrets.get("NAMED").await.unwrap(), "by-name");
    assert_eq!(
        secrets.get("PAIR").await.unwrap(),
        r#"{"user":"u","password":"p"}"#
    );

    // Cached for the TTL: a rotated value is not seen yet ...
    update_secret(&c, "retl/APP_DB", "postgres://two").await;
    assert_eq!(secrets.get("APP_DB").await.unwrap(), "postgres://one");
    // ... while a store with no TTL reads it every time.
    let uncached = SecretsManagerSecrets::new(c.secrets.clone(), "retl/").with_ttl(Duration::ZERO);
    assert_eq!(uncached.get("APP_DB").await.unwrap(), "postgres://two");
    update_secret(&c, "retl/APP_DB", "postgres://three").await;
    assert_eq!(uncached.get("APP_DB").await.unwrap(), "postgres://three");
    let short =
        SecretsManagerSecrets::new(c.secrets.clone(), "retl/").with_ttl(Duration::from_millis(200));
    assert_eq!(short.get("APP_DB").await.unwrap(), "postgres://three");
    update_secret(&c, "retl/APP_DB", "postgres://four").await;
    assert_eq!(short.get("APP_DB").await.unwrap(), "postgres://three");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        short.get("APP_DB").await.unwrap(),
        "postgres://four",
        "expired"
    );

    assert!(
        !format!("{secrets:?}").contains("postgres"),
        "Debug shows no value"
    );
}

/// A topic with an SQS queue subscribed to it: what SNS published can be read back.
async fn topic_with_queue(moto: &Moto, c: &AwsClients) -> (String, aws_sdk_sqs::Client, String) {
    let topic = c
        .sns
        .create_topic()
        .name("retl-alerts")
        .send()
        .await
        .unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let sdk = moto.sdk_config().await;
    let (sqs, queue_url) = subscribe_queue(&sdk, &c.sns, &topic, "alerts").await;
    (topic, sqs, queue_url)
}

struct Sns {
    notifier: Arc<SnsNotifier>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

#[async_trait]
impl NotifierBackend for Sns {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }
    async fn delivered(&self, at_least: usize) -> Vec<String> {
        sns_envelopes(&self.sqs, &self.queue_url, at_least)
            .await
            .iter()
            .map(|e| format!("{} {}", e["Subject"], e["Message"]))
            .collect()
    }
}

#[tokio::test]
async fn sns_notifier_contract() {
    let moto = Moto::start();
    let c = moto.clients().await;
    let (topic, sqs, queue_url) = topic_with_queue(&moto, &c).await;
    let notifier = Arc::new(SnsNotifier::new(c.sns.clone(), &topic));
    notifier::all(&Sns {
        notifier,
        sqs,
        queue_url,
    })
    .await;
}

#[tokio::test]
async fn sns_publishes_notifications_with_subject_and_kind() {
    let moto = Moto::start();
    let c = moto.clients().await;
    let (topic, sqs, queue_url) = topic_with_queue(&moto, &c).await;
    let notifier = SnsNotifier::new(c.sns.clone(), &topic);
    let (alert, approval) = (notifier::alert(), notifier::approval());
    notifier.notify(&alert).await.unwrap();
    notifier.notify(&approval).await.unwrap();

    let mut envelopes = sns_envelopes(&sqs, &queue_url, 2).await;
    envelopes.sort_by_key(|e| e["Subject"].as_str().map(str::to_string));
    let summary: Vec<(Value, Value, Value)> = envelopes
        .iter()
        .map(|e| {
            let message: Value = serde_json::from_str(e["Message"].as_str().unwrap()).unwrap();
            (
                e["Subject"].clone(),
                e["MessageAttributes"]["kind"]["Value"].clone(),
                message,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                json!("retl: alert for sync people (run run-1): failure"),
                json!("alert"),
                serde_json::to_value(&alert).unwrap(),
            ),
            (
                json!("retl: approval needed for sync people (run run-2)"),
                json!("approval_needed"),
                serde_json::to_value(&approval).unwrap(),
            ),
        ]
    );
}

#[tokio::test]
async fn engine_runs_a_sync_on_aws_adapters() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_bucket(&c, "retl-e2e").await;
    create_keyset_table(&c, "retl-e2e-keysets").await;
    create_runs_table(&c, "retl-e2e-runs").await;
    let topic = c.sns.create_topic().name("retl-e2e").send().await.unwrap();
    let pg = Pg::new("aws_engine").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    // The destination URL is a secret: on AWS, Secrets Manager holds it.
    create_secret(&c, "retl-e2e/APP_DB_URL", &pg.url).await;

    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  \
         app_db: { type: postgres, url_env: APP_DB_URL }\n",
    );
    p.write("syncs/people.yaml", &people_sync(&pg, "upsert", ""));
    set_model(&p, &[(1, "Alice"), (2, "Bob"), (3, "Carol")]);
    let project = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    let sync = project.sync("people").unwrap().clone();

    let objects = Arc::new(S3ObjectStore::new(c.s3.clone(), "retl-e2e", "state"));
    let keysets = Arc::new(DynamoKeySetStore::new(
        c.dynamodb.clone(),
        "retl-e2e-keysets",
    ));
    let runs = Arc::new(DynamoRunStore::new(c.dynamodb.clone(), "retl-e2e-runs"));
    let engine = Engine {
        objects: objects.clone(),
        keysets: keysets.clone(),
        runs: runs.clone(),
        secrets: Arc::new(SecretsManagerSecrets::new(c.secrets.clone(), "retl-e2e/")),
        notifier: Arc::new(SnsNotifier::new(c.sns.clone(), topic.topic_arn().unwrap())),
        connections: project.connections.clone(),
        root: project.root.clone(),
        owner: "aws:test-execution".into(),
        progress: Arc::new(NoProgress),
        opened: Default::default(),
        rate_share: 1,
    };

    let first = run_local(&engine, &sync, LocalRunOptions::default())
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(
        (first.counts.creates, first.counts.unchanged),
        (3, 0),
        "{first:?}"
    );
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"},{"id":3,"name":"Carol"}])
    );

    let shards = runs.sync_state("people").await.unwrap().shards;
    let shards = shards.expect("the shard count is fixed by the first run");
    let after_first = keyset::load_all(keysets.as_ref(), &keyset_id(&sync), shards).await;
    // A second apart, so a rewritten key-set item would show a new `t`.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let second = run_local(&engine, &sync, LocalRunOptions::default())
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(second.counts.changes(), 0, "{second:?}");
    assert_eq!(second.counts.unchanged, 3, "{second:?}");

    // Everything the runs left behind is in AWS.
    let listed = runs.list_runs(Some("people"), 10).await.unwrap();
    let listed: Vec<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(listed, [second.run_id.as_str(), first.run_id.as_str()]);
    assert_eq!(
        runs.lock_holder("people").await.unwrap(),
        None,
        "the lock is released"
    );
    let state = runs.sync_state("people").await.unwrap();
    assert_eq!(state.last_run_id.as_deref(), Some(second.run_id.as_str()));
    let keys = keyset::load_all(keysets.as_ref(), &keyset_id(&sync), shards).await;
    assert_eq!(
        keys, after_first,
        "a no-change run leaves the key set alone"
    );
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(keys
        .values()
        .all(|e| e.state == KeyState::Present && e.origin == KeyOrigin::Synced));
    assert_eq!(runs.versions("people").await.unwrap().len(), 1);
    assert!(
        !objects.list("").await.unwrap().is_empty(),
        "plans live in S3"
    );
}

/// A stand-in AWS JSON endpoint for the failures moto never produces (throttling, unprocessed
/// items, 5xx): call `n` of operation `op` is answered with `answer(op, n, request)`. The
/// SDK's own retries are off, so each adapter call is one request.
async fn fake_aws<F>(answer: F) -> (SdkConfig, Arc<AtomicUsize>)
where
    F: Fn(&str, usize, &Value) -> (u16, Value) + Send + Sync + 'static,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(answer);
    let counter = calls.clone();
    let app = Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let (calls, answer) = (counter.clone(), answer.clone());
        async move {
            let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
            let op = target
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or_default();
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let (status, reply) = answer(op, calls.fetch_add(1, Ordering::SeqCst), &request);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [("content-type", "application/x-amz-json-1.0")],
                reply.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = sdk_config(&endpoint)
        .await
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    (config, calls)
}

fn removals(n: usize) -> Vec<KeyChange> {
    (0..n)
        .map(|i| KeyChange::Remove {
            key: format!("k{i}"),
        })
        .collect()
}

#[tokio::test]
async fn dynamo_retries_unprocessed_items_then_gives_up() {
    // Two rounds come back unprocessed (DynamoDB throttling a batch), then all is written.
    // An apply first reads the journal's folded mark (GetItem: none here).
    let writes = Arc::new(AtomicUsize::new(0));
    let seen = writes.clone();
    let (config, _) = fake_aws(move |op, _, request| {
        if op != "BatchWriteItem" {
            return (200, json!({}));
        }
        let unprocessed = if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            request["RequestItems"].clone()
        } else {
            json!({})
        };
        (200, json!({ "UnprocessedItems": unprocessed }))
    })
    .await;
    let ks = DynamoKeySetStore::new(aws_sdk_dynamodb::Client::new(&config), "t");
    ks.apply("s", 4, &removals(10)).await.unwrap();
    assert_eq!(writes.load(Ordering::SeqCst), 3);

    // Throttled for good: a bounded number of attempts, then a retryable error.
    let writes = Arc::new(AtomicUsize::new(0));
    let seen = writes.clone();
    let (config, _) = fake_aws(move |op, _, request| {
        if op != "BatchWriteItem" {
            return (200, json!({}));
        }
        seen.fetch_add(1, Ordering::SeqCst);
        (200, json!({ "UnprocessedItems": request["RequestItems"] }))
    })
    .await;
    let ks = DynamoKeySetStore::new(aws_sdk_dynamodb::Client::new(&config), "t");
    let err = ks.apply("s", 4, &removals(10)).await;
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    assert_eq!(writes.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn sdk_failures_map_to_store_and_secret_errors() {
    let (config, _) = fake_aws(|op, _, request| {
        // Key-set reads and writes start with the journal's folded mark: none here, so that
        // the calls after it meet the failures.
        if op == "GetItem" && request["Key"]["k"]["S"] == "f" {
            return (200, json!({}));
        }
        let (status, kind) = match op {
            "Query" => (
                400,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            ),
            "GetItem" => (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
            "BatchWriteItem" => (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
            "PutItem" => (400, "com.amazon.coral.validate#ValidationException"),
            "GetSecretValue" => (500, "InternalServiceError"),
            _ => (400, "AccessDeniedException"),
        };
        (
            status,
            json!({ "__type": kind, "message": "scripted failure" }),
        )
    })
    .await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    let ks = DynamoKeySetStore::new(ddb.clone(), "t");
    let runs = DynamoRunStore::new(ddb, "t");
    let err = ks.load_shard("s", 0, 4).await;
    assert!(
        matches!(&err, Err(StoreError::Unavailable(m)) if m.contains("ProvisionedThroughputExceeded")),
        "throttled: {err:?}"
    );
    let err = ks.apply("s", 4, &removals(1)).await;
    assert!(
        matches!(&err, Err(StoreError::Unavailable(m)) if m.contains("ThrottlingException")),
        "throttled: {err:?}"
    );
    let err = runs.get_run("r").await;
    assert!(
        matches!(&err, Err(StoreError::Unavailable(m)) if m.contains("InternalServerError (HTTP 500)")),
        "5xx: {err:?}"
    );
    let err = runs.put_sync_state(&SyncState::default()).await;
    assert!(
        matches!(&err, Err(StoreError::Other(m)) if m.contains("ValidationException")),
        "invalid request: {err:?}"
    );
    let err = runs
        .lock_and_start(&RunRecord::new("r".into(), "s", "manual", 1), "o")
        .await;
    assert!(
        matches!(err, Err(StoreError::Other(_))),
        "invalid request: {err:?}"
    );
    let secrets = SecretsManagerSecrets::new(aws_sdk_secretsmanager::Client::new(&config), "retl/");
    let err = secrets.get("APP_DB").await;
    assert!(
        matches!(err, Err(SecretError::Unavailable { .. })),
        "5xx: {err:?}"
    );
    let sns = SnsNotifier::new(
        aws_sdk_sns::Client::new(&config),
        "arn:aws:sns:us-east-1:1:t",
    );
    let alert = notifier::alert();
    assert!(
        sns.notify(&alert).await.is_err(),
        "a failed publish is reported"
    );

    // Nobody listening at all: retrying later may work.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = sdk_config(&endpoint)
        .await
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    let runs = DynamoRunStore::new(aws_sdk_dynamodb::Client::new(&config), "t");
    let err = runs.lock_holder("s").await;
    assert!(
        matches!(&err, Err(StoreError::Unavailable(m)) if m.contains("Connection refused")),
        "unreachable: {err:?}"
    );
}
