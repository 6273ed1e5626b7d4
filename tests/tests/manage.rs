//! Managing syncs: preview, pause/resume, clone, config versions with notes, run history.

use retl_tests::fixtures::{people, people_project, set_model};
use serde_json::json;

#[tokio::test]
async fn preview_counts_rows_and_reports_key_problems() {
    let (p, _pg) = people_project("preview_rows", "upsert", &[], "").await;
    p.warehouse(
        "CREATE TABLE model (id INTEGER, name TEXT);
         INSERT INTO model VALUES (1, 'A'), (2, 'B'), (2, 'B again'), (NULL, 'nobody');",
    );
    let (code, v) = p.retl_json(&["preview", "people", "--limit", "2"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["rows"], 4);
    assert_eq!(v["sample"].as_array().unwrap().len(), 2);
    assert_eq!(v["sample"][0], json!({"id": 1, "name": "A"}));
    assert_eq!(v["bad_keys"], 1);
    assert_eq!(v["duplicate_keys"], 1);
    assert_eq!(v["duplicate_rows"], 2);
    let out = p.retl(&["preview", "people"]);
    assert!(out.stdout.contains("Key problems"), "{}", out.stdout);
}

#[tokio::test]
async fn a_paused_sync_refuses_to_run_until_resumed() {
    let (p, pg) = people_project("pause", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice")]);
    assert_eq!(p.retl(&["pause", "people"]).code, 0);
    let out = p.retl(&["run", "people"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("paused"), "{}", out.stderr);
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 0);
    assert_eq!(p.retl(&["resume", "people"]).code, 0);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(people(&pg).await, json!([{"id":1,"name":"Alice"}]));
}

#[tokio::test]
async fn clone_writes_a_valid_sync_that_runs_on_its_own() {
    let (p, pg) = people_project("clone", "upsert", &[], "schedule: \"rate(1 hour)\"\n").await;
    pg.exec("CREATE TABLE people_sandbox (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let out = p.retl(&[
        "clone",
        "people",
        "people_test",
        "--object",
        &pg.table("people_sandbox"),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(p.path().join("syncs/people_test.yaml")).unwrap();
    assert!(text.contains("Cloned from `people`"), "{text}");
    assert!(
        !text.contains("rate(1 hour)"),
        "schedules are not copied: {text}"
    );
    let (code, v) = p.retl_json(&["run", "people_test"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 2);
    assert_eq!(pg.count("SELECT count(*) FROM people_sandbox").await, 2);
    assert_eq!(
        pg.count("SELECT count(*) FROM people").await,
        0,
        "the original is untouched"
    );
    // Cloning onto an existing name is refused.
    let out = p.retl(&["clone", "people", "people_test"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
}

#[tokio::test]
async fn versions_record_each_change_with_its_note() {
    let (p, pg) = people_project("history", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice")]);
    assert_eq!(p.retl(&["save", "people", "-m", "first version"]).code, 0);
    p.retl_json(&["run", "people"]);
    p.write(
        "syncs/people.yaml",
        &retl_tests::fixtures::people_sync(&pg, "mirror", "description: now a mirror\n"),
    );
    let (_, v) = p.retl_json(&["run", "people", "--note", "switch to mirror"]);
    assert_eq!(v["config_version"], 2, "{v}");
    let (_, versions) = p.retl_json(&["history", "people"]);
    let versions = versions["versions"].clone();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["note"], "first version");
    assert_eq!(versions[1]["note"], "switch to mirror");
    assert_eq!(versions[1]["definition"]["mode"], "mirror");
    let out = p.retl(&["history", "people"]);
    assert!(
        out.stdout.contains("changed: description, mode"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn run_history_lists_runs_newest_first_with_counts_and_timings() {
    let (p, _pg) = people_project("history_runs", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice")]);
    let (_, first) = p.retl_json(&["run", "people"]);
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (_, second) = p.retl_json(&["run", "people"]);
    let (_, runs) = p.retl_json(&["runs", "people"]);
    let runs = runs["runs"].clone();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["run_id"], second["run_id"]);
    assert_eq!(runs[1]["run_id"], first["run_id"]);
    let (_, shown) = p.retl_json(&["runs", "show", first["run_id"].as_str().unwrap()]);
    assert_eq!(shown["creates"], 1);
    assert_eq!(shown["config_version"], 1);
    for phase in ["extract_ms", "plan_ms", "apply_ms"] {
        assert!(shown["timings_ms"][phase].is_u64(), "{shown}");
    }
    let out = p.retl(&["runs"]);
    assert!(out.stdout.contains("succeeded"), "{}", out.stdout);
    let out = p.retl(&["runs", "show", "nope"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("run nope not found"), "{}", out.stderr);
}
