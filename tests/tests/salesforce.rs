//! The Salesforce destination against `retl_fakes::SalesforceFake`, driven through the `retl`
//! binary: every mode, both OAuth flows, token expiry and refresh, per-record errors
//! (validation, lock contention, duplicates), throttling, server errors, timeouts, Bulk API
//! 2.0 for large runs, and the fake's store compared with the model after each run.

use std::time::{Duration, Instant};

use retl_fakes::{
    ClientCredentials, JwtClient, LoggedRequest, RateLimit, RecordFault, Rule, SalesforceConfig,
    SalesforceFake,
};
use retl_tests::Project;
use serde_json::{json, Value};

const PRIVATE: &str = include_str!("../fakes/tests/fixtures/jwt_private.pem");
const OTHER_PRIVATE: &str = include_str!("../fakes/tests/fixtures/other_private.pem");
const PUBLIC: &str = include_str!("../fakes/tests/fixtures/jwt_public.pem");
const CLIENT_ID: &str = "retl-connected-app";
const USERNAME: &str = "sync@example.com";
const SECRET: &str = "cc-secret-value";

/// One row of the model: external id, email, last name (`<null>` for SQL NULL).
type Row = (String, String, String);

async fn org(tweak: impl FnOnce(&mut SalesforceConfig)) -> SalesforceFake {
    let mut config = SalesforceConfig {
        jwt: Some(JwtClient {
            client_id: CLIENT_ID.into(),
            username: USERNAME.into(),
            public_key_pem: PUBLIC.into(),
        }),
        client_credentials: Some(ClientCredentials {
            client_id: CLIENT_ID.into(),
            client_secret: SECRET.into(),
        }),
        unique_fields: vec![("Contact".into(), "Ext__c".into())],
        required_fields: vec![("Contact".into(), "LastName".into())],
        ..SalesforceConfig::default()
    };
    tweak(&mut config);
    let fake = SalesforceFake::start(config)
        .await
        .expect("the fake starts");
    // The connector derives the JWT audience from the login URL, here the fake itself.
    fake.add_jwt_audience(fake.base_url());
    fake
}

fn jwt_auth() -> String {
    format!("    client_id: {CLIENT_ID}\n    username: {USERNAME}\n    private_key_env: SF_PRIVATE_KEY\n")
}

/// A project whose `crm` connection points at `fake`; `conn` adds lines to the connection.
fn project(fake: &SalesforceFake, auth: &str, conn: &str, sync: &str) -> Project {
    let mut p = Project::new();
    p.env("SF_PRIVATE_KEY", PRIVATE);
    p.env("SF_OTHER_KEY", OTHER_PRIVATE);
    p.env("SF_SECRET", SECRET);
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  crm:\n    type: salesforce\n    login_url: \"{}\"\n    api_version: \"60.0\"\n{auth}{conn}",
            fake.base_url()
        ),
    );
    p.write("syncs/contacts.yaml", sync);
    p
}

fn contacts(mode: &str, extra: &str) -> String {
    format!(
        "name: contacts\nsource: {{ connection: warehouse, sql: \"select id, email, name from model\" }}\n\
         primary_key: id\ndestination: {{ connection: crm, object: Contact }}\n\
         mapping: {{ Ext__c: id, Email: email, LastName: name }}\nmode: {mode}\n\
         safety: {{ delete_threshold_pct: 100 }}\n{extra}"
    )
}

fn jwt_project(fake: &SalesforceFake, conn: &str, mode: &str) -> Project {
    project(fake, &jwt_auth(), conn, &contacts(mode, ""))
}

fn row(id: &str, email: &str, name: &str) -> Row {
    (id.to_string(), email.to_string(), name.to_string())
}

fn people(range: std::ops::Range<usize>) -> Vec<Row> {
    range
        .map(|i| {
            row(
                &format!("c{i:03}"),
                &format!("p{i}@example.com"),
                &format!("Person {i}"),
            )
        })
        .collect()
}

