//! The Braze destination against the Braze protocol fake: every supported mode end to end,
//! Braze's batch limits (75 attributes per `/users/track`, 50 ids per `/users/delete`),
//! throttling (429 with `Retry-After`, or only `X-RateLimit-Reset`), server errors, timeouts,
//! slow answers, and per-object errors rejected into the record log and re-sent until fixed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use retl_fakes::{BrazeConfig, BrazeFake, FaultPlan, RateLimit, Rule};
use retl_tests::Project;
use serde_json::{json, Value};

const API_KEY: &str = "braze-test-rest-key";

async fn fake() -> BrazeFake {
    BrazeFake::start(BrazeConfig {
        api_key: API_KEY.into(),
        ..BrazeConfig::default()
    })
    .await
    .expect("the Braze fake starts")
}

/// A project syncing `model` (id, email, first_name) into Braze users.
fn project(fake: &BrazeFake, mode: &str, delivery: &str) -> Project {
    project_with(fake, mode, delivery, "external_id", "")
}

fn project_with(
    fake: &BrazeFake,
    mode: &str,
    delivery: &str,
    key_field: &str,
    extra: &str,
) -> Project {
    let mut p = Project::new();
    p.env("BRAZE_API_KEY", API_KEY);
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             braze: {{ type: braze, rest_endpoint: \"{}\", api_key_env: BRAZE_API_KEY, \
             delivery: {{ {delivery} }} }}\n",
            fake.base_url()
        ),
    );
    write_sync(&p, mode, key_field, extra);
    p
}

fn write_sync(p: &Project, mode: &str, key_field: &str, extra: &str) {
    p.write(
        "syncs/users.yaml",
        &format!(
            "name: users\nsource: {{ connection: warehouse, sql: \"select id, email, first_name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: braze, object: users }}\n\
             mapping: {{ {key_field}: id, email: email, first_name: first_name }}\nmode: {mode}\n{extra}"
        ),
    );
}

/// Replaces the model's rows (id, email, first name).
fn set_model(p: &Project, rows: &[(i64, String, String)]) {
    let mut sql = String::from(
        "DROP TABLE IF EXISTS model; CREATE TABLE model (id INTEGER, email TEXT, first_name TEXT);",
    );
    for (id, email, name) in rows {
        sql.push_str(&format!(
            "INSERT INTO model VALUES ({id}, '{}', '{}');",
            email.replace('\'', "''"),
            name.replace('\'', "''")
        ));
    }
    p.warehouse(&sql);
}

fn rows(ids: impl IntoIterator<Item = i64>) -> Vec<(i64, String, String)> {
    ids.into_iter()
        .map(|i| (i, format!("user{i}@example.com"), format!("Name{i}")))
        .collect()
}

/// The profiles the model should have produced: external id -> attributes.
fn expected(rows: &[(i64, String, String)]) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|(id, email, name)| (id.to_string(), json!({"email": email, "first_name": name})))
        .collect()
}

