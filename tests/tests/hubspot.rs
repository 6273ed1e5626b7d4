//! The HubSpot connector end to end: the real `retl` binary syncing an SQLite model into the
//! HubSpot CRM v3 fake, in every mode, under throttling, server errors, timeouts and slow
//! answers, with per-record rejections; the fake's store is compared with the model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use retl_fakes::{
    BatchErrorMode, FaultPlan, HubSpotConfig, HubSpotFake, LoggedRequest, RateLimit, Rule,
};
use retl_tests::Project;
use serde_json::{json, Value};

const TOKEN: &str = "pat-na1-test-token";

/// One model row: email (the key), first name, age (a number property), lifecycle stage.
type Row<'a> = (&'a str, &'a str, Option<i64>, Option<&'a str>);

async fn fake() -> HubSpotFake {
    let fake = HubSpotFake::start(HubSpotConfig::default())
        .await
        .expect("the fake starts");
    fake.add_property("contacts", "age", "number");
    fake
}

/// A project syncing `model` into HubSpot contacts by email with `mode`.
fn project(fake: &HubSpotFake, mode: &str, delivery: &str) -> Project {
    project_with(fake, mode, delivery, "contacts", "email", MAPPING)
}

const MAPPING: &str = "{ email: email, firstname: first, age: age, lifecyclestage: stage }";

fn project_with(
    fake: &HubSpotFake,
    mode: &str,
    delivery: &str,
    object: &str,
    key: &str,
    mapping: &str,
) -> Project {
    let mut p = Project::new();
    p.env("HUBSPOT_TOKEN", TOKEN);
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             crm: {{ type: hubspot, token_env: HUBSPOT_TOKEN, base_url: \"{}\", delivery: {{ {delivery} }} }}\n",
            fake.base_url()
        ),
    );
    p.write(
        "syncs/contacts.yaml",
        &format!(
            "name: contacts\nsource: {{ connection: warehouse, sql: \"select * from model\" }}\n\
             primary_key: {key}\ndestination: {{ connection: crm, object: {object} }}\n\
             mapping: {mapping}\nmode: {mode}\n"
        ),
    );
    p
}

fn sql_text(v: Option<&str>) -> String {
    v.map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

fn set_model(p: &Project, rows: &[Row]) {
    let mut sql = String::from(
        "DROP TABLE IF EXISTS model; \
         CREATE TABLE model (email TEXT, first TEXT, age INTEGER, stage TEXT);",
    );
    for (email, first, age, stage) in rows {
        sql.push_str(&format!(
            "INSERT INTO model VALUES ({}, {}, {}, {});",
            sql_text(Some(email)),
            sql_text(Some(first)),
            age.map_or("NULL".into(), |a| a.to_string()),
            sql_text(*stage)
        ));
    }
    p.warehouse(&sql);
}

/// Seeds a contact in HubSpot as if someone had created it there.
fn seed(fake: &HubSpotFake, (email, first, age, stage): Row) -> String {
    let mut props = json!({"email": email, "firstname": first});
    if let Some(a) = age {
        props["age"] = json!(a.to_string());
    }
    if let Some(s) = stage {
        props["lifecyclestage"] = json!(s);
    }
    fake.insert("contacts", props)
}

/// Live contacts by email: (firstname, age, lifecyclestage), asserting no email appears twice.
fn contacts(fake: &HubSpotFake) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    for r in fake.records("contacts") {
        let p = &r["properties"];
        let email = p["email"].as_str().unwrap_or_default().to_string();
        let text = |f: &str| p[f].as_str().map(str::to_string);
        let prev = out.insert(
            email.clone(),
            (
                text("firstname").unwrap_or_default(),
                text("age"),
                text("lifecyclestage"),
            ),
        );
        assert!(prev.is_none(), "{email} is in HubSpot twice");
    }
    out
}

/// The store as the model says it should be.
fn expected(rows: &[Row]) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    rows.iter()
        .map(|(e, f, a, s)| {
            (
                e.to_string(),
                (
                    f.to_string(),
                    a.map(|a| a.to_string()),
                    s.map(str::to_string),
                ),
            )
        })
        .collect()
}

fn is_write(r: &LoggedRequest) -> bool {
    r.method == "POST"
        && ["create", "update", "upsert", "archive"]
            .iter()
            .any(|a| r.path.ends_with(&format!("/batch/{a}")))
}