fn sql_text(s: &str) -> String {
    if s == "<null>" {
        "NULL".into()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn set_model(p: &Project, rows: &[Row]) {
    let mut sql = String::from(
        "BEGIN; DROP TABLE IF EXISTS model; CREATE TABLE model (id TEXT, email TEXT, name TEXT);",
    );
    for (id, email, name) in rows {
        sql.push_str(&format!(
            "INSERT INTO model VALUES ({}, {}, {});",
            sql_text(id),
            sql_text(email),
            sql_text(name)
        ));
    }
    // One transaction: a commit per row makes large models slow to write.
    sql.push_str("COMMIT;");
    p.warehouse(&sql);
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<null>".into(),
        other => other.to_string(),
    }
}

/// The fake's contacts as rows, sorted.
fn store(fake: &SalesforceFake) -> Vec<Row> {
    let mut rows: Vec<Row> = fake
        .records("Contact")
        .iter()
        .map(|r| (text(&r["Ext__c"]), text(&r["Email"]), text(&r["LastName"])))
        .collect();
    rows.sort();
    rows
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort();
    rows
}

fn seed(fake: &SalesforceFake, rows: &[Row]) -> Vec<String> {
    rows.iter()
        .map(|(id, email, name)| {
            fake.insert(
                "Contact",
                json!({"Ext__c": id, "Email": email, "LastName": name}),
            )
        })
        .collect()
}

/// Requests that write (collections and bulk), in order.
fn writes(fake: &SalesforceFake) -> Vec<LoggedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/services/data/"))
        .collect()
}

fn collection_sizes(fake: &SalesforceFake) -> Vec<usize> {
    writes(fake)
        .iter()
        .filter(|r| r.path.contains("/composite/sobjects") && r.status == 200)
        .filter_map(|r| r.records_in_batch)
        .collect()
}

async fn run(p: &Project) -> Value {
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 0, "run failed: {v}");
    assert_eq!(v["status"], "succeeded", "{v}");
    v
}

