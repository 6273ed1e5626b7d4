//! Bad rows never stop a run or get lost: null and duplicate keys are rejected with their
//! reason, a record the destination refuses is isolated, logged and planned again.

use retl_tests::fixtures::{people_sync, project_yaml};
use retl_tests::{Pg, Project};

#[tokio::test]
async fn null_duplicate_and_refused_rows_are_rejected_and_the_rest_proceeds() {
    let pg = Pg::new("bad_rows").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL CHECK (name <> 'INVALID'))").await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, "upsert", ""));
    p.warehouse(
        "CREATE TABLE model (id INTEGER, name TEXT);
         INSERT INTO model VALUES (1, 'Alice'), (NULL, 'Ghost'), (5, 'Five A'), (5, 'Five B'),
                                  (6, 'INVALID'), (7, 'Gina');",
    );
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "partially_failed", "{v}");
    assert_eq!(v["creates"], 2, "{v}");
    assert_eq!(
        v["rejected"], 4,
        "1 null key + 2 copies of key 5 + 1 refused: {v}"
    );
    let rows = pg.rows("SELECT id FROM people ORDER BY id").await;
    assert_eq!(
        serde_json::json!(rows),
        serde_json::json!([{"id":1},{"id":7}])
    );

    let run_id = v["run_id"].as_str().unwrap().to_string();
    let (_, errors) = p.retl_json(&["errors", &run_id]);
    let errors = errors["errors"].clone();
    let codes: Vec<&str> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"null_key"), "{errors}");
    assert!(codes.contains(&"duplicate_key"), "{errors}");
    assert!(
        codes.contains(&"23514"),
        "PostgreSQL's check_violation code: {errors}"
    );
    let refused = errors
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == "23514")
        .unwrap();
    assert_eq!(refused["key"], "6");
    assert_eq!(
        refused["values"]["name"], "INVALID",
        "the payload is kept for the operator"
    );
    let text = p.retl(&["errors", &run_id]);
    assert!(
        text.stdout.contains("4 records in run") && text.stdout.contains(": 4 rejected, 0 failed"),
        "{}",
        text.stdout
    );

    // A refused record is planned again by the next run, and delivered once fixed.
    let (_, v) = p.retl_json(&["run", "people"]);
    assert_eq!(v["rejected"], 4, "{v}");
    p.warehouse("UPDATE model SET name = 'Fixed' WHERE id = 6; DELETE FROM model WHERE id IS NULL; DELETE FROM model WHERE name = 'Five B';");
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 2, "6 and 5: {v}");
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 4);
}

#[tokio::test]
async fn a_model_column_the_sync_needs_is_reported_as_a_config_error() {
    let pg = Pg::new("missing_column").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, name text)")
        .await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, "upsert", ""));
    p.warehouse(
        "CREATE TABLE model (id INTEGER, full_name TEXT); INSERT INTO model VALUES (1, 'A');",
    );
    p.write(
        "syncs/people.yaml",
        &people_sync(&pg, "upsert", "").replace(
            "select id, name from model",
            "select id, full_name from model",
        ),
    );
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 2, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("column `name` (mapped to `name`)"), "{err}");
    assert!(err.contains("it returns: id, full_name"), "{err}");
}

#[tokio::test]
async fn a_destination_table_without_a_key_constraint_is_refused_before_writing() {
    let pg = Pg::new("no_pk").await;
    pg.exec("CREATE TABLE people (id integer, name text)").await;
    let p = Project::new();
    p.write("retl.yaml", &project_yaml(&pg));
    p.write("syncs/people.yaml", &people_sync(&pg, "upsert", ""));
    p.warehouse("CREATE TABLE model (id INTEGER, name TEXT); INSERT INTO model VALUES (1, 'A');");
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("ADD PRIMARY KEY (id)"),
        "{v}"
    );
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 0);
}
