//! Incremental models through the CLI (seed 004's high-watermark pattern): a re-run with no
//! new rows reads nothing and sends nothing, new rows are read and sent alone, failed records
//! (and the rows after them) and failed or killed runs are read again, `--full-resync` reads
//! everything, modes that delete refuse an incremental model, and `retl runs show` tells the
//! watermark before and after.

use retl_tests::http::WebhookReceiver;
use retl_tests::Project;
use serde_json::Value;

fn project(hook_url: &str, mode: &str, incremental: &str) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{hook_url}\", delivery: {{ max_attempts: 2, batch_size: 10, concurrency: 1 }} }}\n"
        ),
    );
    p.write(
        "syncs/users.yaml",
        &format!(
            "name: users\nsource:\n  connection: warehouse\n  \
             sql: \"select id, name, version from model\"\n  incremental: {incremental}\n\
             primary_key: id\ndestination: {{ connection: hook, object: users }}\n\
             mapping: {{ id: id, name: name }}\nmode: {mode}\n"
        ),
    );
    p
}

/// `n` rows: id i, version i.
fn seed(p: &Project, n: i64) {
    let mut sql = String::from("CREATE TABLE model (id INTEGER, name TEXT, version INTEGER);");
    for i in 1..=n {
        sql.push_str(&format!("INSERT INTO model VALUES ({i}, 'user {i}', {i});"));
    }
    p.warehouse(&sql);
}

fn run(p: &Project, extra: &[&str]) -> Value {
    let mut args = vec!["run", "users"];
    args.extend_from_slice(extra);
    let (_, v) = p.retl_json(&args);
    v
}

