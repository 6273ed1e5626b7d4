//! State loss is noticed: a key set that no longer holds what the sync last recorded
//! (rows deleted from `.retl/state.db`, the sync state lost with its shard count) is never
//! trusted. A mirror into a destination that can list re-lists it and deletes what left the
//! model; where re-listing cannot restore what retl delivered (`delete_scope: synced`) the
//! run refuses and names the fix.

use retl_tests::fixtures::{people, people_project, set_model};
use retl_tests::Project;
use serde_json::json;

/// Runs SQL against the project's local state, as a user (or a bad restore) might.
fn state_sql(p: &Project, sql: &str) {
    let c = rusqlite::Connection::open(p.path().join(".retl/state.db")).expect("open state");
    c.execute_batch(sql).expect("state SQL");
}

const FIVE: &[(i64, &str)] = &[(1, "A"), (2, "B"), (3, "C"), (4, "D"), (5, "E")];
const THREE: &[(i64, &str)] = &[(1, "A"), (2, "B"), (3, "C")];

fn first_three() -> serde_json::Value {
    json!([{"id": 1, "name": "A"}, {"id": 2, "name": "B"}, {"id": 3, "name": "C"}])
}

#[tokio::test]
async fn an_emptied_key_set_is_rebuilt_from_the_destination() {
    let (p, pg) = people_project("state_loss_empty", "mirror", &[], "").await;
    set_model(&p, FIVE);
    assert_eq!(p.retl_json(&["run", "people"]).0, 0);
    state_sql(&p, "DELETE FROM keyset");

    set_model(&p, THREE);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["deletes"], 2, "the departed rows are deleted: {v}");
    let why = v["rebaseline_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("where the last run recorded 5") && why.contains("listed again"),
        "{v}"
    );
    assert_eq!(people(&pg).await, first_three());

    let out = p.retl(&["runs", "show", v["run_id"].as_str().unwrap()]);
    assert!(out.stdout.contains("Key set rebuilt:"), "{}", out.stdout);
    assert_eq!(
        (
            v["keyset_after"]["shards"].as_u64(),
            v["keyset_after"]["entries"].as_u64()
        ),
        (Some(16), Some(5)),
        "what the key set held after the run (three records, two deletion tombstones): {v}"
    );
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(
        (
            code,
            v["rebaseline_reason"].is_null(),
            v["deletes"].as_u64()
        ),
        (0, true, Some(0)),
        "the rebuilt key set is the new record: {v}"
    );
}

#[tokio::test]
async fn a_lost_sync_state_and_a_changed_shard_count_keep_the_key_set_readable() {
    // `delete_scope: synced`: only what retl delivered may go, so the key set's own record
    // of what it delivered must survive; a re-listing could not tell.
    let (p, pg) =
        people_project("state_loss_shards", "mirror", &[], "delete_scope: synced\n").await;
    set_model(&p, FIVE);
    assert_eq!(p.retl_json(&["run", "people"]).0, 0);
    // The sync state (with the shard count fixed at the first run) goes, and the file now
    // asks for another shard count: the key set is still read as it was written, with the
    // shard count the last run recorded.
    state_sql(&p, "DELETE FROM sync_state");
    let sync = std::fs::read_to_string(p.path().join("syncs/people.yaml")).unwrap();
    p.write("syncs/people.yaml", &format!("{sync}shards: 4\n"));

    set_model(&p, THREE);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].as_u64(), v["deletes"].as_u64()),
        (Some(0), Some(2)),
        "{v}"
    );
    assert_eq!(people(&pg).await, first_three());
}

#[tokio::test]
async fn a_key_set_that_cannot_be_rebuilt_refuses_and_names_the_fix() {
    let (p, pg) = people_project("state_loss_scope", "mirror", &[], "delete_scope: synced\n").await;
    set_model(&p, FIVE);
    assert_eq!(p.retl_json(&["run", "people"]).0, 0);
    state_sql(&p, "DELETE FROM keyset WHERE key IN ('4', '5')");

    set_model(&p, THREE);
    let out = p.retl(&["run", "people"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("where the last run recorded 5")
            && text.contains("retl verify people --repair")
            && text.contains("--full-resync"),
        "{text}"
    );
    assert!(!text.contains("Applied:"), "nothing was applied: {text}");
    assert_eq!(people(&pg).await.as_array().unwrap().len(), 5);

    // The named fix: verify rebuilds the key set from the destination, and the next run
    // goes ahead (the re-listed records are the destination's, so synced scope keeps them).
    let (code, v) = p.retl_json(&["verify", "people", "--repair"]);
    assert_eq!(code, 0, "{v}");
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "succeeded", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_to_a_receiver_that_cannot_list_refuses_instead_of_sending_again() {
    let hook = retl_tests::http::WebhookReceiver::start().await;
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{}\" }}\n",
            hook.url
        ),
    );
    p.write(
        "syncs/people.yaml",
        "name: people\nsource: { connection: warehouse, sql: \"select id, name from model\" }\n\
         primary_key: id\ndestination: { connection: hook, object: people }\n\
         mapping: { id: id, name: name }\nmode: append\n",
    );
    set_model(&p, THREE);
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(hook.accepted().len(), 3);
    state_sql(&p, "DELETE FROM keyset");

    let out = p.run(&["run", "people"]).await;
    let text = format!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "{text}");
    assert!(
        text.contains("where the last run recorded 3")
            && text.contains("cannot list its records")
            && text.contains("retl run people --full-resync"),
        "{text}"
    );
    assert_eq!(hook.accepted().len(), 3, "nothing was created twice");

    // The user accepts: a full resync sends every row again and records the new key set.
    let (code, v) = p.run_json(&["run", "people", "--full-resync"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(3)), "{v}");
    let (code, v) = p.run_json(&["run", "people"]).await;
    assert_eq!((code, v["creates"].as_u64()), (0, Some(0)), "{v}");
}
