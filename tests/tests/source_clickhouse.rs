//! ClickHouse as a source: the source conformance suite against a real `clickhouse-server`
//! (Debian's 18.16, started by the harness), then what the suite does not cover: arrays,
//! tuples, unsigned and fixed-width values, 18.16's zero date, an error after rows were sent,
//! stopping a run (`KILL QUERY`), gzip-compressed answers (seen through a recording proxy)
//! and HTTPS verified with a `ca_file` (the harness serves `https_port` with a certificate of
//! a CA made by the openssl CLI).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use retl_shared::ports::{ModelQuery, SourceError};
use retl_tests::source_suite::{
    auth_error, empty_result, open_source, sql_error, syncs_into_postgres, timeout,
    types_and_nulls, watermark_filter, Kind, TypeCase, Warehouse,
};
use retl_tests::warehouses::clickhouse::{ClickHouse, PASSWORD, USER};
use serde_json::{json, Value};

/// The suite's view of one server. ClickHouse has no zoneless timestamp, so
/// [`Kind::Timestamp`] is unsupported; the watermark check still needs a timestamp column,
/// and gets DateTime (whole seconds, read in UTC) when `watermark` is set.
struct Ch<'a> {
    ch: &'a ClickHouse,
    watermark: bool,
}

#[async_trait]
impl Warehouse for Ch<'_> {
    fn name(&self) -> &str {
        "clickhouse"
    }

    fn connection(&self) -> String {
        format!(
            "type: clickhouse, url: \"{}\", user: {USER}, password_env: CH_PW, database: default",
            self.ch.http_url
        )
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(format!(
            "type: clickhouse, url: \"{}\", user: {USER}, password_env: CH_BAD_PW",
            self.ch.http_url
        ))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CH_PW".into(), PASSWORD.into()),
            ("CH_BAD_PW".into(), "not-the-password".into()),
        ]
    }

    async fn execute(&self, sql: &str) {
        // The suite's SQL is standard; ClickHouse tables need an engine, and updates are
        // mutations (asynchronous in 18.16: wait until they are done).
        if sql.starts_with("CREATE TABLE") {
            let sql = format!("{sql} ENGINE = MergeTree() ORDER BY id");
            self.ch.execute(&[&sql]).await;
        } else if let Some(rest) = sql.strip_prefix("UPDATE ") {
            let (table, set) = rest.split_once(" SET ").expect("UPDATE t SET ...");
            let sql = format!("ALTER TABLE {table} UPDATE {set}");
            self.ch.execute(&[&sql]).await;
            let since = Instant::now();
            while self
                .ch
                .query(
                    "SELECT count() FROM system.mutations WHERE is_done = 0",
                    &[],
                )
                .await
                .trim()
                != "0"
            {
                assert!(
                    since.elapsed() < Duration::from_secs(30),
                    "mutation not done"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            self.ch.execute(&[sql]).await;
        }
    }

    fn table(&self, name: &str) -> String {
        format!("default.{name}")
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        let mut cases = vec![
            TypeCase::new(Kind::BigInt, "Nullable(Int64)", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "Nullable(Int32)", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "Nullable(Decimal(38, 10))",
                // A bare literal: VALUES parses it as the column's type, exactly (18.16 has
                // no CAST between Decimal(38, 10) and Decimal128(10)).
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "Nullable(Float64)", "0.5"),
            TypeCase::new(Kind::Text, "Nullable(String)", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "Nullable(Date)", "'2024-02-29'"),
            TypeCase::new(
                Kind::TimestampTz,
                "Nullable(DateTime)",
                "parseDateTimeBestEffort('2024-03-01 10:00:00+02:00')",
            ),
            // ClickHouse strings hold bytes; bytes that are not UTF-8 read as binary.
            TypeCase::new(Kind::Binary, "Nullable(String)", "unhex('DEADBEEF')"),
        ];
        if self.watermark {
            cases.push(TypeCase::new(
                Kind::Timestamp,
                "Nullable(DateTime)",
                "toDateTime('2024-03-01 10:00:00.5', 'UTC')",
            ));
        }
        cases
    }

    fn unsupported(&self) -> Vec<(Kind, &'static str)> {
        vec![
            (
                Kind::Bool,
                "ClickHouse 18.16 has no boolean type: UInt8 0/1 reads as a number (Bool, since \
                 21.12, reads as true/false)",
            ),
            (
                Kind::Timestamp,
                "ClickHouse has no timestamp without time zone: DateTime is an instant (read in \
                 UTC) and 18.16's has whole seconds",
            ),
        ]
    }

    fn key_type(&self) -> String {
        "Int64".into()
    }

    fn slow_query(&self, _seconds: u32) -> String {
        // sleep() stops at 3 seconds in ClickHouse; scanning numbers runs until stopped.
        "SELECT toInt64(count()) AS id FROM numbers(1000000000000) WHERE cityHash64(number) = 0"
            .into()
    }

    fn missing_table_code(&self) -> String {
        "60".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_passes_the_source_suite() {
    let ch = ClickHouse::start();
    let w = Ch {
        ch: &ch,
        watermark: false,
    };
    types_and_nulls(&w).await;
    watermark_filter(&Ch {
        ch: &ch,
        watermark: true,
    })
    .await;
    syncs_into_postgres(&w).await;
    empty_result(&w).await;
    sql_error(&w).await;
    auth_error(&w).await;
    timeout(&w).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_reads_what_the_suite_does_not_cover() {
    let ch = ClickHouse::start();
    let w = Ch {
        ch: &ch,
        watermark: false,
    };
    let source = open_source(&w).await;
    let sql = "SELECT toUInt64(18446744073709551615) AS u, [1, 2] AS a, \
               [NULL, 'x\\'y\\t'] AS s, (1, toDate('2024-01-02')) AS t, \
               toFixedString('ab', 4) AS fs, toDate(0) AS d0, \
               [toDateTime('2024-03-01 10:00:00', 'Europe/Berlin')] AS at, \
               toFloat32(0.1) AS f, nan AS n, 'tab\\there' AS tab";
    let mut stream = source
        .rows(&ModelQuery::new(sql, "edge", "run1"))
        .await
        .expect("the model runs");
    let row = Value::Object(stream.next().await.expect("a row").expect("a good row"));
    assert_eq!(
        row,
        json!({
            "u": 18446744073709551615u64, "a": [1, 2], "s": [null, "x'y\t"],
            "t": [1, "2024-01-02"], "fs": "ab", "d0": "1970-01-01",
            "at": ["2024-03-01T09:00:00+00:00"], "f": 0.1, "n": "NaN", "tab": "tab\there"
        })
    );
    assert!(stream.next().await.is_none());

    // An error after the first rows arrives at the end of a 200 body.
    let failing = "SELECT number AS id, throwIf(number = 300000) AS boom FROM numbers(400000)";
    let mut stream = source
        .rows(&ModelQuery::new(failing, "edge", "run2"))
        .await
        .expect("the first rows arrive");
    let mut rows = 0;
    let err = loop {
        match stream.next().await.expect("rows, then the error") {
            Ok(_) => rows += 1,
            Err(e) => break e,
        }
    };
    assert!(rows > 0, "no rows came before the error");
    assert!(
        matches!(&err, SourceError::Query { code, .. } if code == "395"),
        "{err}"
    );
}

/// Whether a query with this id is running in the server.
async fn running(ch: &ClickHouse, id: &str) -> bool {
    let sql = format!("SELECT count() FROM system.processes WHERE query_id = '{id}'");
    ch.query(&sql, &[]).await.trim() != "0"
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_a_run_kills_its_query() {
    let ch = ClickHouse::start();
    let w = Ch {
        ch: &ch,
        watermark: false,
    };
    let source = open_source(&w).await;
    let query = ModelQuery::new(&w.slow_query(60), "killme", "run1");
    let run = tokio::spawn(async move { source.rows(&query).await.map(|_| ()) });
    let since = Instant::now();
    while !running(&ch, "retl-killme-run1").await {
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "the query never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The run stops while the query is still running: its future is dropped.
    run.abort();
    assert!(run.await.is_err_and(|e| e.is_cancelled()));
    let since = Instant::now();
    while running(&ch, "retl-killme-run1").await {
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "the query still runs after the run stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What one request through [`Recorder`] asked for and how the server answered.
#[derive(Clone, Debug)]
struct Exchange {
    query: String,
    accept_encoding: Option<String>,
    content_encoding: Option<String>,
    body_bytes: usize,
}

/// A plain HTTP proxy in front of the server that records each exchange, passing the bytes
/// through untouched (compressed answers stay compressed).
struct Recorder {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Exchange>>>,
}

impl Recorder {
    async fn start(upstream: &str) -> Recorder {
        use axum::extract::State;
        type Shared = (String, std::sync::Arc<std::sync::Mutex<Vec<Exchange>>>);
        async fn pass(
            State((upstream, seen)): State<Shared>,
            uri: axum::http::Uri,
            headers: axum::http::HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let query = uri.query().unwrap_or_default().to_string();
            let mut request = reqwest::Client::new()
                .post(format!("{}?{query}", upstream.trim_end_matches('/')))
                .body(body);
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    request = request.header(k, v);
                }
            }
            let answer = request.send().await.expect("clickhouse answers");
            let status = answer.status();
            let answer_headers = answer.headers().clone();
            let bytes = answer.bytes().await.expect("the answer's body");
            let header = |h: &axum::http::HeaderMap, name: &str| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            seen.lock().unwrap().push(Exchange {
                query,
                accept_encoding: header(&headers, "accept-encoding"),
                content_encoding: header(&answer_headers, "content-encoding"),
                body_bytes: bytes.len(),
            });
            let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
            *out.status_mut() = status;
            for (k, v) in &answer_headers {
                if k != "content-length" && k != "transfer-encoding" {
                    out.headers_mut().insert(k, v.clone());
                }
            }
            out
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(pass)
            .with_state((upstream.to_string(), seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { url, seen }
    }

    fn seen(&self) -> Vec<Exchange> {
        self.seen.lock().unwrap().clone()
    }
}

/// A source on `url` (with `extra` connection fields) reading `sql`: its ids in order.
async fn ids_through(url: &str, extra: &str, sql: &str) -> Result<Vec<u64>, SourceError> {
    struct At<'a>(&'a str, &'a str);
    #[async_trait]
    impl Warehouse for At<'_> {
        fn name(&self) -> &str {
            "clickhouse"
        }
        fn connection(&self) -> String {
            format!("type: clickhouse, url: \"{}\"{}", self.0, self.1)
        }
        fn connection_with_bad_credentials(&self) -> Option<String> {
            None
        }
        fn env(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        async fn execute(&self, _sql: &str) {
            unreachable!("this view only reads")
        }
        fn table(&self, name: &str) -> String {
            name.to_string()
        }
        fn type_cases(&self) -> Vec<TypeCase> {
            Vec::new()
        }
        fn key_type(&self) -> String {
            "UInt64".into()
        }
        fn slow_query(&self, _seconds: u32) -> String {
            String::new()
        }
        fn missing_table_code(&self) -> String {
            "60".into()
        }
    }
    let source = open_source(&At(url, extra)).await;
    let mut stream = source.rows(&ModelQuery::new(sql, "wire", "run1")).await?;
    let mut ids = Vec::new();
    while let Some(row) = stream.next().await {
        ids.push(row?["id"].as_u64().expect("an id"));
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_come_gzip_compressed_unless_compression_is_none() {
    let ch = ClickHouse::start();
    let proxy = Recorder::start(&ch.http_url).await;
    let sql = "SELECT number AS id, toString(number) AS label FROM numbers(200000)";
    let ids = ids_through(&proxy.url, "", sql).await.expect("the rows");
    assert_eq!(ids.len(), 200_000);
    assert!(ids.iter().enumerate().all(|(i, id)| *id == i as u64));
    let seen = proxy.seen();
    let model = seen
        .iter()
        .find(|e| e.query.contains("query_id=retl-wire-run1") && !e.query.contains("describe"))
        .expect("the model's query")
        .clone();
    assert!(
        model.query.contains("enable_http_compression=1")
            && model.accept_encoding.as_deref() == Some("gzip")
            && model.content_encoding.as_deref() == Some("gzip"),
        "the model's rows travel gzip-compressed: {model:?}"
    );

    let plain = Recorder::start(&ch.http_url).await;
    let ids = ids_through(&plain.url, ", compression: none", sql)
        .await
        .expect("the rows");
    assert_eq!(ids.len(), 200_000);
    let uncompressed = plain
        .seen()
        .into_iter()
        .find(|e| e.query.contains("query_id=retl-wire-run1") && !e.query.contains("describe"))
        .expect("the model's query");
    assert_eq!(uncompressed.content_encoding, None, "{uncompressed:?}");
    assert!(
        model.body_bytes * 3 < uncompressed.body_bytes,
        "gzip sends a fraction of the bytes: {} vs {}",
        model.body_bytes,
        uncompressed.body_bytes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_ca_file_reads_and_an_unknown_ca_is_refused() {
    let ch = ClickHouse::start_tls();
    let (url, ca) = ch.https.clone().expect("the server serves HTTPS");
    let sql = "SELECT number AS id FROM numbers(3)";
    let extra = format!(", ca_file: \"{}\"", ca.display());
    assert_eq!(
        ids_through(&url, &extra, sql)
            .await
            .expect("TLS verified with the CA"),
        [0, 1, 2]
    );
    let refused = ids_through(&url, "", sql)
        .await
        .expect_err("the test CA is not a web root");
    let text = format!("{refused}");
    assert!(
        matches!(refused, SourceError::Unavailable { .. }) && text.contains("certificate"),
        "the refusal names the certificate: {text}"
    );
}