fn writes(fake: &HubSpotFake) -> Vec<LoggedRequest> {
    fake.requests().into_iter().filter(is_write).collect()
}

fn count(fake: &HubSpotFake, method: &str, suffix: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == method && r.path.ends_with(suffix))
        .count()
}

/// Runs the sync once more and asserts it wrote nothing.
async fn second_run_writes_nothing(p: &Project, fake: &HubSpotFake) -> Value {
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    for k in ["creates", "updates", "deletes", "rejected", "failed"] {
        assert_eq!(v[k], 0, "{k}: {v}");
    }
    assert!(writes(fake).is_empty(), "{:?}", writes(fake));
    v
}

/// Archives a contact behind retl's back, through the API.
async fn archive_directly(fake: &HubSpotFake, id: &str) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/contacts/batch/archive",
            fake.base_url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"inputs": [{"id": id}]}))
        .send()
        .await
        .expect("archive");
    assert_eq!(resp.status().as_u16(), 204);
}

/// Calls `arm` once the fake has answered a listing request (the baseline of a first
/// run), so the faults it sets land on the batch writes that follow.
fn after_listing(fake: &Arc<HubSpotFake>, arm: impl FnOnce(&HubSpotFake) + Send + 'static) {
    let fake = Arc::clone(fake);
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if fake
                .requests()
                .iter()
                .any(|r| r.method == "GET" && r.path == "/crm/v3/objects/contacts")
            {
                arm(&fake);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

fn rows(n: usize) -> Vec<Owned> {
    (0..n)
        .map(|i| {
            (
                format!("u{i:04}@example.com"),
                format!("User {i}"),
                Some(20 + (i % 50) as i64),
                Some("lead"),
            )
        })
        .collect()
}

/// Rows owned by a test, as the model rows they stand for.
type Owned = (String, String, Option<i64>, Option<&'static str>);

fn as_rows<'a>(owned: &'a [Owned]) -> Vec<Row<'a>> {
    owned
        .iter()
        .map(|(e, f, a, s)| (e.as_str(), f.as_str(), *a, *s))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_creates_updates_and_leaves_equal_records_alone() {
    let fake = fake().await;
    fake.set_reverse_results(true);
    let same: Row = ("ann@example.com", "Ann", Some(30), Some("lead"));
    seed(&fake, same);
    seed(&fake, ("bob@example.com", "Robert", Some(40), None));
    let p = project(&fake, "upsert", "");
    let model = [
        same,
        ("bob@example.com", "Bob", Some(41), Some("customer")),
        ("cy@example.com", "Cy", None, None),
    ];
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["updates"], &v["unchanged"]),
        (&json!(1), &json!(1), &json!(1)),
        "an equal record found by the baseline is unchanged: {v}"
    );
    assert_eq!(contacts(&fake), expected(&model));
    let upserts = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/batch/upsert"))
        .collect::<Vec<_>>();
    assert_eq!(upserts.len(), 1, "{upserts:?}");
    assert_eq!(upserts[0].records_in_batch, Some(2));

    let v = second_run_writes_nothing(&p, &fake).await;
    assert_eq!(v["unchanged"], 3, "{v}");

    // A value cleared in the model is cleared in HubSpot.
    let model = [
        same,
        ("bob@example.com", "Bob", None, Some("customer")),
        ("cy@example.com", "Cy", None, None),
    ];
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["updates"]), (0, &json!(1)), "{v}");
    assert_eq!(contacts(&fake), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_archives_records_that_left_the_model() {
    let fake = fake().await;
    seed(&fake, ("a@example.com", "A", Some(1), None));
    seed(&fake, ("b@example.com", "B", Some(2), None));
    let stray = seed(&fake, ("z@example.com", "Z", None, None));
    let p = project(&fake, "mirror", "");
    let model = [
        ("a@example.com", "A", Some(1), None),
        ("b@example.com", "B", Some(2), None),
        ("c@example.com", "C", Some(3), None),
    ];
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["deletes"], &v["unchanged"]),
        (&json!(1), &json!(1), &json!(2)),
        "{v}"
    );
    assert_eq!(contacts(&fake), expected(&model));
    let archived = fake.archived("contacts");
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["id"], json!(stray));
    second_run_writes_nothing(&p, &fake).await;

    set_model(&p, &model[..2]);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["deletes"]), (0, &json!(1)), "{v}");
    assert_eq!(contacts(&fake), expected(&model[..2]));
    assert_eq!(count(&fake, "POST", "/batch/read"), 1, "ids resolved once");
    second_run_writes_nothing(&p, &fake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn append_never_duplicates_or_updates_an_existing_contact() {
    let fake = fake().await;
    let p = project(&fake, "append", "");
    let model = [
        ("a@example.com", "A", Some(1), None),
        ("b@example.com", "B", None, Some("lead")),
    ];
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["creates"]), (0, &json!(2)), "{v}");
    assert_eq!(count(&fake, "POST", "/batch/create"), 1);
    second_run_writes_nothing(&p, &fake).await;

    // Someone creates c in HubSpot after retl's baseline: the create meets a conflict.
    seed(&fake, ("c@example.com", "Created in HubSpot", None, None));
    set_model(
        &p,
        &[
            ("a@example.com", "A changed", Some(1), None),
            model[1],
            ("c@example.com", "C", None, None),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["skipped"]),
        (&json!(0), &json!(2)),
        "{v}"
    );
    let stored = contacts(&fake);
    assert_eq!(stored.len(), 3);
    assert_eq!(stored["c@example.com"].0, "Created in HubSpot");
    assert_eq!(stored["a@example.com"].0, "A", "append never updates");
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_looks_keys_up_and_creates_only_missing_ones() {
    let fake = fake().await;
    seed(&fake, ("a@example.com", "In HubSpot", None, None));
    let p = project(&fake, "insert", "");
    set_model(
        &p,
        &[
            ("a@example.com", "A", None, None),
            ("b@example.com", "B", Some(5), None),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["skipped"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(contacts(&fake)["a@example.com"].0, "In HubSpot");

    // d appears in HubSpot behind retl's back: the lookup finds it, nothing is created.
    seed(&fake, ("d@example.com", "D in HubSpot", None, None));
    set_model(
        &p,
        &[
            ("a@example.com", "A", None, None),
            ("b@example.com", "B", Some(5), None),
            ("d@example.com", "D", None, None),
            ("e@example.com", "E", None, None),
        ],
    );
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 1, "{v}");
    assert!(
        count(&fake, "POST", "/batch/read") >= 1,
        "keys were looked up"
    );
    let stored = contacts(&fake);
    assert_eq!(stored.len(), 4);
    assert_eq!(stored["d@example.com"].0, "D in HubSpot");
    second_run_writes_nothing(&p, &fake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_changes_existing_contacts_and_skips_missing_ones() {
    let fake = fake().await;
    seed(&fake, ("a@example.com", "A", Some(1), None));
    let b = seed(&fake, ("b@example.com", "B", Some(2), None));
    let p = project(&fake, "update", "");
    set_model(
        &p,
        &[
            ("a@example.com", "A2", Some(1), None),
            ("b@example.com", "B", Some(2), None),
            ("nobody@example.com", "N", None, None),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["updates"], &v["unchanged"], &v["skipped"]),
        (&json!(1), &json!(1), &json!(1)),
        "{v}"
    );
    let stored = contacts(&fake);
    assert_eq!(stored.len(), 2, "update never creates");
    assert_eq!(stored["a@example.com"].0, "A2");
    second_run_writes_nothing(&p, &fake).await;

    // b disappears from HubSpot after retl saw it: HubSpot answers OBJECT_NOT_FOUND.
    archive_directly(&fake, &b).await;
    set_model(
        &p,
        &[
            ("a@example.com", "A2", Some(1), None),
            ("b@example.com", "B2", Some(2), None),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["updates"], &v["skipped"]),
        (&json!(0), &json!(1)),
        "{v}"
    );
    assert_eq!(contacts(&fake).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_by_record_id() {
    let fake = fake().await;
    let a = seed(&fake, ("a@example.com", "A", None, None));
    let p = project_with(
        &fake,
        "update",
        "",
        "contacts",
        "id",
        "{ hs_object_id: id, firstname: first }",
    );
    p.warehouse(&format!(
        "CREATE TABLE model (id INTEGER, first TEXT); INSERT INTO model VALUES ({a}, 'Renamed'), (999999, 'Nobody');"
    ));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["updates"], &v["skipped"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(contacts(&fake)["a@example.com"].0, "Renamed");
    second_run_writes_nothing(&p, &fake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_only_archives_keys_that_left_the_model() {
    let fake = fake().await;
    let all = [
        ("a@example.com", "A", None, None),
        ("b@example.com", "B", None, None),
        ("c@example.com", "C", None, None),
        ("d@example.com", "D", None, None),
    ];
    for r in all {
        seed(&fake, r);
    }
    let p = project(&fake, "delete_only", "");
    set_model(&p, &all[..3]);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["deletes"]), (0, &json!(1)), "{v}");
    assert_eq!(contacts(&fake), expected(&all[..3]));
    second_run_writes_nothing(&p, &fake).await;
    set_model(&p, &all[..2]);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["deletes"]), (0, &json!(1)), "{v}");
    assert_eq!(contacts(&fake), expected(&all[..2]));
    assert_eq!(fake.archived("contacts").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_archives_the_keys_the_model_returns_and_skips_absent_ones() {
    let fake = fake().await;
    seed(&fake, ("a@example.com", "A", None, None));
    let b = seed(&fake, ("b@example.com", "B", None, None));
    seed(&fake, ("c@example.com", "C", None, None));
    let p = project(&fake, "delete", "");
    set_model(
        &p,
        &[
            ("a@example.com", "", None, None),
            ("gone@example.com", "", None, None),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["deletes"], &v["skipped"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    assert_eq!(contacts(&fake).len(), 2);
    second_run_writes_nothing(&p, &fake).await;

    // b is archived in HubSpot after retl's baseline saw it: the delete finds nothing.
    archive_directly(&fake, &b).await;
    set_model(
        &p,
        &[
            ("a@example.com", "", None, None),
            ("b@example.com", "", None, None),
        ],
    );
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["deletes"], &v["skipped"]),
        (&json!(0), &json!(1)),
        "{v}"
    );
    assert_eq!(
        count(&fake, "POST", "/batch/archive"),
        0,
        "nothing to archive"
    );
    assert_eq!(contacts(&fake).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_object_mirror_with_a_unique_property_and_typed_values() {
    let fake = fake().await;
    fake.add_unique_property("p_pets", "pet_id");
    fake.add_property("p_pets", "pet_id", "number");
    fake.add_property("p_pets", "name", "string");
    fake.add_property("p_pets", "weight", "number");
    fake.insert(
        "p_pets",
        json!({"pet_id": "1", "name": "Rex", "weight": "4.5"}),
    );
    let p = project_with(
        &fake,
        "mirror",
        "",
        "p_pets",
        "id",
        "{ pet_id: id, name: name, weight: weight }",
    );
    p.warehouse(
        "CREATE TABLE model (id INTEGER, name TEXT, weight REAL); \
         INSERT INTO model VALUES (1, 'Rex', 4.5), (2, 'Tom', 3.25);",
    );
    // Rex already holds the model's values ("1", "4.5" read back as 1 and 4.5).
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["unchanged"]),
        (&json!(1), &json!(1)),
        "{v}"
    );
    let tom = fake.get("p_pets", "pet_id", "2").expect("created");
    assert_eq!(tom["properties"]["weight"], "3.25");
    let v = second_run_writes_nothing(&p, &fake).await;
    assert_eq!(v["unchanged"], 2, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_hold_at_most_100_inputs_and_listing_pages_by_100() {
    let fake = fake().await;
    let owned = rows(250);
    let model = as_rows(&owned);
    for r in &model[..120] {
        seed(&fake, *r);
    }
    let p = project(&fake, "mirror", "");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["unchanged"]),
        (&json!(130), &json!(120)),
        "{v}"
    );
    assert_eq!(
        count(&fake, "GET", "/crm/v3/objects/contacts"),
        2,
        "120 records, 2 pages"
    );
    let sizes: Vec<usize> = writes(&fake)
        .iter()
        .map(|r| r.records_in_batch.unwrap_or(0))
        .collect();
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 130, "{sizes:?}");
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(contacts(&fake), expected(&model));

    // 100 deletes (40%, under the default threshold): one read and one archive of 100.
    set_model(&p, &model[..150]);
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 100, "{v}");
    let sizes: Vec<(String, Option<usize>)> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| (r.path, r.records_in_batch))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("/crm/v3/objects/contacts/batch/read".to_string(), Some(100)),
            (
                "/crm/v3/objects/contacts/batch/archive".to_string(),
                Some(100)
            ),
        ]
    );
    assert_eq!(contacts(&fake), expected(&model[..150]));
    assert_eq!(fake.archived("contacts").len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_429s_is_retried_honouring_retry_after() {
    let fake = Arc::new(fake().await);
    fake.faults().set_rate_limit(None);
    let owned = rows(40);
    let model = as_rows(&owned);
    let p = project(&fake, "upsert", "batch_size: 10, concurrency: 1");
    set_model(&p, &model);
    after_listing(&fake, |f| f.faults().burst_429(3));
    let started = Instant::now();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 40, "{v}");
    let throttled: Vec<LoggedRequest> = fake
        .requests()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert_eq!(throttled.len(), 3, "{throttled:?}");
    assert!(throttled.iter().all(|r| r.path.ends_with("/batch/upsert")));
    // Each 429 said Retry-After: 1, and the whole destination paused for it.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(contacts(&fake), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tight_rate_limit_is_waited_out_with_or_without_retry_after() {
    let fake = fake().await;
    fake.faults()
        .set_rate_limit(Some(RateLimit::sliding(4, Duration::from_secs(2))));
    let owned = rows(60);
    let model = as_rows(&owned);
    let p = project(&fake, "upsert", "batch_size: 10, max_attempts: 12");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["failed"]),
        (&json!(60), &json!(0)),
        "{v}"
    );
    assert!(fake.faults().stats().rate_limited >= 1);
    assert_eq!(contacts(&fake), expected(&model));

    // HubSpot does not document Retry-After: without it the connector waits on its own.
    fake.faults().set_send_retry_after(false);
    fake.faults().reset_stats();
    let owned = rows(120);
    let model = as_rows(&owned);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["failed"]),
        (&json!(60), &json!(0)),
        "{v}"
    );
    assert!(fake.faults().stats().rate_limited >= 1);
    assert_eq!(contacts(&fake), expected(&model));
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_server_errors_lose_and_duplicate_nothing() {
    let fake = fake().await;
    fake.faults().set_plan(FaultPlan {
        error_ratio: 0.3,
        error_seed: 42,
        error_status: 503,
        ..FaultPlan::default()
    });
    let owned = rows(300);
    let model = as_rows(&owned);
    let p = project(&fake, "mirror", "batch_size: 20, max_attempts: 10");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["failed"]),
        (&json!(300), &json!(0)),
        "{v}"
    );
    assert!(
        fake.faults().stats().server_errors >= 5,
        "{:?}",
        fake.faults().stats()
    );
    assert_eq!(contacts(&fake), expected(&model));

    // Deletes under the same error rate.
    set_model(&p, &model[..200]);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!((code, &v["deletes"]), (0, &json!(100)), "{v}");
    assert_eq!(contacts(&fake), expected(&model[..200]));
    fake.faults().set_error_ratio(0.0);
    second_run_writes_nothing(&p, &fake).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_times_out_is_sent_again() {
    let fake = Arc::new(fake().await);
    fake.faults().set_plan(FaultPlan {
        hang: Duration::from_secs(3),
        ..FaultPlan::default()
    });
    let owned = rows(30);
    let model = as_rows(&owned);
    let p = project(
        &fake,
        "upsert",
        "batch_size: 10, concurrency: 1, timeout_seconds: 1",
    );
    set_model(&p, &model);
    after_listing(&fake, |f| f.faults().timeout_next(1));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 30, "{v}");
    assert_eq!(fake.faults().stats().timeouts, 1);
    assert_eq!(contacts(&fake), expected(&model));

    // A read that hangs (the schema request starting every run) is retried too.
    fake.faults().timeout_next(1);
    let v = second_run_writes_nothing(&p, &fake).await;
    assert_eq!(v["unchanged"], 30, "{v}");
    assert_eq!(fake.faults().stats().timeouts, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_still_deliver_everything() {
    let fake = fake().await;
    fake.faults().set_slow(Duration::from_millis(300));
    let owned = rows(80);
    let model = as_rows(&owned);
    let p = project(&fake, "upsert", "batch_size: 10");
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 80, "{v}");
    assert_eq!(contacts(&fake), expected(&model));
}

