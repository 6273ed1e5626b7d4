//! Every sync mode beyond the product documents' worked example, against a real PostgreSQL
//! destination table and an SQLite warehouse, driven through the `retl` binary: later runs,
//! delete scopes, lookups of records created behind retl's back, resyncs. The worked example
//! itself (and its idempotent re-run) is the destination suite's, run for every destination
//! (`tests/tests/destination_postgres.rs`).

use retl_tests::fixtures::{people, people_project, set_model};
use retl_tests::{Pg, Project};
use serde_json::{json, Value};

async fn setup(test: &str, mode: &str, dest: &[(i64, &str)], extra: &str) -> (Project, Pg) {
    people_project(test, mode, dest, extra).await
}

fn run(p: &Project) -> Value {
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "run failed: {v}");
    assert_eq!(v["status"], "succeeded", "{v}");
    v
}

fn counts(v: &Value) -> [u64; 6] {
    [
        "creates",
        "updates",
        "deletes",
        "unchanged",
        "skipped",
        "rejected",
    ]
    .map(|k| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {v}"))
    })
}

const SEED_DEST: &[(i64, &str)] = &[(1, "Alice"), (2, "Bobby"), (4, "Dave")];
const SEED_MODEL: &[(i64, &str)] = &[(1, "Alice"), (2, "Bob*"), (3, "Carol")];

#[tokio::test]
async fn mirror_deletes_dave_on_the_first_run() {
    let (p, pg) = setup("mirror", "mirror", SEED_DEST, "").await;
    set_model(&p, SEED_MODEL);
    let v = run(&p);
    assert_eq!(counts(&v), [1, 1, 1, 1, 0, 0], "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob*"},{"id":3,"name":"Carol"}])
    );
    // Later runs delete what leaves the model.
    set_model(&p, &[(1, "Alice"), (2, "Bob*")]);
    let v = run(&p);
    assert_eq!(counts(&v), [0, 0, 1, 2, 0, 0], "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob*"}])
    );
}

#[tokio::test]
async fn mirror_with_synced_scope_keeps_records_retl_did_not_write() {
    let (p, pg) = setup(
        "mirror_scope",
        "mirror",
        SEED_DEST,
        "delete_scope: synced\n",
    )
    .await;
    set_model(&p, SEED_MODEL);
    let v = run(&p);
    assert_eq!(
        counts(&v),
        [1, 1, 0, 1, 0, 0],
        "Dave was not synced by retl: {v}"
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM people WHERE id = 4").await,
        1
    );
    // Carol was created by retl: when she leaves the model she is deleted.
    set_model(&p, &[(1, "Alice"), (2, "Bob*")]);
    let v = run(&p);
    assert_eq!(v["deletes"], 1, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob*"},{"id":4,"name":"Dave"}])
    );
}

#[tokio::test]
async fn append_creates_new_keys_only_and_remembers_old_ones() {
    let (p, pg) = setup("append", "append", &[], "").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let v = run(&p);
    assert_eq!(counts(&v), [2, 0, 0, 0, 0, 0], "{v}");
    set_model(&p, &[(1, "Alice*"), (2, "Bob"), (3, "Carol")]);
    let v = run(&p);
    assert_eq!(v["creates"], 1, "{v}");
    assert_eq!(v["updates"], 0, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"},{"id":3,"name":"Carol"}]),
        "Alice stays Alice: append never updates"
    );
    // Bob leaves the model and comes back: he was synced before, so nothing is sent.
    set_model(&p, &[(1, "Alice*"), (3, "Carol")]);
    let v = run(&p);
    assert_eq!(v["deletes"], 0, "{v}");
    set_model(&p, &[(1, "Alice*"), (2, "Bob"), (3, "Carol")]);
    let v = run(&p);
    assert_eq!(v["creates"], 0, "{v}");
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 3);
}

#[tokio::test]
async fn insert_creates_keys_the_destination_lacks() {
    let (p, pg) = setup("insert", "insert", &[(1, "Alice")], "").await;
    set_model(&p, &[(1, "Alice*"), (2, "Bob")]);
    let v = run(&p);
    assert_eq!(v["creates"], 1, "{v}");
    assert_eq!(v["updates"], 0, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}])
    );
    // A record created in the destination by someone else after the baseline is found by
    // lookup and not inserted again.
    pg.exec("INSERT INTO people VALUES (3, 'Carol (CRM)')")
        .await;
    set_model(&p, &[(1, "Alice*"), (2, "Bob"), (3, "Carol")]);
    let v = run(&p);
    assert_eq!(v["creates"], 0, "{v}");
    assert_eq!(v["skipped"], 2, "Alice* and Carol exist: {v}");
    assert_eq!(
        pg.count("SELECT count(*) FROM people WHERE name = 'Carol (CRM)'")
            .await,
        1
    );
}

