//! The webhook receiver contract under hostile receivers: a receiver that de-duplicates by
//! `Idempotency-Key`, results bodies slightly off (unknown status words, numeric keys,
//! missing results), and a run killed while the model changes. Nothing may count as delivered
//! that the receiver did not store, and the same change always carries the same event id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use retl_tests::fixtures::set_model;
use retl_tests::http::WebhookReceiver;
use retl_tests::Project;
use serde_json::{json, Value};

fn project(hook: &WebhookReceiver, mode: &str, delivery: &str) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{}\", delivery: {{ {delivery} }} }}\n",
            hook.url
        ),
    );
    p.write(
        "syncs/people.yaml",
        &format!(
            "name: people\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: hook, object: people }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n"
        ),
    );
    p
}

fn rows(n: i64) -> Vec<(i64, String)> {
    (1..=n).map(|i| (i, format!("person {i}"))).collect()
}

fn model(p: &Project, rows: &[(i64, String)]) {
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(p, &refs);
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// The first answer fails every record; later ones store them.
fn first_batch_fails(records: &[Value]) -> Value {
    let status = if CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        "failed"
    } else {
        "ok"
    };
    let results: Vec<Value> = records
        .iter()
        .map(|r| json!({"key": r["key"], "status": status}))
        .collect();
    json!({ "results": results })
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_records_are_a_new_request_to_a_deduplicating_receiver() {
    let hook = WebhookReceiver::start().await;
    hook.dedupe_by_idempotency_key();
    hook.respond_with(first_batch_fails);
    let p = project(&hook, "append", "batch_size: 500");
    model(&p, &rows(50));
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!((code, v["status"].as_str()), (0, Some("succeeded")), "{v}");
    assert_eq!(v["creates"], 50, "{v}");
    assert_eq!(
        hook.accepted().len(),
        50,
        "the receiver stores every record once"
    );
    let keys: Vec<String> = hook
        .received()
        .iter()
        .filter_map(|r| r.idempotency_key.clone())
        .collect();
    assert_eq!(keys.len(), 2, "one failed request, one new request");
    assert_ne!(
        keys[0], keys[1],
        "the re-send is a new request, with a new key"
    );
}

fn unknown_status(records: &[Value]) -> Value {
    json!({"results": records.iter().map(|r| json!({"key": r["key"], "status": "error"})).collect::<Vec<_>>()})
}

fn numeric_keys(records: &[Value]) -> Value {
    let results: Vec<Value> = records
        .iter()
        .map(|r| {
            let key: i64 = r["key"].as_str().unwrap().parse().unwrap();
            json!({"key": key, "status": "ok"})
        })
        .collect();
    json!({ "results": results })
}

fn half_the_results(records: &[Value]) -> Value {
    let results: Vec<Value> = records
        .iter()
        .step_by(2)
        .map(|r| json!({"key": r["key"], "status": "ok"}))
        .collect();
    json!({ "results": results })
}

#[tokio::test(flavor = "multi_thread")]
async fn results_retl_cannot_read_never_count_as_delivered() {
    for respond in [unknown_status as fn(&[Value]) -> Value, half_the_results] {
        let hook = WebhookReceiver::start().await;
        hook.respond_with(respond);
        let p = project(&hook, "upsert", "batch_size: 500, max_attempts: 2");
        model(&p, &rows(20));
        let (code, v) = p.run_json(&["run", "people"]).await;
        assert_eq!(code, 1, "{v}");
        let failed = v["failed"].as_u64().unwrap();
        let created = v["creates"].as_u64().unwrap();
        assert_eq!(
            created as usize,
            hook.accepted().len(),
            "delivered = stored: {v}"
        );
        assert!(failed > 0, "{v}");
        assert_eq!(
            created + failed,
            20,
            "every record is delivered or failed: {v}"
        );
        // The failed ones carry their error in the record log, and are planned again.
        let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
        assert_eq!(
            errors["errors"].as_array().unwrap().len() as u64,
            failed,
            "{errors}"
        );
        let (_, again) = p.run_json(&["plan", "people"]).await;
        assert_eq!(again["creates"].as_u64(), Some(failed), "{again}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn numeric_keys_in_results_match_their_text_form() {
    let hook = WebhookReceiver::start().await;
    hook.respond_with(numeric_keys);
    let p = project(&hook, "upsert", "batch_size: 500");
    model(&p, &rows(20));
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(20)), "{v}");
}

/// Kills a run while the receiver is slow, adds a row to the model, runs again: every key's
/// creates carry one event id, so a receiver de-duplicating by event id stores each once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_re_sends_the_same_changes_with_the_same_event_ids() {
    let hook = WebhookReceiver::start().await;
    hook.delay(Duration::from_millis(40));
    let p = project(&hook, "append", "batch_size: 25, concurrency: 2");
    let mut model_rows = rows(600);
    model(&p, &model_rows);
    let mut child = p.command(&["run", "people"]).spawn().expect("retl starts");
    let start = Instant::now();
    while hook.accepted().len() < 100 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "delivery never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too soon"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    // One row joins the model: batches are composed differently on the rerun.
    model_rows.insert(0, (0, "person 0".to_string()));
    model(&p, &model_rows);
    hook.delay(Duration::ZERO);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((_, key, _), event) in hook.accepted().into_iter().zip(hook.accepted_events()) {
        assert_eq!(event.len(), 32, "every record carries its event id");
        by_key.entry(key).or_default().insert(event);
    }
    assert_eq!(by_key.len(), 601, "every key reached the receiver");
    let split: Vec<_> = by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        split.is_empty(),
        "a change sent twice under two event ids: {split:?}"
    );
}