/// A model with one record HubSpot refuses (an unknown lifecycle stage).
fn with_one_invalid() -> Vec<Row<'static>> {
    vec![
        ("a@example.com", "A", None, Some("lead")),
        ("b@example.com", "B", None, Some("customer")),
        ("bad@example.com", "Bad", None, Some("alien")),
        ("c@example.com", "C", None, Some("lead")),
        ("d@example.com", "D", None, None),
    ]
}

/// Runs the model with one invalid record three times: rejected (the first run's writes
/// answered `first_writes`: status, inputs), rejected again alone, delivered once fixed.
async fn assert_rejection_cycle(fake: &HubSpotFake, p: &Project, first_writes: &[(u16, usize)]) {
    let model = with_one_invalid();
    set_model(p, &model);
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    let sent: Vec<(u16, usize)> = writes(fake)
        .iter()
        .map(|r| (r.status, r.records_in_batch.unwrap_or(0)))
        .collect();
    assert_eq!(sent, first_writes);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed", "{v}");
    assert_eq!(
        (&v["creates"], &v["rejected"]),
        (&json!(4), &json!(1)),
        "{v}"
    );
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(errors[0]["key"], "bad@example.com");
    assert_eq!(errors[0]["code"], "VALIDATION_ERROR", "{errors}");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("INVALID_OPTION"), "{message}");
    assert_eq!(errors[0]["values"]["lifecyclestage"], "alien");
    let stored = contacts(fake);
    assert_eq!(stored.len(), 4);
    assert!(!stored.contains_key("bad@example.com"));

    // The next run sends only the rejected record again, and it is still refused.
    fake.clear_requests();
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (&v["rejected"], &v["unchanged"]),
        (&json!(1), &json!(4)),
        "{v}"
    );
    let sent: Vec<Option<usize>> = writes(fake).iter().map(|r| r.records_in_batch).collect();
    assert_eq!(sent, vec![Some(1)]);

    // Fixed in the model: delivered.
    let mut fixed = model.clone();
    fixed[2].3 = Some("customer");
    set_model(p, &fixed);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["creates"], &v["rejected"]),
        (&json!(1), &json!(0)),
        "{v}"
    );
    assert_eq!(contacts(fake), expected(&fixed));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_record_is_rejected_with_hubspots_error_and_the_others_delivered() {
    let fake = fake().await;
    fake.add_rule(
        "contacts",
        Rule::one_of("lifecyclestage", &["lead", "customer"]).with_code("INVALID_OPTION"),
    );
    let p = project(&fake, "upsert", "");
    // Multi-status: one request, answered 207, no split.
    assert_rejection_cycle(&fake, &p, &[(207, 5)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_refused_whole_is_resent_without_the_input_hubspot_named() {
    let fake = fake().await;
    fake.set_error_mode(BatchErrorMode::WholeBatch);
    fake.add_rule(
        "contacts",
        Rule::one_of("lifecyclestage", &["lead", "customer"]).with_code("INVALID_OPTION"),
    );
    let p = project(&fake, "upsert", "");
    // HubSpot names the bad input: it is rejected and the other four are sent again in the
    // same call, without splitting the batch.
    assert_rejection_cycle(&fake, &p, &[(400, 5), (200, 4)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prepare_explains_what_to_fix() {
    let fake = fake().await;
    let cases = [
        (
            "contacts",
            "[email, first]",
            "{ email: email, firstname: first }",
            "one unique property",
        ),
        (
            "companies",
            "first",
            "{ name: first, domain: email }",
            "not unique",
        ),
        (
            "contacts",
            "email",
            "{ email: email, favourite_colour: first }",
            "has no property `favourite_colour`",
        ),
        (
            "widgets",
            "email",
            "{ email: email }",
            "HubSpot has no object type `widgets`",
        ),
        (
            "contacts",
            "email",
            "{ email: email, hs_object_id: age }",
            "read-only",
        ),
    ];
    for (object, key, mapping, wanted) in cases {
        let p = project_with(&fake, "upsert", "", object, key, mapping);
        set_model(&p, &[("a@example.com", "A", None, None)]);
        let out = p.run(&["--json", "run", "contacts"]).await;
        assert_ne!(out.code, 0, "{object} {key}: {}", out.stdout);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains(wanted), "wanted `{wanted}` in: {all}");
    }
    assert!(writes(&fake).is_empty());

    let mut p = project(&fake, "upsert", "");
    p.env("HUBSPOT_TOKEN", "pat-na1-revoked");
    set_model(&p, &[("a@example.com", "A", None, None)]);
    let out = p.run(&["--json", "run", "contacts"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("HUBSPOT_TOKEN") && all.contains("INVALID_AUTHENTICATION"),
        "{all}"
    );
    assert!(!all.contains("pat-na1-revoked"), "the token never shows");
}