/// Requests to `path` answered with `status`, and the records each carried.
fn batches(fake: &BrazeFake, path: &str, status: u16) -> Vec<usize> {
    fake.requests()
        .iter()
        .filter(|r| r.path == path && r.status == status)
        .map(|r| r.records_in_batch.unwrap_or(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_creates_then_updates_and_a_second_run_sends_nothing() {
    let fake = fake().await;
    let p = project(&fake, "upsert", "");
    let mut model = rows(1..=3);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 3, "{v}");
    assert_eq!(fake.users(), expected(&model));

    model[1].2 = "Renamed".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["updates"].as_u64(), v["unchanged"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(fake.users(), expected(&model));
    assert_eq!(batches(&fake, "/users/track", 201), vec![3, 1]);

    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["unchanged"], 3, "{v}");
    assert_eq!(fake.requests().len(), 2, "the third run sent nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_field_with_another_name_is_sent_as_external_id() {
    let fake = fake().await;
    let p = project_with(&fake, "upsert", "", "user_id", "");
    let model = rows([10, 11]);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        fake.users(),
        expected(&model),
        "users are keyed by external_id and no `user_id` attribute is written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_deletes_users_that_left_the_model() {
    let fake = fake().await;
    let p = project(&fake, "mirror", "");
    set_model(&p, &rows(1..=3));
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(3)), "{v}");

    let mut model = rows([1, 3, 4]);
    model[0].1 = "new1@example.com".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["creates"].as_u64(),
            v["updates"].as_u64(),
            v["deletes"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(
        fake.users(),
        expected(&model),
        "Braze holds exactly the model"
    );
    assert_eq!(fake.deleted(), vec!["2".to_string()]);
    assert_eq!(batches(&fake, "/users/delete", 201), vec![1]);

    let before = fake.requests().len();
    let (_, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(v["unchanged"], 3, "{v}");
    assert_eq!(fake.requests().len(), before, "nothing more was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_creates_new_users_and_never_updates_them() {
    let fake = fake().await;
    let p = project(&fake, "append", "");
    let first = rows([1, 2]);
    set_model(&p, &first);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(2)), "{v}");

    let mut model = rows([1, 2, 3]);
    model[0].2 = "Changed".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["creates"].as_u64(),
            v["skipped"].as_u64(),
            v["updates"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(
        fake.user("1").unwrap()["first_name"],
        "Name1",
        "never updated"
    );
    assert_eq!(fake.users().len(), 3);
    assert_eq!(batches(&fake, "/users/track", 201), vec![2, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_only_removes_users_that_left_the_model_and_nothing_else() {
    let fake = fake().await;
    let p = project(&fake, "upsert", "");
    set_model(&p, &rows(1..=4));
    let (code, _) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0);

    write_sync(&p, "delete_only", "external_id", "");
    let mut model = rows([1, 2, 4]);
    model[0].2 = "Changed".into();
    model.push((5, "user5@example.com".into(), "Name5".into()));
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            v["deletes"].as_u64(),
            v["creates"].as_u64(),
            v["updates"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(fake.deleted(), vec!["3".to_string()]);
    assert_eq!(
        fake.users(),
        expected(&rows([1, 2, 4])),
        "no user was created or updated"
    );
    assert_eq!(batches(&fake, "/users/track", 201), vec![4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_mode_erases_the_users_the_model_returns() {
    let fake = fake().await;
    for id in ["7", "8", "9"] {
        fake.insert_user(id, json!({"email": format!("u{id}@example.com")}));
    }
    let p = project(&fake, "delete", "");
    // Erasure requests: 7 and 8 exist, 404 never did (Braze cannot say which were found).
    set_model(
        &p,
        &[
            (7, "u7@example.com".into(), "".into()),
            (8, "u8@example.com".into(), "".into()),
            (404, "ghost@example.com".into(), "".into()),
        ],
    );
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 3, "{v}");
    assert_eq!(fake.users().keys().collect::<Vec<_>>(), vec!["9"]);
    assert_eq!(batches(&fake, "/users/delete", 201), vec![3]);
    assert!(batches(&fake, "/users/track", 201).is_empty());

    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["unchanged"], 3, "erased users are not erased again: {v}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_respect_the_track_and_delete_limits() {
    let fake = fake().await;
    let p = project_with(
        &fake,
        "mirror",
        "",
        "external_id",
        "safety: { delete_threshold_pct: 100 }\n",
    );
    set_model(&p, &rows(1..=200));
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(200)), "{v}");
    let mut track = batches(&fake, "/users/track", 201);
    track.sort_unstable();
    assert_eq!(track, vec![50, 75, 75], "75 attributes per request");

    set_model(&p, &rows(1..=80));
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!((code, v["deletes"].as_u64()), (0, Some(120)), "{v}");
    let mut delete = batches(&fake, "/users/delete", 201);
    delete.sort_unstable();
    assert_eq!(delete, vec![20, 50, 50], "50 external ids per request");
    assert_eq!(fake.users(), expected(&rows(1..=80)));
    assert!(fake.requests().iter().all(|r| r.status == 201));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_429s_is_retried_honouring_retry_after() {
    let fake = fake().await;
    fake.faults().burst_429(2);
    let p = project(&fake, "upsert", "");
    let model = rows(1..=5);
    set_model(&p, &model);
    let t = Instant::now();
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 5, "{v}");
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 201]);
    // Each 429 carried `Retry-After` of at least one second.
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(fake.users(), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_is_waited_out_from_x_ratelimit_reset_alone() {
    let fake = fake().await;
    fake.faults().set_send_retry_after(false);
    fake.faults().set_bucket_rate_limit(
        "users/track",
        Some(RateLimit::fixed(2, Duration::from_secs(2))),
    );
    // Two attempts only: retrying before the window resets would fail the records.
    let p = project(
        &fake,
        "upsert",
        "batch_size: 10, concurrency: 1, max_attempts: 2",
    );
    let model = rows(1..=50);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["failed"].as_u64()),
        (Some(50), Some(0)),
        "{v}"
    );
    assert!(fake.faults().stats().rate_limited >= 1);
    assert_eq!(batches(&fake, "/users/track", 201).len(), 5);
    assert_eq!(fake.users(), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_server_errors_are_retried_until_everything_is_delivered() {
    let fake = fake().await;
    fake.faults().set_plan(FaultPlan {
        error_ratio: 0.3,
        error_seed: 42,
        ..FaultPlan::default()
    });
    let p = project(&fake, "upsert", "");
    let model = rows(1..=600);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["failed"].as_u64()),
        (Some(600), Some(0)),
        "{v}"
    );
    assert!(fake.faults().stats().server_errors > 0);
    assert_eq!(
        batches(&fake, "/users/track", 201).iter().sum::<usize>(),
        600
    );
    assert_eq!(fake.users(), expected(&model), "nothing lost or duplicated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_hangs_times_out_and_is_sent_again() {
    let fake = fake().await;
    fake.faults().timeout_next(1);
    let p = project(&fake, "upsert", "timeout_seconds: 1");
    let model = rows(1..=3);
    set_model(&p, &model);
    let t = Instant::now();
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 3, "{v}");
    assert_eq!(fake.faults().stats().timeouts, 1);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "the hang was cut at 1 s"
    );
    assert_eq!(fake.users(), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_are_waited_for() {
    let fake = fake().await;
    fake.faults().set_slow(Duration::from_millis(700));
    let p = project(&fake, "upsert", "");
    let model = rows(1..=150);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["failed"].as_u64()),
        (Some(150), Some(0)),
        "{v}"
    );
    assert_eq!(fake.users(), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_user_is_rejected_with_brazes_message_and_sent_again_until_fixed() {
    let fake = fake().await;
    fake.add_rule(
        Rule::contains("email", "@").with_message("'email' is not a valid email address"),
    );
    let p = project(&fake, "upsert", "");
    let mut model = rows(1..=3);
    model[1].1 = "not-an-email".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed");
    assert_eq!(
        (v["creates"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(
        batches(&fake, "/users/track", 201),
        vec![3],
        "one request for all three"
    );
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let (_, errors) = p.run_json(&["errors", &run_id]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(errors[0]["key"], "2");
    assert_eq!(errors[0]["stage"], "upsert");
    assert_eq!(errors[0]["code"], "invalid_attributes");
    assert_eq!(errors[0]["message"], "'email' is not a valid email address");
    assert_eq!(errors[0]["values"]["email"], "not-an-email");
    assert!(fake.user("2").is_none());

    // Only the rejected user is sent again, and rejected again while the model is wrong.
    fake.clear_requests();
    let (_, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(
        (v["rejected"].as_u64(), v["unchanged"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(batches(&fake, "/users/track", 201), vec![1]);

    model[1].1 = "user2@example.com".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 1, "{v}");
    assert_eq!(fake.users(), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_api_key_stops_the_delivery_and_fails_the_run() {
    let fake = fake().await;
    let mut p = project(&fake, "upsert", "batch_size: 1, concurrency: 1");
    p.env("BRAZE_API_KEY", "not-the-key");
    set_model(&p, &rows(1..=3));
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("401") && error.contains("Invalid API Key"),
        "{v}"
    );
    assert!(
        !error.contains("not-the-key"),
        "the key is never printed: {v}"
    );
    assert_eq!(v["failed"], 3, "{v}");
    assert_eq!(
        fake.requests().len(),
        1,
        "delivery stopped after the first 401"
    );
    assert!(fake.users().is_empty());
}
