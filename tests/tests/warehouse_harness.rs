//! Each warehouse the source tests use starts here and returns a small table of awkward values
//! (an integer past 2^53, a decimal(38,10), unicode text, a timestamp, a boolean, a null) over
//! its own wire protocol, as a connector would read it.

use retl_tests::warehouses::bqemulator::BqEmulator;
use retl_tests::warehouses::clickhouse::{self, ClickHouse};
use retl_tests::warehouses::fakesnow::FakeSnow;
use retl_tests::warehouses::mariadb::MariaDb;
use serde_json::{json, Value};

const BIG: &str = "9007199254740993";
const DECIMAL: &str = "12345678901234567890.0123456789";
const TEXT: &str = "héllo ✓ 日本 🚀";
/// 2024-01-02 03:04:05.123456 UTC.
const EPOCH_SECONDS: i64 = 1_704_164_645;

#[tokio::test]
async fn fakesnow_returns_rows_as_arrow_with_snowflake_metadata() {
    let snow = FakeSnow::start();
    let session = snow.login("RETL", "PUBLIC").await;
    snow.execute(
        &session,
        &[
            "CREATE TABLE t (id INTEGER, big BIGINT, amount DECIMAL(38,10), name TEXT, \
             ts TIMESTAMP_NTZ, flag BOOLEAN, nothing TEXT)",
            &format!(
                "INSERT INTO t VALUES (1, {BIG}, {DECIMAL}, '{TEXT}', \
                 '2024-01-02 03:04:05.123456', TRUE, NULL)"
            ),
        ],
    )
    .await;
    let result = snow.query(&session, "SELECT * FROM t").await;

    assert_eq!(result.data["queryResultFormat"], "arrow");
    assert!(result.data["queryId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let rowtype: Vec<(&str, &str)> = result.data["rowtype"]
        .as_array()
        .expect("rowtype")
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rowtype,
        [
            ("ID", "fixed"),
            ("BIG", "fixed"),
            ("AMOUNT", "fixed"),
            ("NAME", "text"),
            ("TS", "timestamp_ntz"),
            ("FLAG", "boolean"),
            ("NOTHING", "text")
        ]
    );
    assert_eq!(result.data["rowtype"][2]["scale"], 10);
    assert_eq!(result.fields[2].meta("logicalType"), Some("FIXED"));
    assert_eq!(result.fields[2].meta("scale"), Some("10"));
    assert_eq!(result.fields[4].meta("logicalType"), Some("TIMESTAMP_NTZ"));
    let row = &result.rows[0];
    assert_eq!(result.rows.len(), 1);
    assert_eq!(row[0], json!(1));
    assert_eq!(row[1].to_string(), BIG);
    assert_eq!(row[2], json!(DECIMAL));
    assert_eq!(row[3], json!(TEXT));
    // Snowflake's Arrow timestamps: a struct of whole seconds and nanoseconds.
    assert_eq!(
        row[4],
        json!({"epoch": EPOCH_SECONDS, "fraction": 123_456_000})
    );
    assert_eq!(row[5], json!(true));
    assert_eq!(row[6], Value::Null);
}

#[tokio::test]
async fn bqemulator_returns_rows_over_rest_with_pages() {
    let bq = BqEmulator::start();
    bq.execute(&[
        "CREATE SCHEMA ds",
        "CREATE TABLE ds.t (id INT64, big INT64, amount BIGNUMERIC(38,10), name STRING, \
         ts TIMESTAMP, flag BOOL, nothing STRING)",
        &format!(
            "INSERT INTO ds.t VALUES (1, {BIG}, BIGNUMERIC '{DECIMAL}', '{TEXT}', \
             TIMESTAMP '2024-01-02 03:04:05.123456+00', TRUE, NULL), \
             (2, -1, BIGNUMERIC '-0.5', '', NULL, FALSE, 'x')"
        ),
    ])
    .await;
    let response = bq.query("SELECT * FROM ds.t ORDER BY id").await;

    assert_eq!(response["jobComplete"], true);
    assert_eq!(response["totalRows"], "2");
    let types: Vec<&str> = response["schema"]["fields"]
        .as_array()
        .expect("schema fields")
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "INTEGER",
            "INTEGER",
            "BIGNUMERIC",
            "STRING",
            "TIMESTAMP",
            "BOOLEAN",
            "STRING"
        ]
    );
    let cells = |row: usize| -> Vec<Value> {
        response["rows"][row]["f"]
            .as_array()
            .expect("row cells")
            .iter()
            .map(|c| c["v"].clone())
            .collect()
    };
    // Every value is a string; TIMESTAMP comes as integer microseconds since the epoch.
    assert_eq!(
        cells(0),
        [
            json!("1"),
            json!(BIG),
            json!(DECIMAL),
            json!(TEXT),
            json!(format!("{EPOCH_SECONDS}123456")),
            json!("true"),
            Value::Null
        ]
    );
    assert_eq!(cells(1)[2], json!("-0.5000000000"));

    let first = bq
        .query_with(json!({"query": "SELECT id FROM ds.t ORDER BY id", "useLegacySql": false, "maxResults": 1}))
        .await;
    assert_eq!(first["rows"], json!([{"f": [{"v": "1"}]}]));
    let token = first["pageToken"]
        .as_str()
        .expect("a page token after the first page");
    let job = first["jobReference"]["jobId"].as_str().expect("job id");
    let next = bq.query_results(job, &[("pageToken", token)]).await;
    assert_eq!(next["rows"], json!([{"f": [{"v": "2"}]}]));
    assert!(
        next.get("pageToken").is_none(),
        "no token after the last page: {next}"
    );
}