fn counts(v: &Value) -> [u64; 7] {
    [
        "creates",
        "updates",
        "deletes",
        "unchanged",
        "skipped",
        "rejected",
        "failed",
    ]
    .map(|k| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_with_the_jwt_flow_creates_updates_and_then_sends_nothing() {
    let fake = org(|_| {}).await;
    seed(
        &fake,
        &[
            row("c1", "a@x.com", "Old"),
            row("zz", "z@x.com", "Not synced"),
        ],
    );
    let p = jwt_project(&fake, "", "upsert");
    let model = vec![
        row("c1", "a@x.com", "Alice"),
        row("c2", "b@x.com", "Bob"),
        row("c3", "c@x.com", "O'Hara"),
    ];
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(counts(&v), [2, 1, 0, 0, 0, 0, 0], "{v}");
    let mut expected = model.clone();
    expected.push(row("zz", "z@x.com", "Not synced"));
    assert_eq!(store(&fake), sorted(expected.clone()));
    assert_eq!(fake.tokens_issued(), 1, "one token for the whole run");
    let upserts: Vec<_> = writes(&fake);
    assert!(
        upserts.iter().all(|r| r.method == "PATCH"
            && r.path == "/services/data/v60.0/composite/sobjects/Contact/Ext__c"),
        "{upserts:?}"
    );

    // Nothing changed: nothing is written.
    let before = writes(&fake).len();
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 0, 3, 0, 0, 0], "{v}");
    assert_eq!(writes(&fake).len(), before);

    // One change: one record is sent.
    let mut changed = model.clone();
    changed[1].2 = "Robert".into();
    set_model(&p, &changed);
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 1, 0, 2, 0, 0, 0], "{v}");
    assert_eq!(writes(&fake).len(), before + 1);
    assert_eq!(writes(&fake).last().unwrap().records_in_batch, Some(1));
    assert_eq!(
        fake.get("Contact", "Ext__c", "c2").unwrap()["LastName"],
        "Robert"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_run_lists_every_page_and_finds_the_destination_in_step() {
    let fake = org(|_| {}).await;
    fake.set_query_page_size(100);
    let model = people(0..250);
    seed(&fake, &model);
    // Contacts without the external id are not the sync's business and are not read.
    for i in 0..150 {
        fake.insert("Contact", json!({"LastName": format!("Manual {i}")}));
    }
    let p = jwt_project(&fake, "", "upsert");
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 0, 250, 0, 0, 0], "{v}");
    assert!(writes(&fake).is_empty());
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/services/data/v60.0/query/"))
        .count();
    assert_eq!(
        pages, 2,
        "250 keyed records in pages of 100 need two nextRecordsUrl calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_deletes_records_that_left_the_model() {
    let fake = org(|_| {}).await;
    seed(
        &fake,
        &[row("c1", "a@x.com", "Alice"), row("c9", "z@x.com", "Zed")],
    );
    let p = jwt_project(&fake, "", "mirror");
    set_model(
        &p,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let v = run(&p).await;
    assert_eq!(counts(&v), [1, 0, 1, 1, 0, 0, 0], "{v}");
    assert_eq!(
        store(&fake),
        vec![row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")]
    );
    assert_eq!(fake.deleted_ids().len(), 1);
    set_model(&p, &[row("c2", "b@x.com", "Bob")]);
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 1, 1, 0, 0, 0], "{v}");
    assert_eq!(store(&fake), vec![row("c2", "b@x.com", "Bob")]);
    let deletes: Vec<_> = writes(&fake)
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 2);
    assert!(deletes
        .iter()
        .all(|r| r.path == "/services/data/v60.0/composite/sobjects"));
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 0, 1, 0, 0, 0], "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn insert_skips_existing_records_and_chunks_its_lookups() {
    let fake = org(|_| {}).await;
    seed(&fake, &[row("c000", "old@x.com", "Existing")]);
    // The baseline is taken; a record created by someone else afterwards is found by lookup.
    let p = jwt_project(&fake, "", "insert");
    set_model(&p, &people(0..1));
    let v = run(&p).await;
    assert_eq!(
        counts(&v),
        [0, 0, 0, 0, 1, 0, 0],
        "the baseline knows c000: {v}"
    );
    seed(&fake, &[row("c001", "other@x.com", "By someone else")]);
    fake.clear_requests();
    set_model(&p, &people(0..450));
    let v = run(&p).await;
    assert_eq!(v["creates"], 448, "{v}");
    assert_eq!(v["skipped"], 2, "{v}");
    let mut expected = people(2..450);
    expected.push(row("c000", "old@x.com", "Existing"));
    expected.push(row("c001", "other@x.com", "By someone else"));
    assert_eq!(
        store(&fake),
        sorted(expected),
        "nothing duplicated or updated"
    );
    // 449 unknown keys looked up in IN lists of at most 200, then 448 creates in batches of 200.
    let lookups: Vec<usize> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/services/data/v60.0/query")
        .filter_map(|r| r.records_in_batch)
        .collect();
    assert!(lookups.iter().all(|n| *n <= 200), "{lookups:?}");
    assert_eq!(lookups.iter().sum::<usize>(), 449, "{lookups:?}");
    let mut sizes = collection_sizes(&fake);
    sizes.sort();
    assert_eq!(sizes, vec![48, 200, 200]);
    assert!(writes(&fake).iter().all(|r| r.method == "POST"));
}

