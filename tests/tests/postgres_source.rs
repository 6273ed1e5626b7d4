//! PostgreSQL as the warehouse: the documented type mapping to JSON, exact numerics, and a
//! PostgreSQL-to-PostgreSQL sync whose baseline matches the model value for value.

use retl_tests::http::WebhookReceiver;
use retl_tests::{Pg, Project};

async fn source_table(pg: &Pg) {
    pg.exec(
        "CREATE TABLE src (
            id bigint PRIMARY KEY, amount numeric(38,10), ratio double precision, flag boolean,
            label text, born date, seen timestamptz, seen_local timestamp, tags text[],
            doc jsonb, blob bytea, missing text);
         INSERT INTO src VALUES
           (9007199254740993, 12345678901234567890.1234567890, 0.5, true, 'Zoë', '2024-02-29',
            '2024-03-01 10:00:00+02', '2024-03-01 10:00:00', ARRAY['a','b'],
            '{\"plan\": \"pro\", \"seats\": 3}', '\\xdeadbeef', NULL),
           (2, 0.1000000000, -1.25, false, 'Bo', '1999-12-31', '1999-12-31 23:59:59+00',
            '1999-12-31 23:59:59', ARRAY[]::text[], '[1, 2]', NULL, NULL);",
    )
    .await;
}

const MAPPING: &str = "{ id: id, amount: amount, ratio: ratio, flag: flag, label: label, born: born, \
                       seen: seen, seen_local: seen_local, tags: tags, doc: doc, blob: blob, missing: missing }";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_types_map_to_json_without_precision_loss() {
    let pg = Pg::new("pg_types").await;
    source_table(&pg).await;
    let hook = WebhookReceiver::start().await;
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  wh: {{ type: postgres, url: \"{}\" }}\n  hook: {{ type: webhook, url: \"{}\" }}\n",
            pg.url, hook.url
        ),
    );
    p.write(
        "syncs/types.yaml",
        &format!(
            "name: types\nsource: {{ connection: wh, sql: \"select * from {}\" }}\nprimary_key: id\n\
             destination: {{ connection: hook, object: types }}\nmapping: {MAPPING}\nmode: upsert\n",
            pg.table("src")
        ),
    );
    let (code, v) = p.run_json(&["run", "types"]).await;
    assert_eq!(code, 0, "{v}");
    let accepted = hook.accepted();
    let big = accepted
        .iter()
        .find(|(_, k, _)| k == "9007199254740993")
        .expect("big id keeps its digits")
        .2
        .clone();
    assert_eq!(big["id"].to_string(), "9007199254740993");
    assert_eq!(big["amount"].to_string(), "12345678901234567890.1234567890");
    assert_eq!(big["ratio"].to_string(), "0.5");
    assert_eq!(big["flag"], true);
    assert_eq!(big["label"], "Zoë");
    assert_eq!(big["born"], "2024-02-29");
    assert_eq!(
        big["seen"], "2024-03-01T08:00:00+00:00",
        "timestamptz in UTC"
    );
    assert_eq!(big["seen_local"], "2024-03-01T10:00:00");
    assert_eq!(big["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(big["doc"]["plan"], "pro");
    assert_eq!(big["doc"]["seats"].to_string(), "3");
    assert_eq!(big["blob"], "\\xdeadbeef");
    assert!(big["missing"].is_null());
    let small = accepted
        .iter()
        .find(|(_, k, _)| k == "2")
        .unwrap()
        .2
        .clone();
    assert_eq!(small["amount"].to_string(), "0.1000000000");
    assert_eq!(small["tags"], serde_json::json!([]));
    assert_eq!(small["doc"], serde_json::json!([1, 2]));
}

#[tokio::test]
async fn a_postgres_to_postgres_sync_round_trips_every_type() {
    let pg = Pg::new("pg_to_pg").await;
    source_table(&pg).await;
    pg.exec("CREATE TABLE dst (LIKE src INCLUDING ALL)").await;
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!("connections:\n  wh: {{ type: postgres, url: \"{0}\" }}\n  db: {{ type: postgres, url: \"{0}\" }}\n", pg.url),
    );
    let sync = |name: &str| {
        format!(
            "name: {name}\nsource: {{ connection: wh, sql: \"select * from {}\" }}\nprimary_key: id\n\
             destination: {{ connection: db, object: {} }}\nmapping: {MAPPING}\nmode: mirror\n",
            pg.table("src"),
            pg.table("dst")
        )
    };
    p.write("syncs/copy.yaml", &sync("copy"));
    let (code, v) = p.retl_json(&["run", "copy"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["creates"], 2, "{v}");
    let diff = pg
        .count("SELECT count(*) FROM ((TABLE src EXCEPT TABLE dst) UNION ALL (TABLE dst EXCEPT TABLE src)) d")
        .await;
    assert_eq!(
        diff, 0,
        "the destination equals the source, value for value"
    );
    // A second sync seeing this destination for the first time finds every record equal to
    // the model: source rows and destination listing hash alike.
    p.write("syncs/copy2.yaml", &sync("copy2"));
    let (code, v) = p.retl_json(&["run", "copy2"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["unchanged"], 2, "{v}");
    assert_eq!(v["updates"], 0, "{v}");
}

#[tokio::test]
async fn connections_use_tls_when_the_server_offers_it_and_verify_with_a_root_certificate() {
    let pg = Pg::new("pg_tls").await;
    pg.exec("CREATE TABLE seen (id integer PRIMARY KEY, name text)")
        .await;
    let mut p = Project::new();
    let url = format!("{}?sslmode=require", pg.url);
    p.write(
        "retl.yaml",
        &format!("connections:\n  wh: {{ type: postgres, url: \"{url}\" }}\n  db: {{ type: postgres, url: \"{url}\" }}\n"),
    );
    // The model reports whether its own session is encrypted.
    p.write(
        "syncs/tls.yaml",
        &format!(
            "name: tls\nsource: {{ connection: wh, sql: \"select 1 as id, (select ssl::text from pg_stat_ssl where pid = pg_backend_pid()) as name\" }}\n\
             primary_key: id\ndestination: {{ connection: db, object: {} }}\nmapping: {{ id: id, name: name }}\nmode: upsert\n",
            pg.table("seen")
        ),
    );
    let (code, v) = p.retl_json(&["run", "tls"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        pg.count("SELECT count(*) FROM seen WHERE name = 'true'")
            .await,
        1,
        "the session was encrypted"
    );

    // With a root certificate the server's certificate is verified: a CA that did not sign
    // it makes the connection fail instead of talking to an unverified server.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-this-server",
        ])
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("openssl runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    p.env("PGSSLROOTCERT", ca.to_str().unwrap());
    let (code, v) = p.retl_json(&["run", "tls"]);
    assert_ne!(code, 0, "{v}");
    let err = v["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls") || err.contains("ssl"),
        "{v}"
    );
}