#[tokio::test]
async fn update_changes_existing_records_and_skips_the_rest() {
    let (p, pg) = setup("update", "update", &[(1, "Alice"), (2, "Bob")], "").await;
    set_model(&p, &[(1, "Alice*"), (2, "Bob"), (3, "Carol")]);
    let v = run(&p);
    assert_eq!(
        counts(&v),
        [0, 1, 0, 1, 1, 0],
        "Carol is skipped and counted: {v}"
    );
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice*"},{"id":2,"name":"Bob"}])
    );
    // Once Carol exists in the destination, the next run updates her.
    pg.exec("INSERT INTO people VALUES (3, 'C.')").await;
    let v = run(&p);
    assert_eq!(v["updates"], 1, "{v}");
    assert_eq!(
        pg.count("SELECT count(*) FROM people WHERE id = 3 AND name = 'Carol'")
            .await,
        1
    );
}

#[tokio::test]
async fn delete_only_removes_keys_that_left_the_model_and_nothing_else() {
    let (p, pg) = setup(
        "delete_only",
        "delete_only",
        &[(1, "Alice"), (2, "Bob"), (3, "Carol")],
        "",
    )
    .await;
    set_model(&p, &[(1, "Alice*"), (2, "Bob"), (4, "Dave")]);
    let v = run(&p);
    assert_eq!(v["deletes"], 1, "{v}");
    assert_eq!(v["creates"], 0, "{v}");
    assert_eq!(v["updates"], 0, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}])
    );
}

#[tokio::test]
async fn delete_removes_the_records_the_model_names() {
    let (p, pg) = setup(
        "delete",
        "delete",
        &[(1, "Alice"), (2, "Bob"), (3, "Carol")],
        "",
    )
    .await;
    // The model is a list of erasure requests; 9 is not in the destination.
    set_model(&p, &[(2, "erase"), (9, "erase")]);
    let v = run(&p);
    assert_eq!(v["deletes"], 1, "{v}");
    assert_eq!(v["skipped"], 1, "the absent key is skipped: {v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":3,"name":"Carol"}])
    );
    // The same requests again: nothing left to do.
    let v = run(&p);
    assert_eq!(v["deletes"], 0, "{v}");
}

#[tokio::test]
async fn a_mapping_change_forces_a_full_resync_with_the_reason() {
    let (p, pg) = setup("resync", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    run(&p);
    pg.exec("ALTER TABLE people ADD COLUMN label text").await;
    p.write(
        "syncs/people.yaml",
        &format!(
            "name: people\nsource: {{ connection: warehouse, sql: \"select id, name from model\" }}\n\
             primary_key: id\ndestination: {{ connection: app_db, object: {} }}\n\
             mapping: {{ id: id, name: name, label: name }}\nmode: upsert\n",
            pg.table("people")
        ),
    );
    let v = run(&p);
    assert_eq!(v["updates"], 2, "every row is re-sent once: {v}");
    assert!(
        v["resync_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("mapping changed"),
        "{v}"
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM people WHERE label = name")
            .await,
        2
    );
    let v = run(&p);
    assert_eq!(v["updates"], 0, "only once: {v}");
    assert!(v["resync_reason"].is_null(), "{v}");
}

#[tokio::test]
async fn full_resync_on_request_re_sends_unchanged_rows() {
    let (p, pg) = setup("full_resync", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    run(&p);
    // Someone edits the destination behind retl's back; a full resync repairs it.
    pg.exec("UPDATE people SET name = 'edited'").await;
    let (code, v) = p.retl_json(&["run", "people", "--full-resync"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["updates"], 2, "{v}");
    assert_eq!(
        people(&pg).await,
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}])
    );
}

#[tokio::test]
async fn a_new_destination_object_starts_a_new_key_set_from_its_own_baseline() {
    let (p, pg) = setup("identity", "mirror", &[], "").await;
    pg.exec("CREATE TABLE people_v2 (id integer PRIMARY KEY, name text NOT NULL); INSERT INTO people_v2 VALUES (1, 'Alice'), (9, 'Stale')").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    run(&p);
    p.write(
        "syncs/people.yaml",
        &retl_tests::fixtures::people_sync(&pg, "mirror", "")
            .replace(&pg.table("people"), &pg.table("people_v2")),
    );
    let v = run(&p);
    assert!(
        v["resync_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("destination object changed"),
        "{v}"
    );
    // The new table's own contents are the baseline: Stale is not in the model and goes, Bob
    // is missing; the change forces a full resync, so Alice is sent once more.
    assert_eq!(counts(&v), [1, 1, 1, 0, 0, 0], "{v}");
    assert_eq!(
        Value::Array(pg.rows("SELECT id, name FROM people_v2 ORDER BY id").await),
        json!([{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}])
    );
    // The old table is left alone.
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 2);
}