#[tokio::test(flavor = "multi_thread")]
async fn append_reports_a_duplicate_external_id_as_skipped() {
    let fake = org(|_| {}).await;
    let p = jwt_project(&fake, "", "append");
    set_model(&p, &[row("c1", "a@x.com", "Alice")]);
    let v = run(&p).await;
    assert_eq!(v["creates"], 1, "{v}");
    // Another system creates c2 between runs; append does not look up, the create hits the
    // unique external id and comes back DUPLICATE_VALUE: skipped, not duplicated or updated.
    seed(&fake, &[row("c2", "crm@x.com", "From the CRM")]);
    set_model(
        &p,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 0, 1, 1, 0, 0], "{v}");
    assert_eq!(
        store(&fake),
        vec![
            row("c1", "a@x.com", "Alice"),
            row("c2", "crm@x.com", "From the CRM")
        ]
    );
    let v = run(&p).await;
    assert_eq!(v["creates"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_changes_existing_records_by_external_id_and_skips_missing_ones() {
    let fake = org(|_| {}).await;
    seed(
        &fake,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let p = jwt_project(&fake, "", "update");
    set_model(
        &p,
        &[
            row("c1", "a@x.com", "Alice*"),
            row("c2", "b@x.com", "Bob"),
            row("c3", "c@x.com", "Carol"),
        ],
    );
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 1, 0, 1, 1, 0, 0], "{v}");
    assert_eq!(
        store(&fake),
        vec![row("c1", "a@x.com", "Alice*"), row("c2", "b@x.com", "Bob")]
    );
    let update = writes(&fake);
    assert_eq!(update.len(), 1);
    assert_eq!(
        (update[0].method.as_str(), update[0].path.as_str()),
        ("PATCH", "/services/data/v60.0/composite/sobjects")
    );
    // c3 appears in Salesforce: the next run finds it by lookup and updates it in place.
    let id = fake.get("Contact", "Ext__c", "c1").unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    fake.insert("Contact", json!({"Ext__c": "c3", "LastName": "C."}));
    set_model(
        &p,
        &[
            row("c1", "a@x.com", "Alice"),
            row("c2", "b@x.com", "Bob"),
            row("c3", "c@x.com", "Carol"),
        ],
    );
    let v = run(&p).await;
    assert_eq!(v["updates"], 2, "{v}");
    assert_eq!(
        fake.get("Contact", "Ext__c", "c3").unwrap()["LastName"],
        "Carol"
    );
    assert_eq!(fake.get("Contact", "Ext__c", "c1").unwrap()["Id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn update_and_delete_keyed_on_the_record_id() {
    let fake = org(|_| {}).await;
    let ids = seed(
        &fake,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let sync = |mode: &str| {
        format!(
            "name: contacts\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: crm, object: Contact }}\n\
             mapping: {{ Id: id, LastName: name }}\nmode: {mode}\n"
        )
    };
    let p = project(&fake, &jwt_auth(), "", &sync("update"));
    let missing = "003000000000999AAA";
    set_model(
        &p,
        &[
            (ids[0].clone(), String::new(), "Alice*".into()),
            (missing.into(), String::new(), "Nobody".into()),
            ("not-an-id".into(), String::new(), "Nobody".into()),
        ],
    );
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 1, 0, 0, 2, 0, 0], "{v}");
    assert_eq!(
        fake.get("Contact", "Id", &ids[0]).unwrap()["LastName"],
        "Alice*"
    );
    p.write("syncs/contacts.yaml", &sync("delete"));
    set_model(
        &p,
        &[
            (ids[1].clone(), String::new(), "x".into()),
            (missing.into(), String::new(), "x".into()),
        ],
    );
    let v = run(&p).await;
    assert_eq!(counts(&v), [0, 0, 1, 0, 1, 0, 0], "{v}");
    assert_eq!(fake.deleted_ids(), vec![ids[1].clone()]);
    // A sync that creates cannot be keyed on Id.
    p.write("syncs/contacts.yaml", &sync("upsert"));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("external id"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_delete_only_skip_what_is_already_gone() {
    let fake = org(|_| {}).await;
    seed(
        &fake,
        &[
            row("c1", "a@x.com", "Alice"),
            row("c2", "b@x.com", "Bob"),
            row("c3", "c@x.com", "Carol"),
        ],
    );
    let p = jwt_project(&fake, "", "delete");
    // Erasure requests; c9 does not exist.
    set_model(&p, &[row("c2", "", "erase"), row("c9", "", "erase")]);
    let v = run(&p).await;
    assert_eq!(counts(&v)[2..5], [1, 0, 1], "{v}");
    assert_eq!(
        store(&fake),
        vec![row("c1", "a@x.com", "Alice"), row("c3", "c@x.com", "Carol")]
    );
    let v = run(&p).await;
    assert_eq!(v["deletes"], 0, "{v}");

    let fake = org(|_| {}).await;
    seed(
        &fake,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let p = jwt_project(&fake, "", "delete_only");
    set_model(
        &p,
        &[row("c1", "a@x.com", "Alice"), row("c2", "b@x.com", "Bob")],
    );
    let v = run(&p).await;
    assert_eq!(v["deletes"], 0, "{v}");
    set_model(&p, &[row("c1", "a@x.com", "Alice")]);
    let v = run(&p).await;
    assert_eq!(v["deletes"], 1, "{v}");
    assert_eq!(store(&fake), vec![row("c1", "a@x.com", "Alice")]);
    assert!(writes(&fake).iter().all(|r| r.method == "DELETE"));
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_never_exceed_the_collection_limit_or_the_configured_size() {
    let fake = org(|_| {}).await;
    let p = jwt_project(&fake, "    delivery: { batch_size: 500 }\n", "upsert");
    let model = people(0..450);
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(v["creates"], 450, "{v}");
    let mut sizes = collection_sizes(&fake);
    sizes.sort();
    assert_eq!(sizes, vec![50, 200, 200], "batch_size is capped at 200");
    assert_eq!(store(&fake), sorted(model.clone()));

    let fake = org(|_| {}).await;
    let p = jwt_project(&fake, "    delivery: { batch_size: 120 }\n", "upsert");
    set_model(&p, &model);
    run(&p).await;
    let mut sizes = collection_sizes(&fake);
    sizes.sort();
    assert_eq!(sizes, vec![90, 120, 120, 120]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_credentials_flow_works_and_bad_credentials_stop_the_run() {
    let fake = org(|_| {}).await;
    let auth = format!("    client_id: {CLIENT_ID}\n    client_secret_env: SF_SECRET\n");
    let p = project(&fake, &auth, "", &contacts("upsert", ""));
    set_model(&p, &people(0..3));
    run(&p).await;
    assert_eq!(store(&fake), people(0..3));

    let wrong = "    client_id: someone-else\n    client_secret_env: SF_SECRET\n";
    let p = project(&fake, wrong, "", &contacts("upsert", ""));
    set_model(&p, &people(0..5));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_client_id"),
        "{v}"
    );
    assert_eq!(store(&fake).len(), 3, "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_signed_with_another_key_or_for_another_audience_is_refused() {
    let fake = org(|_| {}).await;
    let auth = format!(
        "    client_id: {CLIENT_ID}\n    username: {USERNAME}\n    private_key_env: SF_OTHER_KEY\n"
    );
    let p = project(&fake, &auth, "", &contacts("upsert", ""));
    set_model(&p, &people(0..2));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid_grant"),
        "{v}"
    );

    let p = project(
        &fake,
        &jwt_auth(),
        "    jwt_audience: https://elsewhere.example.com\n",
        &contacts("upsert", ""),
    );
    set_model(&p, &people(0..2));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("audience"),
        "{v}"
    );

    // The production login host as audience is accepted.
    let p = project(
        &fake,
        &jwt_auth(),
        "    jwt_audience: https://login.salesforce.com\n",
        &contacts("upsert", ""),
    );
    set_model(&p, &people(0..2));
    run(&p).await;
    assert_eq!(store(&fake), people(0..2));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_is_replaced_and_the_request_sent_again() {
    let fake = org(|_| {}).await;
    fake.set_token_ttl(Duration::from_millis(1200));
    fake.faults().set_slow(Duration::from_millis(200));
    let p = jwt_project(
        &fake,
        "    delivery: { batch_size: 2, concurrency: 1 }\n",
        "upsert",
    );
    let model = people(0..16);
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(v["creates"], 16, "{v}");
    assert_eq!(store(&fake), model);
    let refused = fake.requests().iter().filter(|r| r.status == 401).count();
    assert!(refused >= 1, "a token expired during the run");
    assert_eq!(
        fake.tokens_issued(),
        1 + refused as u64,
        "one new token per refusal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_renewed_before_the_session_lifetime_ends() {
    let fake = org(|_| {}).await;
    fake.faults().set_slow(Duration::from_millis(300));
    let p = jwt_project(
        &fake,
        "    session_lifetime_seconds: 1\n    delivery: { batch_size: 2, concurrency: 1 }\n",
        "upsert",
    );
    set_model(&p, &people(0..8));
    run(&p).await;
    assert!(fake.tokens_issued() >= 2, "{}", fake.tokens_issued());
    assert!(
        fake.requests().iter().all(|r| r.status != 401),
        "renewed before Salesforce refused it"
    );
    assert_eq!(store(&fake), people(0..8));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_refused_right_after_its_refresh_is_fatal() {
    let fake = org(|_| {}).await;
    fake.set_token_ttl(Duration::ZERO);
    let p = jwt_project(&fake, "", "upsert");
    set_model(&p, &people(0..3));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("INVALID_SESSION_ID")
            || v["error"]
                .as_str()
                .unwrap_or_default()
                .contains("freshly issued"),
        "{v}"
    );
    assert_eq!(fake.tokens_issued(), 2, "one refresh, then give up");
    assert!(store(&fake).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_sobject_stops_the_run_before_any_write() {
    let fake = org(|c| c.sobjects = Some(vec!["Contact".into()])).await;
    let sync = contacts("upsert", "").replace("object: Contact", "object: Nope__c");
    let p = project(&fake, &jwt_auth(), "", &sync);
    set_model(&p, &people(0..3));
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_ne!(code, 0, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("INVALID_TYPE"),
        "{v}"
    );
    assert!(writes(&fake).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_record_is_rejected_with_its_code_and_resent_until_fixed() {
    let fake = org(|_| {}).await;
    fake.add_rule(
        "Contact",
        Rule::contains("Email", "@").with_message("Email: invalid email address"),
    );
    let p = jwt_project(&fake, "", "upsert");
    let mut model = people(0..5);
    model[2].1 = "not-an-email".into();
    model[4].2 = "<null>".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed", "{v}");
    assert_eq!(
        (v["creates"].clone(), v["rejected"].clone()),
        (json!(3), json!(2)),
        "{v}"
    );
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let (_, errors) = p.run_json(&["errors", &run_id]).await;
    let errors = errors["errors"].clone();
    let mut found: Vec<(String, String)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (text(&e["key"]), text(&e["code"])))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            (
                "c002".to_string(),
                "FIELD_CUSTOM_VALIDATION_EXCEPTION".to_string()
            ),
            ("c004".to_string(), "REQUIRED_FIELD_MISSING".to_string()),
        ],
        "{errors}"
    );
    let message = errors
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "c002")
        .map(|e| text(&e["message"]))
        .unwrap_or_default();
    assert!(message.contains("invalid email address"), "{message}");

    // The next run sends only the two rejected records, and still rejects them.
    let before = writes(&fake).len();
    let (_, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(v["rejected"], 2, "{v}");
    let again = &writes(&fake)[before..];
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].records_in_batch, Some(2));

    // Fixed in the model: delivered, and the store matches the model.
    model[2].1 = "p2@example.com".into();
    model[4].2 = "Person 4".into();
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(v["creates"], 2, "{v}");
    assert_eq!(store(&fake), sorted(model));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_value_on_another_unique_field_is_rejected() {
    let fake = org(|_| {}).await;
    fake.add_unique_field("Contact", "Email");
    seed(&fake, &[row("crm-1", "taken@x.com", "Somebody")]);
    let p = jwt_project(&fake, "", "upsert");
    set_model(
        &p,
        &[
            row("c1", "taken@x.com", "Alice"),
            row("c2", "b@x.com", "Bob"),
        ],
    );
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (v["creates"].clone(), v["rejected"].clone()),
        (json!(1), json!(1)),
        "{v}"
    );
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors[0]["key"], "c1", "{errors}");
    assert_eq!(errors[0]["code"], "DUPLICATE_VALUE", "{errors}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unable_to_lock_row_is_retried_within_the_run_and_delivered() {
    let fake = org(|_| {}).await;
    fake.inject(RecordFault::unable_to_lock_row(
        "Contact", "Ext__c", "c001", 2,
    ));
    let p = jwt_project(&fake, "", "upsert");
    let model = people(0..4);
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(counts(&v), [4, 0, 0, 0, 0, 0, 0], "{v}");
    assert_eq!(store(&fake), model);
    assert_eq!(
        collection_sizes(&fake),
        vec![4, 1, 1],
        "the locked record alone is sent again until it passes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_limit_exceeded_waits_for_retry_after() {
    // Without the default 24 h allocation window, an injected 403 asks for Retry-After: 1.
    let fake = org(|c| c.faults.rate_limit = None).await;
    fake.faults().burst_429(3);
    let p = jwt_project(&fake, "", "upsert");
    let model = people(0..10);
    set_model(&p, &model);
    let started = Instant::now();
    run(&p).await;
    let took = started.elapsed();
    assert_eq!(fake.faults().stats().rate_limited, 3);
    assert!(
        fake.requests().iter().filter(|r| r.status == 403).count() == 3,
        "403 REQUEST_LIMIT_EXCEEDED is Salesforce's throttled answer"
    );
    assert!(
        took >= Duration::from_millis(2900),
        "Retry-After: 1 honoured three times: {took:?}"
    );
    assert_eq!(store(&fake), model);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_api_allocation_throttles_delivery_until_slots_free_up() {
    let fake = org(|c| {
        c.faults.rate_limit = Some(RateLimit::sliding(4, Duration::from_secs(2)));
    })
    .await;
    let p = jwt_project(
        &fake,
        "    delivery: { batch_size: 5, concurrency: 1 }\n",
        "upsert",
    );
    let model = people(0..30);
    set_model(&p, &model);
    let started = Instant::now();
    run(&p).await;
    let took = started.elapsed();
    let stats = fake.faults().stats();
    assert!(stats.rate_limited >= 1, "{stats:?}");
    // 2 reads + 6 writes through a window of 4 per 2 s: at least one full wait.
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert_eq!(store(&fake), model);
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_percent_server_errors_lose_and_duplicate_nothing() {
    let fake = org(|c| {
        c.faults.error_ratio = 0.3;
        c.faults.error_seed = 42;
    })
    .await;
    let p = jwt_project(&fake, "    delivery: { batch_size: 10 }\n", "mirror");
    let model = people(0..120);
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(v["creates"], 120, "{v}");
    assert!(
        fake.faults().stats().server_errors >= 5,
        "{:?}",
        fake.faults().stats()
    );
    assert_eq!(store(&fake), model);
    // Updates and deletes through the same errors.
    let mut next = people(0..100);
    for r in next.iter_mut().take(30) {
        r.2.push('*');
    }
    set_model(&p, &next);
    let v = run(&p).await;
    assert_eq!(
        (v["updates"].clone(), v["deletes"].clone()),
        (json!(30), json!(20)),
        "{v}"
    );
    assert_eq!(store(&fake), sorted(next));
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_requests_time_out_and_are_retried() {
    let fake = org(|_| {}).await;
    // The prepare query, the baseline listing and the first write each hang once.
    fake.faults().timeout_next(3);
    let p = jwt_project(
        &fake,
        "    delivery: { timeout_seconds: 1, batch_size: 5 }\n",
        "upsert",
    );
    let model = people(0..12);
    set_model(&p, &model);
    let started = Instant::now();
    run(&p).await;
    assert_eq!(fake.faults().stats().timeouts, 3);
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(store(&fake), model);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_within_the_timeout_are_waited_for() {
    let fake = org(|_| {}).await;
    fake.faults().set_slow(Duration::from_millis(700));
    let p = jwt_project(
        &fake,
        "    delivery: { timeout_seconds: 2, batch_size: 4 }\n",
        "upsert",
    );
    let model = people(0..12);
    set_model(&p, &model);
    let v = run(&p).await;
    assert_eq!(v["creates"], 12, "{v}");
    assert_eq!(fake.faults().stats().timeouts, 0);
    assert!(
        fake.requests().iter().all(|r| r.status != 504),
        "no request was abandoned"
    );
    assert_eq!(store(&fake), model);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_run_goes_through_bulk_ingest_jobs() {
    let fake = org(|_| {}).await;
    fake.add_rule("Contact", Rule::contains("Email", "@"));
    fake.inject(RecordFault::unable_to_lock_row(
        "Contact", "Ext__c", "c010", 1,
    ));
    let p = jwt_project(&fake, "    bulk_threshold: 50\n", "mirror");
    let mut model = people(0..260);
    model[7].1 = "broken".into();
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 1, "one record is rejected: {v}");
    assert_eq!(
        (v["creates"].clone(), v["rejected"].clone()),
        (json!(259), json!(1)),
        "{v}"
    );
    let (_, errors) = p.run_json(&["errors", v["run_id"].as_str().unwrap()]).await;
    let errors = errors["errors"].clone();
    assert_eq!(errors[0]["key"], "c007", "{errors}");
    assert_eq!(
        errors[0]["code"], "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "{errors}"
    );
    let jobs = fake.bulk_jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["operation"], "upsert");
    assert_eq!(jobs[0]["externalIdFieldName"], "Ext__c");
    assert_eq!(jobs[0]["state"], "JobComplete");
    assert_eq!(jobs[0]["numberRecordsProcessed"], 260);
    let uploads: Vec<_> = writes(&fake)
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].records_in_batch, Some(260));
    // The locked record failed in the job and was re-sent alone, through Collections.
    assert_eq!(collection_sizes(&fake), vec![1]);
    let mut delivered = model.clone();
    delivered.remove(7);
    assert_eq!(store(&fake), sorted(delivered));

    // Next run: 210 records leave the model (a bulk delete job, ids found with SOQL); the
    // fixed record and 10 changed ones are 11 upserts, a batch small enough for Collections.
    model[7].1 = "p7@example.com".into();
    let mut next: Vec<Row> = model[..50].to_vec();
    for r in next.iter_mut().skip(20).take(10) {
        r.2.push('*');
    }
    set_model(&p, &next);
    let v = run(&p).await;
    assert_eq!(counts(&v)[..3], [1, 10, 210], "{v}");
    let jobs = fake.bulk_jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[1]["operation"], "delete");
    assert_eq!(jobs[1]["numberRecordsProcessed"], 210);
    assert_eq!(fake.deleted_ids().len(), 210);
    assert_eq!(store(&fake), sorted(next.clone()));
    let v = run(&p).await;
    assert_eq!(v["unchanged"], 50, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_insert_skips_existing_keys_and_bulk_update_skips_missing_ones() {
    let fake = org(|_| {}).await;
    let p = jwt_project(&fake, "    bulk_threshold: 5\n", "append");
    set_model(&p, &people(0..3));
    run(&p).await;
    // Created elsewhere after the first run: the insert job reports DUPLICATE_VALUE.
    seed(&fake, &[row("c004", "crm@x.com", "From the CRM")]);
    set_model(&p, &people(0..250));
    let v = run(&p).await;
    assert_eq!(
        (v["creates"].clone(), v["skipped"].clone()),
        (json!(246), json!(1)),
        "{v}"
    );
    let jobs = fake.bulk_jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["operation"], "insert");
    let mut expected = people(0..250);
    expected[4] = row("c004", "crm@x.com", "From the CRM");
    assert_eq!(store(&fake), expected);

    let q = jwt_project(&fake, "    bulk_threshold: 5\n", "update");
    let mut changed = people(0..250);
    for r in changed.iter_mut() {
        r.2 = format!("{} (updated)", r.2);
    }
    changed.push(row("c999", "nobody@x.com", "Missing"));
    set_model(&q, &changed);
    let v = run(&q).await;
    assert_eq!(
        (v["updates"].clone(), v["skipped"].clone()),
        (json!(250), json!(1)),
        "{v}"
    );
    let jobs = fake.bulk_jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1]["operation"], "update");
    changed.pop();
    assert_eq!(store(&fake), changed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_job_that_outlives_its_deadline_is_aborted_and_nothing_is_lost() {
    let fake = org(|_| {}).await;
    fake.set_bulk_processing_delay(Duration::from_secs(30));
    let p = jwt_project(
        &fake,
        "    bulk_threshold: 10\n    delivery: { timeout_seconds: 2, max_attempts: 2 }\n",
        "upsert",
    );
    let model = people(0..230);
    set_model(&p, &model);
    let (code, v) = p.run_json(&["run", "contacts"]).await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed", "{v}");
    assert_eq!(v["failed"], 230, "{v}");
    let jobs = fake.bulk_jobs();
    assert_eq!(jobs.len(), 2, "one job per attempt: {jobs:?}");
    assert!(jobs.iter().all(|j| j["state"] == "Aborted"), "{jobs:?}");
    assert!(store(&fake).is_empty(), "an aborted job writes nothing");

    // Salesforce is quick again: the failed records are planned and delivered.
    fake.set_bulk_processing_delay(Duration::ZERO);
    let v = run(&p).await;
    assert_eq!(v["creates"], 230, "{v}");
    assert_eq!(store(&fake), model);
}
