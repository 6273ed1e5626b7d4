//! No log level prints a record value or a secret: every connector's run at the most verbose
//! level (`-vv` and `RETL_LOG=trace`, which also turns on the dependencies' own debug and
//! trace logging) must not show a planted e-mail address or a planted secret anywhere in what
//! the command prints.

use retl_tests::http::WebhookReceiver;
use retl_tests::moto::Moto;
use retl_tests::{Pg, Project};

const PII: &str = "planted.person.4242@example.com";
const SECRET: &str = "planted-secret-9e1f";

/// Runs the sync at the most verbose level (twice: a create, then an update) and checks the
/// output for the planted values.
fn assert_quiet(p: &mut Project, what: &str) {
    p.env("RETL_LOG", "trace");
    p.env("HOOK_SECRET", SECRET);
    p.warehouse(&format!(
        "CREATE TABLE model (id INTEGER, email TEXT);
         INSERT INTO model VALUES (1, '{PII}'), (2, 'other.{PII}');"
    ));
    for round in 0..2 {
        let out = p.retl(&["-vv", "run", "people"]);
        assert_eq!(out.code, 0, "{what}: {}{}", out.stdout, out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            all.lines().count() > 5,
            "{what}: trace logging is on: {all}"
        );
        for planted in [PII, SECRET] {
            if let Some(line) = all.lines().find(|l| l.contains(planted)) {
                panic!("{what} (round {round}) logged a planted value: {line}");
            }
        }
        p.warehouse(&format!(
            "UPDATE model SET email = 'new.{PII}' WHERE id = 1;"
        ));
    }
}

fn sync(destination: &str, object: &str, mode: &str) -> String {
    format!(
        "name: people\nsource: {{ connection: warehouse, sql: \"select id, email from model\" }}\n\
         primary_key: id\ndestination: {{ connection: {destination}, object: {object} }}\n\
         mapping: {{ id: id, email: email }}\nmode: {mode}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_postgres_destination_logs_no_values() {
    let pg = Pg::new("log_privacy").await;
    pg.exec("CREATE TABLE people (id integer PRIMARY KEY, email text)")
        .await;
    let mut p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             app_db: {{ type: postgres, url: \"{}\" }}\n",
            pg.url
        ),
    );
    p.write(
        "syncs/people.yaml",
        &sync("app_db", &pg.table("people"), "upsert"),
    );
    assert_quiet(&mut p, "the PostgreSQL destination");
    assert_eq!(pg.count("SELECT count(*) FROM people").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_and_webhook_log_no_values_or_secrets() {
    let mut p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  \
         app: { type: sqlite, path: app.db }\n",
    );
    p.write("syncs/people.yaml", &sync("app", "people", "upsert"));
    let app = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    app.execute_batch("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT)")
        .unwrap();
    assert_quiet(&mut p, "the SQLite destination");

    let hook = WebhookReceiver::start().await;
    hook.require_secret(SECRET);
    let mut p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             hook: {{ type: webhook, url: \"{}\", secret_env: HOOK_SECRET }}\n",
            hook.url
        ),
    );
    p.write("syncs/people.yaml", &sync("hook", "people", "upsert"));
    assert_quiet(&mut p, "the webhook destination");
    assert_eq!(hook.bad_signatures(), 0);
    assert!(hook.accepted().len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_logs_no_values() {
    let moto = Moto::start();
    let client = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let url = client
        .create_queue()
        .queue_name("people")
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap()
        .to_string();
    let mut p = Project::new();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ] {
        p.env(k, v);
    }
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  \
             events: {{ type: sqs, queue_url: \"{url}\" }}\n"
        ),
    );
    p.write("syncs/people.yaml", &sync("events", "people", "append"));
    assert_quiet(&mut p, "the SQS destination");
}
