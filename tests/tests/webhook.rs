//! The webhook destination against a real HTTP receiver: signed JSON batches, retries with
//! Retry-After, per-record rejections in the dead letter queue, batch splitting.

use std::time::Duration;

use retl_tests::fixtures::set_model;
use retl_tests::http::{Scripted, WebhookReceiver};
use retl_tests::Project;

fn project(url: &str, mode: &str, delivery: &str) -> Project {
    let mut p = Project::new();
    p.env("HOOK_SECRET", "s3cret");
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{url}\", secret_env: HOOK_SECRET, delivery: {{ {delivery} }} }}\n"
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

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_signed_and_a_second_run_sends_nothing() {
    let hook = WebhookReceiver::start().await;
    hook.require_secret("s3cret");
    let p = project(&hook.url, "upsert", "batch_size: 2");
    set_model(&p, &[(1, "Alice"), (2, "Bob"), (3, "Carol")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 3, "{v}");
    assert_eq!(hook.bad_signatures(), 0);
    let received = hook.received();
    assert_eq!(received.len(), 2, "3 records in batches of 2");
    assert!(received.iter().all(|r| r.idempotency_key.is_some()));
    assert_eq!(received[0].body["op"], "upsert");
    assert_eq!(received[0].body["sync"], "people");
    let mut keys: Vec<String> = hook.accepted().into_iter().map(|(_, k, _)| k).collect();
    keys.sort();
    assert_eq!(keys, vec!["1", "2", "3"]);
    let (_, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(v["unchanged"], 3, "{v}");
    assert_eq!(hook.received().len(), 2, "nothing new was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_sends_deletes_with_the_key_fields() {
    let hook = WebhookReceiver::start().await;
    let p = project(&hook.url, "mirror", "");
    set_model(&p, &[(1, "Alice"), (2, "Bob"), (3, "Carol")]);
    p.run_json(&["run", "people"]).await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 1, "{v}");
    let deletes: Vec<_> = hook
        .accepted()
        .into_iter()
        .filter(|(op, _, _)| op == "delete")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].1, "3");
    assert_eq!(deletes[0].2, serde_json::json!({"id": "3"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let hook = WebhookReceiver::start().await;
    hook.script(&[Scripted::Status(429, Some(1)), Scripted::Status(503, None)]);
    let p = project(&hook.url, "upsert", "");
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 2, "{v}");
    let received = hook.received();
    assert_eq!(
        received.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 503, 200]
    );
    let waited = received[1].at.duration_since(received[0].at);
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured, waited {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_rejected_by_the_receiver_go_to_the_dead_letter_queue_and_are_retried_next_run() {
    let hook = WebhookReceiver::start().await;
    hook.reject(&["2"]);
    let p = project(&hook.url, "upsert", "");
    set_model(&p, &[(1, "Alice"), (2, "not-an-email"), (3, "Carol")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed");
    assert_eq!(v["creates"], 2, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let out = p.run(&["errors", &run_id]).await;
    assert!(
        out.stdout
            .contains("key 2 [rejected, upsert] invalid_email: email is not valid"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#""name":"not-an-email""#),
        "{}",
        out.stdout
    );
    // Only the rejected record is sent again by the next run.
    let before = hook.received().len();
    let (_, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(v["rejected"], 1, "{v}");
    let again = &hook.received()[before..];
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body["records"].as_array().unwrap().len(), 1);
    assert_eq!(again[0].body["records"][0]["key"], "2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_refused_for_one_record_is_split_until_that_record_is_isolated() {
    let hook = WebhookReceiver::start().await;
    hook.poison(&["5"]);
    let p = project(&hook.url, "upsert", "batch_size: 8");
    let rows: Vec<(i64, String)> = (1..=8).map(|i| (i, format!("p{i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["creates"], 7, "{v}");
    assert_eq!(v["rejected"], 1, "{v}");
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors[0]["key"], "5");
    assert_eq!(errors[0]["code"], "400");
    // 8 -> 4+4 -> 2+2 -> 1+1: four refused requests, the good halves accepted.
    let refused = hook.received().iter().filter(|r| r.status == 400).count();
    assert_eq!(refused, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_signature_stops_delivery_and_fails_the_run() {
    let hook = WebhookReceiver::start().await;
    hook.require_secret("another secret");
    let p = project(&hook.url, "upsert", "batch_size: 1, concurrency: 1");
    set_model(&p, &[(1, "Alice"), (2, "Bob"), (3, "Carol")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["error"].as_str().unwrap().contains("401"), "{v}");
    assert_eq!(v["failed"], 3, "{v}");
    assert_eq!(
        hook.bad_signatures(),
        1,
        "delivery stopped after the first 401"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_re_sends_only_the_rejected_records_once_the_receiver_is_fixed() {
    let hook = WebhookReceiver::start().await;
    hook.reject(&["2", "3"]);
    let p = project(&hook.url, "upsert", "");
    set_model(&p, &[(1, "Alice"), (2, "Bob"), (3, "Carol"), (4, "Dan")]);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["rejected"], 2, "{v}");
    let failed_run = v["run_id"].as_str().unwrap().to_string();

    hook.clear_rejections();
    let before = hook.received().len();
    let (code, v) = p.run_json(&["retry", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["trigger"], "retry", "{v}");
    assert_eq!(v["creates"], 2, "{v}");
    let mut sent: Vec<String> = hook.received()[before..]
        .iter()
        .flat_map(|r| r.body["records"].as_array().cloned().unwrap_or_default())
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        vec!["2", "3"],
        "only the rejected records of {failed_run}"
    );
    let (_, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(v["unchanged"], 4, "{v}");
    let out = p.run(&["retry", "people"]).await;
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .contains("already retried the rejected records of people; nothing to retry"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_longer_than_a_run_waits_ends_the_delivery_and_the_next_run_delivers() {
    let hook = WebhookReceiver::start().await;
    // A daily quota: "come back in a day".
    hook.script(&[Scripted::Status(429, Some(86_400))]);
    let p = project(&hook.url, "upsert", "batch_size: 1, concurrency: 1");
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let started = std::time::Instant::now();
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run did not wait a day"
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["failed"], 2, "{v}");
    assert!(v["error"].as_str().unwrap().contains("86400s"), "{v}");
    assert_eq!(
        hook.received().len(),
        1,
        "nothing more was sent after the answer"
    );
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 2, "{v}");
}
