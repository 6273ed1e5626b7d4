//! Safety rules before any write: empty-result abort, the delete threshold with approval,
//! rejection, stale plans, expiry, max_deletes and the deletion preview.

use retl_tests::fixtures::{people, people_project, people_sync, set_model};
use serde_json::json;

const FOUR: &[(i64, &str)] = &[(1, "Alice"), (2, "Bob"), (3, "Carol"), (4, "Dave")];

#[tokio::test]
async fn an_empty_model_aborts_mirror_and_delete_only_before_any_write() {
    for mode in ["mirror", "delete_only"] {
        let (p, pg) = people_project(&format!("empty_{mode}"), mode, FOUR, "").await;
        set_model(&p, &[]);
        let (code, v) = p.retl_json(&["run", "people"]);
        assert_eq!(code, 3, "{v}");
        assert_eq!(v["status"], "aborted", "{v}");
        assert!(v["error"].as_str().unwrap().contains("0 rows"), "{v}");
        assert_eq!(
            pg.count("SELECT count(*) FROM people").await,
            4,
            "nothing deleted"
        );
    }
}

#[tokio::test]
async fn deletes_over_the_threshold_wait_for_approval_then_apply_exactly_the_plan() {
    let (p, pg) = people_project("approve", "mirror", FOUR, "").await;
    set_model(&p, &[(1, "Alice")]);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["status"], "awaiting_approval", "{v}");
    assert_eq!(v["deletes"], 3, "{v}");
    assert!(
        v["approval"]["reason"].as_str().unwrap().contains("75.0%"),
        "{v}"
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM people").await,
        4,
        "nothing written yet"
    );
    let run_id = v["run_id"].as_str().unwrap().to_string();

    // The lock stays with the waiting run.
    let (code, refused) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 4, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("awaiting_approval"),
        "{refused}"
    );

    // The reviewer sees what would be deleted, with values.
    let shown = p.retl(&["runs", "show", &run_id]);
    assert!(
        shown.stdout.contains("would be deleted"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("Dave"), "{}", shown.stdout);

    // The model changes meanwhile; approval still applies the reviewed plan, not the new model.
    set_model(&p, &[(1, "Alice"), (99, "Zed")]);
    let (code, v) = p.retl_json(&[
        "approve",
        &run_id,
        "--reason",
        "expected churn",
        "--by",
        "ops",
    ]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["deletes"], 3, "{v}");
    assert_eq!(v["approval"]["decided_by"], "ops", "{v}");
    assert_eq!(people(&pg).await, json!([{"id":1,"name":"Alice"}]));

    // The lock is free again.
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 1, "Zed: {v}");
}

#[tokio::test]
async fn a_rejected_run_ends_without_writes_and_frees_the_lock() {
    let (p, pg) = people_project("reject", "mirror", FOUR, "").await;
    set_model(&p, &[(1, "Alice")]);
    let (_, v) = p.retl_json(&["run", "people"]);
    let run_id = v["run_id"].as_str().unwrap().to_string();
    let (code, v) = p.retl_json(&["reject", &run_id, "--reason", "model bug"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "rejected", "{v}");
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 4);
    let (code, again) = p.retl_json(&["approve", &run_id]);
    assert_eq!(code, 2, "a decided run cannot be approved: {again}");
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 3, "a new run plans again and stops again: {v}");
    assert_eq!(v["status"], "awaiting_approval");
}

#[tokio::test]
async fn approval_of_a_stale_plan_is_refused() {
    let (p, pg) = people_project("stale", "mirror", FOUR, "").await;
    set_model(&p, &[(1, "Alice")]);
    let (_, v) = p.retl_json(&["run", "people"]);
    let run_id = v["run_id"].as_str().unwrap().to_string();
    // The sync definition changes after the plan was made.
    p.write(
        "syncs/people.yaml",
        &people_sync(&pg, "mirror", "description: edited\n"),
    );
    let out = p.retl(&["approve", &run_id]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("stale"), "{}", out.stderr);
    assert_eq!(
        pg.count("SELECT count(*) FROM people").await,
        4,
        "nothing applied"
    );
    let (_, shown) = p.retl_json(&["runs", "show", &run_id]);
    assert_eq!(shown["status"], "expired", "{shown}");
}

#[tokio::test]
async fn an_unanswered_approval_request_expires() {
    let (p, pg) = people_project(
        "expiry",
        "mirror",
        FOUR,
        "safety: { approval_timeout_hours: 0.0003 }\n",
    )
    .await;
    set_model(&p, &[(1, "Alice")]);
    let (_, v) = p.retl_json(&["run", "people"]);
    assert_eq!(v["status"], "awaiting_approval", "{v}");
    let run_id = v["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, v) = p.retl_json(&["approve", &run_id]);
    assert_eq!(code, 2, "{v}");
    assert!(v["error"].as_str().unwrap().contains("expired"), "{v}");
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 4);
}

#[tokio::test]
async fn max_deletes_is_an_absolute_limit() {
    let (p, pg) = people_project(
        "max_deletes",
        "mirror",
        FOUR,
        "safety: { max_deletes: 1 }\n",
    )
    .await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(
        code, 3,
        "2 deletes are 50%, within the threshold, but above max_deletes: {v}"
    );
    assert!(
        v["approval"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_deletes"),
        "{v}"
    );
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 4);
}

#[tokio::test]
async fn plan_shows_the_records_a_first_mirror_run_would_delete() {
    let (p, pg) = people_project(
        "preview",
        "mirror",
        &[(1, "Alice"), (2, "Bobby"), (4, "Dave")],
        "",
    )
    .await;
    set_model(&p, &[(1, "Alice"), (2, "Bob*"), (3, "Carol")]);
    let out = p.retl(&["plan", "people", "--show-deletes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("+ 1 to create, ~ 1 to update, - 1 to delete"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#"- 4  {"id":4,"name":"Dave"}"#),
        "{}",
        out.stdout
    );
    let (_, v) = p.retl_json(&["plan", "people", "--show-deletes"]);
    assert_eq!(v["status"], "planned");
    assert_eq!(v["deletes_preview"]["entries"][0]["key"], "4", "{v}");
    assert_eq!(
        pg.count("SELECT count(*) FROM people").await,
        3,
        "a plan writes nothing"
    );
}
