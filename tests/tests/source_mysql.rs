//! MySQL / MariaDB as a source: the source conformance suite against the machine's MariaDB
//! (started by the harness when stopped), then what the suite's kinds do not cover: unsigned
//! and bit integers, TINYINT(1) against TINYINT(4), zero dates, TIME, FLOAT, MariaDB's JSON,
//! stopping a run (`KILL QUERY`) and TLS refusals.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use retl_shared::ports::{ModelQuery, SourceError};
use retl_tests::source_suite::{open_source, run_all, Kind, TypeCase, Warehouse};
use retl_tests::warehouses::mariadb::{MariaDb, HOST, PORT, USER};
use serde_json::{json, Value};

struct MySql {
    db: MariaDb,
    /// Extra connection settings (`tls: required`).
    extra: &'static str,
}

impl MySql {
    fn new(test: &str) -> MySql {
        MySql {
            db: MariaDb::connect(test),
            extra: "",
        }
    }
}

#[async_trait]
impl Warehouse for MySql {
    fn name(&self) -> &str {
        "mysql"
    }

    fn connection(&self) -> String {
        format!("type: mysql, url_env: WH_URL{}", self.extra)
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(format!(
            "type: mysql, url: \"mysql://retl_nobody:wrong@{HOST}:{PORT}/{}\"",
            self.db.database
        ))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("WH_URL".into(), self.db.url.clone())]
    }

    async fn execute(&self, sql: &str) {
        // A UTC session (as retl's) that keeps zero dates, so literals mean the same here.
        self.db.execute(&format!(
            "SET time_zone = '+00:00'; SET sql_mode = ''; {sql}"
        ));
    }

    fn table(&self, name: &str) -> String {
        format!("`{}`.`{name}`", self.db.database)
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        // Kind::Json is not here: MariaDB's JSON is LONGTEXT and its result metadata says text,
        // so it reads as a string (documented on the connector's page, checked below).
        vec![
            TypeCase::new(Kind::BigInt, "BIGINT", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "INT", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "DECIMAL(38,10)",
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "DOUBLE", "0.5"),
            TypeCase::new(Kind::Bool, "BOOLEAN", "TRUE"),
            TypeCase::new(Kind::Text, "TEXT", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "DATE", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "DATETIME(6)", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(
                Kind::TimestampTz,
                "TIMESTAMP NULL",
                "CONVERT_TZ('2024-03-01 10:00:00', '+02:00', '+00:00')",
            ),
            TypeCase::new(Kind::Binary, "VARBINARY(16)", "X'DEADBEEF'"),
        ]
    }

    fn key_type(&self) -> String {
        "BIGINT".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        format!("select 1 as id from (select sleep({seconds}) as s) t")
    }

    fn missing_table_code(&self) -> String {
        "1146".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_passes_the_source_suite() {
    run_all(&MySql::new("suite")).await;
}

/// Every row of `sql`, read in this process.
async fn read(w: &MySql, sql: &str) -> Vec<Value> {
    let source = open_source(w).await;
    let mut stream = source
        .rows(&ModelQuery::new(sql, "edge", "run1"))
        .await
        .expect("the model runs");
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(Value::Object(row.expect("a row")));
    }
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_reads_what_the_suite_does_not_cover() {
    let w = MySql::new("edge");
    let t = w.table("edge");
    w.execute(&format!(
        "CREATE TABLE {t} (id INT, u BIGINT UNSIGNED, tiny TINYINT(4), flag TINYINT(1), \
         b1 BIT(1), b12 BIT(12), d DATE, dt DATETIME, ts TIMESTAMP NULL, tm TIME(1), \
         f FLOAT, big DECIMAL(65,30), j JSON, e ENUM('a','b'), y YEAR, bl BLOB)"
    ))
    .await;
    w.execute(&format!(
        "INSERT INTO {t} VALUES (1, 18446744073709551615, 7, 0, b'1', b'100000000011', \
         '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '-26:03:04.5', 0.1, \
         '-12345678901234567890123456789012345.123456789012345678901234567890', \
         '{{\"a\": [1, 2.50]}}', 'b', 2024, X'00FF')"
    ))
    .await;
    w.execute(&format!(
        "INSERT INTO {t} (id, d, dt) VALUES (2, '2024-00-10', '2024-02-00 10:00:00')"
    ))
    .await;
    let rows = read(&w, &format!("select * from {t} order by id")).await;
    assert_eq!(rows.len(), 2);
    let want = json!({
        "id": 1, "u": 18446744073709551615u64, "tiny": 7, "flag": false, "b1": true,
        "b12": 2051, "d": null, "dt": null, "ts": null, "tm": "-26:03:04.5", "f": 0.1,
        "j": "{\"a\": [1, 2.50]}", "e": "b", "y": 2024, "bl": "\\x00ff"
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&rows[0][k], v, "column {k}: {}", rows[0]);
    }
    assert_eq!(
        rows[0]["big"].to_string(),
        "-12345678901234567890123456789012345.123456789012345678901234567890"
    );
    assert_eq!(
        (&rows[1]["d"], &rows[1]["dt"]),
        (&Value::Null, &Value::Null)
    );
}

/// Whether a statement tagged `tag` is still running in the server.
fn running(w: &MySql, tag: &str) -> bool {
    let rows = w.db.rows(&format!(
        "SELECT COUNT(*) FROM information_schema.processlist \
         WHERE info LIKE '%{tag}%' AND info NOT LIKE '%processlist%'"
    ));
    rows.first().and_then(|r| r.first()).map(String::as_str) != Some("0")
}

/// Waits until `running(tag)` is `want`, at most 15 s.
async fn wait_running(w: &MySql, tag: &str, want: bool) {
    let since = Instant::now();
    while running(w, tag) != want {
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "the statement {tag} is still {}running after 15 s",
            if want { "not " } else { "" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_a_run_kills_its_statement() {
    let w = MySql::new("kill");
    let source = open_source(&w).await;
    let query = ModelQuery::new(&w.slow_query(60), "killme", "run1");
    let run = tokio::spawn(async move { source.rows(&query).await.map(|_| ()) });
    wait_running(&w, "retl:killme:run1", true).await;
    // The run stops while the statement is still running: its future is dropped.
    run.abort();
    assert!(run.await.is_err_and(|e| e.is_cancelled()));
    wait_running(&w, "retl:killme:run1", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_required_refuses_a_server_without_tls() {
    let w = MySql {
        db: MariaDb::connect("tls"),
        extra: ", tls: required",
    };
    let have_ssl = w.db.rows("SHOW VARIABLES LIKE 'have_ssl'");
    assert_eq!(
        have_ssl[0][1], "DISABLED",
        "this test expects the machine's MariaDB without TLS (user {USER})"
    );
    let source = open_source(&w).await;
    let err = match source
        .rows(&ModelQuery::new("select 1 as id", "t", "r"))
        .await
    {
        Ok(_) => panic!("tls: required read from a server without TLS"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, SourceError::Config { message, .. } if message.contains("does not offer TLS")),
        "{err}"
    );
}