fn show(p: &Project, run_id: &Value) -> Value {
    let (code, v) = p.retl_json(&["runs", "show", run_id.as_str().expect("a run id")]);
    assert_eq!(code, 0, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_reads_nothing_and_new_rows_are_read_and_sent_alone() {
    let hook = WebhookReceiver::start().await;
    let p = project(&hook.url, "upsert", "{ column: version }");
    seed(&p, 1000);
    let first = run(&p, &[]);
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        first["rows"], 1000,
        "the first run reads the whole model: {first}"
    );
    assert_eq!(
        first["watermark"]["full_read"],
        "no watermark is stored yet"
    );
    assert_eq!(first["watermark"]["after"], "1000", "{first}");
    assert_eq!(hook.accepted().len(), 1000);

    let again = run(&p, &[]);
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(
        again["rows"], 0,
        "no row above the watermark is read: {again}"
    );
    assert_eq!(again["watermark"]["read_after"], "1000", "{again}");
    assert_eq!(hook.accepted().len(), 1000, "nothing is sent");

    // 1% new rows, one of them an update of an existing record.
    let mut sql = String::new();
    for i in 1001..=1009 {
        sql.push_str(&format!("INSERT INTO model VALUES ({i}, 'user {i}', {i});"));
    }
    sql.push_str("UPDATE model SET name = 'renamed', version = 1010 WHERE id = 7;");
    p.warehouse(&sql);
    let third = run(&p, &[]);
    assert_eq!(third["rows"], 10, "{third}");
    assert_eq!(
        (third["creates"].clone(), third["updates"].clone()),
        (9.into(), 1.into())
    );
    let sent = hook.accepted();
    assert_eq!(
        sent.len(),
        1010,
        "exactly the new and changed rows are sent"
    );
    assert!(sent[1000..]
        .iter()
        .any(|(_, k, f)| k == "7" && f["name"] == "renamed"));
    let shown = show(&p, &third["run_id"]);
    assert_eq!(shown["watermark"]["before"], "1000", "{shown}");
    assert_eq!(shown["watermark"]["after"], "1010", "{shown}");
    let text = p.retl(&["runs", "show", third["run_id"].as_str().unwrap()]);
    assert!(
        text.stdout
            .contains("Incremental: read rows with version > 1000")
            && text.stdout.contains("Watermark version: 1000 -> 1010"),
        "{}",
        text.stdout
    );

    // A full resync reads everything again; unchanged records still send nothing new.
    let full = run(&p, &["--full-resync"]);
    assert_eq!(full["rows"], 1009, "{full}");
    assert_eq!(
        full["watermark"]["full_read"],
        "a full resync was requested"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_records_and_failed_runs_are_read_again() {
    let hook = WebhookReceiver::start().await;
    let p = project(&hook.url, "upsert", "{ column: version }");
    seed(&p, 10);
    assert_eq!(run(&p, &[])["watermark"]["after"], "10");

    let mut sql = String::new();
    for i in 11..=20 {
        sql.push_str(&format!("INSERT INTO model VALUES ({i}, 'user {i}', {i});"));
    }
    p.warehouse(&sql);
    // Two records in the middle of the window fail: the watermark moves to the value just
    // below the lowest of them, so the rows below it are not read again.
    hook.fail(&["17", "15"]);
    let partial = run(&p, &[]);
    assert_eq!(partial["status"], "partially_failed", "{partial}");
    assert_eq!(partial["failed"], 2, "{partial}");
    assert_eq!(
        partial["watermark"]["after"], "14",
        "the watermark stops below the lowest failed record: {partial}"
    );
    let shown = show(&p, &partial["run_id"]);
    assert_eq!(
        (
            shown["watermark"]["before"].clone(),
            shown["watermark"]["after"].clone()
        ),
        ("10".into(), "14".into()),
        "{shown}"
    );

    hook.clear_failures();
    let retried = run(&p, &[]);
    assert_eq!(retried["watermark"]["read_after"], "14", "{retried}");
    assert_eq!(
        retried["rows"], 6,
        "the failed records and the rows after them are read again: {retried}"
    );
    assert_eq!(
        retried["creates"], 2,
        "only the failed ones are sent: {retried}"
    );
    assert_eq!(retried["watermark"]["after"], "20", "{retried}");

    // A run killed mid-apply leaves the watermark too: the next run reads every row the
    // killed one read, and sends what it did not deliver.
    let mut sql = String::new();
    for i in 21..=220 {
        sql.push_str(&format!("INSERT INTO model VALUES ({i}, 'user {i}', {i});"));
    }
    p.warehouse(&sql);
    hook.delay(std::time::Duration::from_millis(40));
    let before = hook.accepted().len();
    let mut child = p.command(&["run", "users"]).spawn().expect("retl starts");
    let start = std::time::Instant::now();
    while hook.accepted().len() < before + 20 {
        assert!(start.elapsed().as_secs() < 60, "apply never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    hook.delay(std::time::Duration::ZERO);
    let resumed = run(&p, &[]);
    assert_eq!(resumed["watermark"]["before"], "20", "{resumed}");
    assert_eq!(resumed["rows"], 200, "{resumed}");
    assert_eq!(resumed["watermark"]["after"], "220", "{resumed}");
    let keys: std::collections::BTreeSet<String> =
        hook.accepted().into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys.len(), 220, "every record reached the receiver");

    // A first run whose lowest record fails stores no watermark: the next one reads all.
    let first = project(&hook.url, "upsert", "{ column: version }");
    seed(&first, 3);
    hook.fail(&["1"]);
    let lost = run(&first, &[]);
    assert_eq!(lost["failed"], 1, "{lost}");
    assert_eq!(lost["watermark"]["after"], Value::Null, "{lost}");
    hook.clear_failures();
    let again = run(&first, &[]);
    assert_eq!(
        again["watermark"]["full_read"], "no watermark is stored yet",
        "{again}"
    );
    assert_eq!(again["watermark"]["after"], "3", "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn timestamps_with_a_lookback_read_late_rows_again_without_resending() {
    let hook = WebhookReceiver::start().await;
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
        "syncs/users.yaml",
        "name: users\nsource:\n  connection: warehouse\n  \
         sql: \"select id, name, updated_at from model\"\n  \
         incremental: { column: updated_at, lookback: 10m }\n\
         primary_key: id\ndestination: { connection: hook, object: users }\n\
         mapping: { id: id, name: name }\nmode: upsert\n",
    );
    p.warehouse(
        "CREATE TABLE model (id INTEGER, name TEXT, updated_at TEXT);
         INSERT INTO model VALUES (1, 'a', '2024-03-01T10:00:00'), (2, 'b', '2024-03-01T10:30:00');",
    );
    let first = run(&p, &[]);
    assert_eq!(
        first["watermark"]["after"], "2024-03-01T10:30:00",
        "{first}"
    );
    // A row that arrived late, stamped inside the lookback window.
    p.warehouse("INSERT INTO model VALUES (3, 'c', '2024-03-01T10:25:00');");
    let second = run(&p, &[]);
    assert_eq!(
        second["watermark"]["read_after"], "2024-03-01T10:20:00",
        "{second}"
    );
    assert_eq!(
        second["rows"], 2,
        "row 2 is read again, row 3 is new: {second}"
    );
    assert_eq!(second["creates"], 1, "{second}");
    assert_eq!(hook.accepted().len(), 3, "row 2 is not sent again");
}

#[test]
fn modes_that_delete_refuse_an_incremental_model() {
    let p = project(
        "http://127.0.0.1:9/ingest",
        "mirror",
        "{ column: version, lookback: 5 }",
    );
    let out = p.retl(&["validate"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("mode `mirror` cannot read an incremental model"),
        "{all}"
    );
    assert!(all.contains("lookback `5` has no unit"), "{all}");
    assert!(
        all.contains("syncs/users.yaml:"),
        "the position is given: {all}"
    );
}
