//! The AWS adapters of the ports against a local moto server (one per test): every method of
//! every adapter, then whole sync runs through the engine on S3, DynamoDB, Secrets Manager
//! and SNS, proving the engine does not care which host it runs on.
// Scenario tests read top to bottom; the 80-line bound is for the code they test.
#![allow(clippy::too_many_lines)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use retl_shared::adapters::aws::{
    AwsClients, DynamoKeySetStore, DynamoRunStore, S3ObjectStore, SecretsManagerSecrets,
    SnsNotifier,
};
use retl_shared::config::{load_project, SyncDef};
use retl_shared::engine::{keyset_id, run_local, Engine, LocalRunOptions, NoProgress};
use retl_shared::ports::{
    Counts, KeyChange, KeyEntry, KeyOrigin, KeySetStore, KeyState, LockOutcome, Notification,
    Notifier, ObjectStore, RunRecord, RunStatus, RunStore, SecretError, Secrets, StoreError,
    SyncState,
};
use retl_shared::record::shard_of;
use retl_tests::fixtures::{people, people_sync, set_model};
use retl_tests::moto::{create_bucket, create_keyset_table, create_runs_table, sdk_config, Moto};
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

#[tokio::test]
async fn s3_puts_gets_ranges_lists_and_deletes() {
    let moto = Moto::start();
    let (c, s) = object_store(&moto, "objects-basic").await;
    s.put("runs/r1/a.bin", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    s.put("runs/r1/b.bin", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put("runs/r2/c.bin", Bytes::from_static(b"y"))
        .await
        .unwrap();

    assert_eq!(
        s.get("runs/r1/a.bin").await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        s.get_range("runs/r1/a.bin", 6, 5).await.unwrap(),
        Bytes::from_static(b"world")
    );
    assert_eq!(
        s.get_range("runs/r1/a.bin", 0, 0).await.unwrap(),
        Bytes::new()
    );
    let past_end = s.get_range("runs/r1/a.bin", 6, 10).await;
    assert!(
        matches!(past_end, Err(StoreError::Other(_))),
        "{past_end:?}"
    );
    let missing = s.get("runs/r1/nope").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let missing = s.get_range("runs/r1/nope", 0, 1).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    s.put("runs/r1/b.bin", Bytes::from_static(b"replaced"))
        .await
        .unwrap();
    assert_eq!(
        s.get("runs/r1/b.bin").await.unwrap(),
        Bytes::from_static(b"replaced")
    );
    assert_eq!(
        s.list("runs/r1/").await.unwrap(),
        ["runs/r1/a.bin", "runs/r1/b.bin"]
    );
    assert_eq!(s.list("runs/").await.unwrap().len(), 3);
    assert_eq!(
        s.location("runs/r1/a.bin"),
        "s3://objects-basic/retl/runs/r1/a.bin"
    );

    // The key prefix is where the objects really are in the bucket.
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

    s.delete_prefix("runs/r1/").await.unwrap();
    assert!(s.list("runs/r1/").await.unwrap().is_empty());
    assert_eq!(s.list("runs/").await.unwrap(), ["runs/r2/c.bin"]);
    assert!(matches!(
        s.get("runs/r1/a.bin").await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_prefix("runs/r1/").await.unwrap();

    // A bucket that does not exist is a configuration problem, not a missing object.
    let lost = S3ObjectStore::new(c.s3.clone(), "no-such-bucket", "");
    let err = lost.get("x").await;
    assert!(matches!(err, Err(StoreError::Other(_))), "{err:?}");
}

#[tokio::test]
async fn s3_lists_and_deletes_more_than_one_page() {
    let moto = Moto::start();
    let (_c, s) = object_store(&moto, "objects-many").await;
    let keys: Vec<String> = (0..1205).map(|i| format!("many/{i:05}.txt")).collect();
    futures::stream::iter(keys.iter())
        .map(|k| s.put(k, Bytes::from(k.clone())))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    s.put("other/keep.txt", Bytes::from_static(b"k"))
        .await
        .unwrap();

    assert_eq!(
        s.list("many/").await.unwrap(),
        keys,
        "every key, sorted, across pages"
    );
    s.delete_prefix("many/").await.unwrap();
    assert!(s.list("many/").await.unwrap().is_empty());
    assert_eq!(s.list("").await.unwrap(), ["other/keep.txt"]);
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

    assert!(
        s.get("big/blob").await.unwrap() == body,
        "the body comes back whole"
    );
    let across = s
        .get_range("big/blob", (8 * mib - 5) as u64, 10)
        .await
        .unwrap();
    assert_eq!(
        across,
        Bytes::copy_from_slice(&body[8 * mib - 5..8 * mib + 5])
    );
}

fn entry(hash: u128, state: KeyState, origin: KeyOrigin, updated_at: i64) -> KeyEntry {
    KeyEntry {
        hash,
        state,
        origin,
        updated_at,
    }
}

async fn load_all(ks: &DynamoKeySetStore, keyset: &str, shards: u32) -> BTreeMap<String, KeyEntry> {
    let mut all = BTreeMap::new();
    for shard in 0..shards {
        for (key, e) in ks.load_shard(keyset, shard, shards).await.unwrap() {
            assert_eq!(
                shard_of(&key, shards),
                shard,
                "{key} loaded from the wrong shard"
            );
            assert!(all.insert(key, e).is_none(), "a key in two shards");
        }
    }
    all
}

#[tokio::test]
async fn dynamo_key_set_applies_loads_and_clears() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_keyset_table(&c, "keysets-apply").await;
    let ks = DynamoKeySetStore::new(c.dynamodb.clone(), "keysets-apply");
    let (set, shards) = ("people@abc", 4);
    assert!(load_all(&ks, set, shards).await.is_empty());
    ks.apply(set, shards, &[]).await.unwrap();

    let mut expected = BTreeMap::new();
    let mut changes = Vec::new();
    for i in 0..60u32 {
        let e = entry(
            u128::from(i) * 0x0123_4567_89ab_cdef_0fed_cba9_8765_4321,
            KeyState::Present,
            KeyOrigin::Synced,
            1_700_000_000 + i64::from(i),
        );
        expected.insert(format!("k{i}"), e);
        changes.push(KeyChange::Put {
            key: format!("k{i}"),
            entry: e,
        });
    }
    ks.apply(set, shards, &changes).await.unwrap();
    let loaded = load_all(&ks, set, shards).await;
    assert_eq!(loaded, expected);
    for shard in 0..shards {
        assert!(
            !ks.load_shard(set, shard, shards).await.unwrap().is_empty(),
            "shard {shard} empty"
        );
    }

    // The item layout: one item per key, partition `{keyset}#{shard:04}`.
    let shard = shard_of("k1", shards);
    let item = c
        .dynamodb
        .get_item()
        .table_name("keysets-apply")
        .key(
            "ks",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{set}#{shard:04}")),
        )
        .key("k", aws_sdk_dynamodb::types::AttributeValue::S("k1".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the item of k1");
    let hash = item["h"].as_b().unwrap().as_ref().to_vec();
    assert_eq!(hash, expected["k1"].hash.to_be_bytes());
    assert_eq!(item["st"].as_n().unwrap(), "0");
    assert_eq!(item["o"].as_n().unwrap(), "1");
    assert_eq!(item["t"].as_n().unwrap(), "1700000001");

    // Overwrite, remove, and change a key twice in one apply (the last change wins).
    let mut changes = Vec::new();
    for i in 0..10 {
        let e = entry(u128::MAX, KeyState::Deleted, KeyOrigin::Baseline, 42);
        expected.insert(format!("k{i}"), e);
        changes.push(KeyChange::Put {
            key: format!("k{i}"),
            entry: e,
        });
    }
    for i in 10..20 {
        expected.remove(&format!("k{i}"));
        changes.push(KeyChange::Remove {
            key: format!("k{i}"),
        });
    }
    let zero = entry(0, KeyState::Present, KeyOrigin::Baseline, 7);
    changes.push(KeyChange::Put {
        key: "k20".into(),
        entry: zero,
    });
    changes.push(KeyChange::Remove { key: "k20".into() });
    expected.remove("k20");
    changes.push(KeyChange::Remove { key: "k21".into() });
    changes.push(KeyChange::Put {
        key: "k21".into(),
        entry: zero,
    });
    expected.insert("k21".into(), zero);
    changes.push(KeyChange::Remove {
        key: "never-there".into(),
    });
    ks.apply(set, shards, &changes).await.unwrap();
    assert_eq!(load_all(&ks, set, shards).await, expected);

    // A key DynamoDB cannot hold is refused plainly.
    let empty = ks
        .apply(set, shards, &[KeyChange::Remove { key: String::new() }])
        .await;
    assert!(matches!(empty, Err(StoreError::Other(_))), "{empty:?}");

    // Clearing one key set leaves the others alone.
    let other = [KeyChange::Put {
        key: "k1".into(),
        entry: zero,
    }];
    ks.apply("other@def", shards, &other).await.unwrap();
    ks.clear(set, shards).await.unwrap();
    assert!(load_all(&ks, set, shards).await.is_empty());
    assert_eq!(load_all(&ks, "other@def", shards).await.len(), 1);
}

#[tokio::test]
async fn dynamo_run_store_locks() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-locks").await;
    let r = DynamoRunStore::new(c.dynamodb.clone(), "runs-locks");

    assert_eq!(r.lock_holder("s").await.unwrap(), None);
    assert_eq!(
        r.try_lock("s", "run1", "host:1").await.unwrap(),
        LockOutcome::Acquired
    );
    assert_eq!(
        r.try_lock("s", "run1", "host:1").await.unwrap(),
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
    match r.try_lock("s", "run2", "host:2").await.unwrap() {
        LockOutcome::Held(info) => assert_eq!(info, held),
        other => panic!("run2 took a held lock: {other:?}"),
    }
    assert_eq!(
        r.try_lock("t", "run2", "host:2").await.unwrap(),
        LockOutcome::Acquired,
        "per sync"
    );

    tokio::time::sleep(Duration::from_millis(5)).await;
    r.heartbeat("s", "run1").await.unwrap();
    let beat = r.lock_holder("s").await.unwrap().unwrap();
    assert!(beat.heartbeat_at > held.heartbeat_at);
    assert_eq!(beat.acquired_at, held.acquired_at);
    r.heartbeat("s", "run2").await.unwrap();
    assert_eq!(
        r.lock_holder("s").await.unwrap().unwrap(),
        beat,
        "only the holder beats"
    );
    r.heartbeat("nobody-locked", "run2").await.unwrap();

    assert!(
        !r.take_over_lock("s", "run9", "run3", "host:3")
            .await
            .unwrap(),
        "not the holder"
    );
    assert_eq!(r.lock_holder("s").await.unwrap().unwrap().run_id, "run1");
    assert!(r
        .take_over_lock("s", "run1", "run2", "host:2")
        .await
        .unwrap());
    let taken = r.lock_holder("s").await.unwrap().unwrap();
    assert_eq!(
        (taken.run_id.as_str(), taken.owner.as_str()),
        ("run2", "host:2")
    );
    assert!(
        !r.take_over_lock("s", "run1", "run3", "host:3")
            .await
            .unwrap(),
        "already taken"
    );
    assert!(
        !r.take_over_lock("free", "run1", "run3", "host:3")
            .await
            .unwrap(),
        "no lock"
    );

    r.unlock("s", "run1").await.unwrap();
    assert_eq!(
        r.lock_holder("s").await.unwrap().unwrap().run_id,
        "run2",
        "only the holder unlocks"
    );
    r.unlock("s", "run2").await.unwrap();
    assert_eq!(r.lock_holder("s").await.unwrap(), None);
    r.unlock("s", "run2").await.unwrap();
    assert_eq!(
        r.try_lock("s", "run3", "host:3").await.unwrap(),
        LockOutcome::Acquired
    );

    // Many runs racing for one lock: exactly one gets it, the others see it.
    let outcomes = futures::future::join_all((0..8).map(|i| {
        let r = r.clone();
        async move { r.try_lock("race", &format!("r{i}"), "host").await.unwrap() }
    }))
    .await;
    let winner = r.lock_holder("race").await.unwrap().unwrap();
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
}

fn ids(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

#[tokio::test]
async fn dynamo_run_store_keeps_and_lists_runs() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-list").await;
    let r = DynamoRunStore::new(c.dynamodb.clone(), "runs-list");
    for i in 1..=9 {
        let sync = if i % 2 == 1 { "alpha" } else { "beta" };
        r.put_run(&RunRecord::new(format!("run-{i:03}"), sync, "manual", 1))
            .await
            .unwrap();
    }
    // Items of the same sync that are not runs stay out of its listing.
    r.try_lock("alpha", "run-009", "host").await.unwrap();
    r.put_sync_state(&SyncState {
        sync: "alpha".into(),
        ..SyncState::default()
    })
    .await
    .unwrap();
    r.record_version(&sync_def("alpha", "select 1 as id, 'a' as name"), None)
        .await
        .unwrap();

    let mut run = r.get_run("run-003").await.unwrap();
    assert_eq!(
        (run.sync.as_str(), run.status),
        ("alpha", RunStatus::Running)
    );
    let missing = r.get_run("run-404").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let alpha = r.list_runs(Some("alpha"), 10).await.unwrap();
    assert_eq!(
        ids(&alpha),
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
    let expected: Vec<String> = (1..=9).rev().map(|i| format!("run-{i:03}")).collect();
    assert_eq!(ids(&all), expected);
    assert_eq!(
        ids(&r.list_runs(None, 3).await.unwrap()),
        ["run-009", "run-008", "run-007"]
    );
    assert!(r.list_runs(Some("gamma"), 5).await.unwrap().is_empty());
    assert!(r.list_runs(None, 0).await.unwrap().is_empty());

    // Replacing a run updates every copy.
    run.counts = Counts {
        rows: 3,
        creates: 3,
        ..Counts::default()
    };
    run.finish(RunStatus::Succeeded);
    r.put_run(&run).await.unwrap();
    assert_eq!(r.get_run("run-003").await.unwrap(), run);
    let listed = r.list_runs(Some("alpha"), 10).await.unwrap();
    assert_eq!(listed[3], run);
    let listed = r.list_runs(None, 10).await.unwrap();
    assert_eq!(listed[6], run);
}

/// A validated `people` sync named `name` with model SQL `sql`.
fn sync_def(name: &str, sql: &str) -> SyncDef {
    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  \
         app_db: { type: postgres, url: \"postgres://postgres@127.0.0.1:5432/test\" }\n",
    );
    p.write(
        &format!("syncs/{name}.yaml"),
        &format!(
            "name: {name}\nsource: {{ connection: warehouse, sql: \"{sql}\" }}\nprimary_key: id\n\
             destination: {{ connection: app_db, object: people }}\n\
             mapping: {{ id: id, name: name }}\nmode: upsert\n"
        ),
    );
    let project = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    project.sync(name).unwrap().clone()
}

#[tokio::test]
async fn dynamo_run_store_keeps_state_and_versions() {
    let moto = Moto::start();
    let c = moto.clients().await;
    create_runs_table(&c, "runs-state").await;
    let r = DynamoRunStore::new(c.dynamodb.clone(), "runs-state");

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
    };
    r.put_sync_state(&state).await.unwrap();
    assert_eq!(r.sync_state("people").await.unwrap(), state);
    assert_eq!(r.sync_state("other").await.unwrap().generation, 0);

    assert!(r.versions("people").await.unwrap().is_empty());
    let a = sync_def("people", "select 1 as id, 'a' as name");
    let b = sync_def("people", "select 2 as id, 'b' as name");
    let v1 = r.record_version(&a, None).await.unwrap();
    assert_eq!((v1.version, v1.note.as_deref()), (1, None));
    assert_eq!(
        r.record_version(&a, None).await.unwrap(),
        v1,
        "same definition, same version"
    );
    let noted = r.record_version(&a, Some("first")).await.unwrap();
    assert_eq!((noted.version, noted.note.as_deref()), (1, Some("first")));
    assert_eq!(noted.created_at, v1.created_at);
    assert_eq!(r.record_version(&b, None).await.unwrap().version, 2);
    assert_eq!(r.record_version(&b, None).await.unwrap().version, 2);
    let back = r.record_version(&a, Some("back to a")).await.unwrap();
    assert_eq!(back.version, 3, "a change back is a new version");

    let all = r.versions("people").await.unwrap();
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

    // Concurrent callers: the same definition gets one version, different ones get two.
    let c1 = sync_def("people", "select 3 as id, 'c' as name");
    let (x, y) = tokio::join!(r.record_version(&c1, None), r.record_version(&c1, None));
    assert_eq!((x.unwrap().version, y.unwrap().version), (4, 4));
    let d = sync_def("people", "select 4 as id, 'd' as name");
    let e = sync_def("people", "select 5 as id, 'e' as name");
    let (x, y) = tokio::join!(r.record_version(&d, None), r.record_version(&e, None));
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
async fn secrets_manager_reads_unwraps_caches_and_reports_missing() {
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

    match secrets.get("NOPE").await {
        Err(SecretError::Missing { name, hint }) => {
            assert_eq!(name, "NOPE");
            assert!(hint.contains("retl/NOPE"), "{hint}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    // A secret created after a miss is found: misses are not cached.
    create_secret(&c, "retl/NOPE", "late").await;
    assert_eq!(secrets.get("NOPE").await.unwrap(), "late");
    assert!(
        !format!("{secrets:?}").contains("postgres"),
        "Debug shows no value"
    );
}

#[tokio::test]
async fn sns_publishes_notifications_with_subject_and_kind() {
    let moto = Moto::start();
    let c = moto.clients().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let topic = c
        .sns
        .create_topic()
        .name("retl-alerts")
        .send()
        .await
        .unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let queue = sqs
        .create_queue()
        .queue_name("alerts")
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    c.sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let notifier = SnsNotifier::new(c.sns.clone(), &topic);
    let problem = Notification::RunProblem {
        run_id: "run-1".into(),
        sync: "people".into(),
        status: "failed".into(),
        error: Some("boom".into()),
        counts: Counts::default(),
    };
    let approval = Notification::ApprovalNeeded {
        run_id: "run-2".into(),
        sync: "people".into(),
        counts: Counts {
            deletes: 9,
            ..Counts::default()
        },
        reason: "9 deletes".into(),
        sample: vec!["7".into()],
        preview: "s3://b/runs/run-2/preview.json".into(),
    };
    notifier.notify(&problem).await.unwrap();
    notifier.notify(&approval).await.unwrap();

    let mut envelopes: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while envelopes.len() < 2 && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            envelopes.push(serde_json::from_str(m.body().unwrap()).unwrap());
        }
    }
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
                json!("retl: approval needed for sync people (run run-2)"),
                json!("approval_needed"),
                serde_json::to_value(&approval).unwrap(),
            ),
            (
                json!("retl: run run-1 of sync people ended failed"),
                json!("run_problem"),
                serde_json::to_value(&problem).unwrap(),
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
    let after_first = load_all(&keysets, &keyset_id(&sync), shards).await;
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
    assert_eq!(
        ids(&listed),
        [second.run_id.as_str(), first.run_id.as_str()]
    );
    assert_eq!(
        runs.lock_holder("people").await.unwrap(),
        None,
        "the lock is released"
    );
    let state = runs.sync_state("people").await.unwrap();
    assert_eq!(state.last_run_id.as_deref(), Some(second.run_id.as_str()));
    let keys = load_all(&keysets, &keyset_id(&sync), shards).await;
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
    let (config, calls) = fake_aws(|_, n, request| {
        let unprocessed = if n < 2 {
            request["RequestItems"].clone()
        } else {
            json!({})
        };
        (200, json!({ "UnprocessedItems": unprocessed }))
    })
    .await;
    let ks = DynamoKeySetStore::new(aws_sdk_dynamodb::Client::new(&config), "t");
    ks.apply("s", 4, &removals(10)).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Throttled for good: a bounded number of attempts, then a retryable error.
    let (config, calls) =
        fake_aws(|_, _, request| (200, json!({ "UnprocessedItems": request["RequestItems"] })))
            .await;
    let ks = DynamoKeySetStore::new(aws_sdk_dynamodb::Client::new(&config), "t");
    let err = ks.apply("s", 4, &removals(10)).await;
    assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn sdk_failures_map_to_store_and_secret_errors() {
    let (config, _) = fake_aws(|op, _, _| {
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
    let err = runs.try_lock("s", "r", "o").await;
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
    let problem = Notification::RunProblem {
        run_id: "r".into(),
        sync: "s".into(),
        status: "failed".into(),
        error: None,
        counts: Counts::default(),
    };
    assert!(
        sns.notify(&problem).await.is_err(),
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
