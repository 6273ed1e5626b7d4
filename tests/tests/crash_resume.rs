//! A run killed mid-apply and run again leaves the destination as the mode promises: no lost
//! record, no duplicate create. Also: one run per sync at a time.

use std::time::{Duration, Instant};

use retl_tests::fixtures::{people_sync, set_model};
use retl_tests::{Pg, Project};

const ROWS: i64 = 1500;

async fn slow_project(test: &str, mode: &str) -> (Project, Pg) {
    let pg = Pg::new(test).await;
    pg.exec(
        "CREATE TABLE people (id integer PRIMARY KEY, name text NOT NULL);
         CREATE FUNCTION slow_row() RETURNS trigger AS $$
           BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON people
           FOR EACH ROW EXECUTE FUNCTION slow_row();",
    )
    .await;
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             app_db: {{ type: postgres, url: \"{}\", delivery: {{ batch_size: 20, concurrency: 2 }} }}\n",
            pg.url
        ),
    );
    p.write("syncs/people.yaml", &people_sync(&pg, mode, ""));
    let rows: Vec<(i64, String)> = (1..=ROWS).map(|i| (i, format!("person {i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    (p, pg)
}

async fn kill_mid_apply(p: &Project, pg: &Pg) {
    let mut child = p.command(&["run", "people"]).spawn().expect("retl starts");
    let start = Instant::now();
    loop {
        let n = pg.count("SELECT count(*) FROM people").await;
        if n >= 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "apply never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second run of the same sync is refused while the first holds the lock.
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 4, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("already running"),
        "{v}"
    );

    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let n = pg.count("SELECT count(*) FROM people").await;
    assert!(n < ROWS, "killed mid-apply, {n} of {ROWS} written");
}

async fn assert_complete(pg: &Pg) {
    assert_eq!(pg.count("SELECT count(*) FROM people").await, ROWS);
    assert_eq!(
        pg.count("SELECT count(DISTINCT id) FROM people").await,
        ROWS
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM people WHERE name = 'person ' || id")
            .await,
        ROWS,
        "every record holds the model's values"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_upsert_run_resumes_without_loss() {
    let (p, pg) = slow_project("crash_upsert", "upsert").await;
    kill_mid_apply(&p, &pg).await;
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_complete(&pg).await;
    // The interrupted run is recorded as failed, its lock taken over.
    let (_, runs) = p.retl_json(&["runs", "people"]);
    let runs = runs["runs"].clone();
    let interrupted = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["error_name"] == "Retl.Interrupted");
    assert!(interrupted.is_some(), "{runs}");
    assert_eq!(interrupted.unwrap()["status"], "failed");
    // Nothing left to do.
    let (_, v) = p.retl_json(&["run", "people"]);
    assert_eq!(v["unchanged"], ROWS, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_append_run_creates_each_record_once() {
    let (p, pg) = slow_project("crash_append", "append").await;
    kill_mid_apply(&p, &pg).await;
    let before = pg.count("SELECT count(*) FROM people").await;
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_complete(&pg).await;
    // Records written but not yet acknowledged in the key set when the process died are
    // found to exist and skipped, never created twice.
    let created = v["creates"].as_i64().unwrap();
    let skipped = v["skipped"].as_i64().unwrap();
    let unchanged = v["unchanged"].as_i64().unwrap();
    assert_eq!(created + skipped + unchanged, ROWS, "{v}");
    // A statement in flight when the process died may still commit, so `before` is a floor.
    assert!(created <= ROWS - before, "{v}");
}