#[tokio::test]
async fn clickhouse_returns_rows_as_json_each_row_over_http() {
    let ch = ClickHouse::start();
    ch.execute(&[
        "CREATE TABLE t (id Int32, big Int64, amount Decimal(38,10), name String, \
         ts DateTime, flag UInt8, nothing Nullable(String)) ENGINE = MergeTree ORDER BY id",
        &format!(
            "INSERT INTO t VALUES (1, {BIG}, toDecimal128('{DECIMAL}', 10), '{TEXT}', \
             toDateTime('2024-01-02 03:04:05'), 1, NULL)"
        ),
    ])
    .await;
    let body = ch
        .query("SELECT * FROM t ORDER BY id FORMAT JSONEachRow", &[])
        .await;
    let rows: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["id"], json!(1));
    // 18.16 quotes 64-bit integers by default; decimals are bare JSON numbers at full scale.
    assert_eq!(row["big"], json!(BIG));
    assert_eq!(row["amount"].to_string(), DECIMAL);
    assert_eq!(row["name"], json!(TEXT));
    assert_eq!(row["ts"], json!("2024-01-02 03:04:05"));
    assert_eq!(row["flag"], json!(1));
    assert_eq!(row["nothing"], Value::Null);

    let unquoted = ch
        .query(
            "SELECT big FROM t FORMAT JSONEachRow",
            &[("output_format_json_quote_64bit_integers", "0")],
        )
        .await;
    assert_eq!(unquoted.trim(), format!("{{\"big\":{BIG}}}"));
    let authenticated = reqwest::Client::new()
        .post(&ch.http_url)
        .basic_auth(clickhouse::USER, Some(clickhouse::PASSWORD))
        .body("SELECT 1")
        .send()
        .await
        .expect("basic auth request");
    assert_eq!(authenticated.status(), 200);
}

#[test]
fn mariadb_returns_rows_through_its_client() {
    let db = MariaDb::connect("warehouse_harness");
    db.execute(&format!(
        "CREATE TABLE t (id INT, big BIGINT, amount DECIMAL(38,10), name VARCHAR(64), \
         ts DATETIME(6), flag BOOLEAN, nothing TEXT) CHARACTER SET utf8mb4; \
         INSERT INTO t VALUES (1, {BIG}, {DECIMAL}, '{TEXT}', '2024-01-02 03:04:05.123456', TRUE, NULL)"
    ));
    let rows = db.rows("SELECT * FROM t");
    assert_eq!(
        rows,
        [[
            "1",
            BIG,
            DECIMAL,
            TEXT,
            "2024-01-02 03:04:05.123456",
            "1",
            "NULL"
        ]]
    );
    let version = db.rows("SELECT VERSION()");
    assert!(version[0][0].contains("MariaDB"), "{version:?}");
}
