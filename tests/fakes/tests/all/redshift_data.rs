//! Redshift Data API fake against the machine's PostgreSQL: asynchronous statements,
//! typed `Field` records, pagination, SQL errors, cancellation, auth and faults.

use std::time::{Duration, Instant};

use retl_fakes::{RedshiftDataConfig, RedshiftDataFake};
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

use crate::common::{client, header_u64};

const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240131/us-east-1/redshift-data/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123456789abcdef";

/// The test PostgreSQL URL (`RETL_TEST_PG_URL` overrides).
pub fn pg_url() -> String {
    std::env::var("RETL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A connected client and a fresh schema `name` for one test; fails loudly without a server.
pub async fn pg_schema(name: &str) -> (Client, String) {
    let url = pg_url();
    let (pg, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required at {url} ({e}). Start it (pg_ctlcluster 15 main start, \
             or infra/scripts/test.sh) or set RETL_TEST_PG_URL"
            )
        });
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let schema = format!("fk_{name}_{}", std::process::id());
    pg.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
    ))
    .await
    .expect("create schema");
    (pg, schema)
}

/// A table of every mapped type with three rows, the last one all NULL but its key.
pub async fn typed_table(pg: &Client, schema: &str) {
    pg.batch_execute(&format!(
        "CREATE TABLE {schema}.t (id int4 NOT NULL, small int2, big int8, amount numeric(10,2), \
         ratio float8, active bool, code varchar(20), note text, seen timestamp, \
         seen_tz timestamptz, day date, raw bytea);
         INSERT INTO {schema}.t VALUES
          (1, 7, 9000000000, 12.50, 0.25, true, 'a''b', 'hello', '2024-01-31 12:00:00.5',
           '2024-01-31 12:00:00+00', '2024-01-31', '\\x6869'),
          (2, -1, -2, -0.01, -1.5, false, 'c', 'é', '1999-12-31 23:59:59',
           '2000-01-01 00:00:00.123456+00', '1999-12-31', '\\x00'),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
    ))
    .await
    .expect("typed table");
}

async fn fake_with(config: RedshiftDataConfig) -> RedshiftDataFake {
    RedshiftDataFake::start(config).await.expect("start")
}

async fn call(
    fake: &RedshiftDataFake,
    op: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client()
        .post(format!("{}/", fake.base_url()))
        .header("x-amz-target", format!("RedshiftData.{op}"))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-date", "20240131T120000Z")
        .header("authorization", SIGV4)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn execute(fake: &RedshiftDataFake, body: Value) -> String {
    let (status, _, out) = call(fake, "ExecuteStatement", body).await;
    assert_eq!(status, 200, "{out}");
    out["Id"].as_str().unwrap().to_string()
}

/// Polls `DescribeStatement` until `Status` is one of `wanted` (10 s at most).
async fn wait_for(fake: &RedshiftDataFake, id: &str, wanted: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, out) = call(fake, "DescribeStatement", json!({"Id": id})).await;
        assert_eq!(status, 200, "{out}");
        if wanted.iter().any(|w| out["Status"] == *w) {
            return out;
        }
        assert!(Instant::now() < deadline, "still {out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn statement_runs_asynchronously_and_pages_typed_records() {
    let (pg, schema) = pg_schema("rs_typed").await;
    typed_table(&pg, &schema).await;
    let fake = fake_with(RedshiftDataConfig {
        queue_delay: Duration::from_millis(400),
        page_rows: 2,
        ..RedshiftDataConfig::new(&pg_url())
    })
    .await;
    let sql = format!(
        "SELECT * FROM {schema}.t WHERE id >= :min AND note IS DISTINCT FROM :skip ORDER BY id"
    );
    let id = execute(
        &fake,
        json!({
            "Sql": sql, "Database": "test", "WorkgroupName": "wg-etl", "StatementName": "sync",
            "Parameters": [{"name": "min", "value": "1"}, {"name": "skip", "value": "it's"}],
        }),
    )
    .await;
    let (_, _, first) = call(&fake, "DescribeStatement", json!({"Id": id})).await;
    assert_eq!(first["Status"], "SUBMITTED");
    assert_eq!(first["ResultRows"], -1);
    let done = wait_for(&fake, &id, &["FINISHED"]).await;
    assert_eq!(done["HasResultSet"], true);
    assert_eq!(done["ResultRows"], 3);
    assert_eq!(done["WorkgroupName"], "wg-etl");
    assert_eq!(done["QueryString"], sql);
    assert_eq!(done["QueryParameters"][1]["value"], "it's");
    assert!(done["Duration"].as_i64().unwrap() > 0);
    assert!(done["RedshiftPid"].as_i64().unwrap() > 0);

    let (status, _, page1) = call(&fake, "GetStatementResult", json!({"Id": id})).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["TotalNumRows"], 3);
    let meta = &page1["ColumnMetadata"];
    assert_eq!(meta.as_array().unwrap().len(), 12);
    assert_eq!(meta[0]["name"], "id");
    assert_eq!(meta[0]["typeName"], "int4");
    assert_eq!(meta[0]["nullable"], 0);
    assert_eq!(meta[0]["tableName"], "t");
    assert_eq!(meta[0]["schemaName"], schema);
    assert_eq!(
        (
            meta[3]["typeName"].clone(),
            meta[3]["precision"].clone(),
            meta[3]["scale"].clone()
        ),
        (json!("numeric"), json!(10), json!(2))
    );
    assert_eq!(
        (meta[6]["typeName"].clone(), meta[6]["length"].clone()),
        (json!("varchar"), json!(20))
    );
    assert_eq!(meta[7]["typeName"], "varchar");
    assert_eq!(meta[11]["typeName"], "varbyte");
    let row = &page1["Records"][0];
    assert_eq!(
        row,
        &json!([
            {"longValue": 1}, {"longValue": 7}, {"longValue": 9000000000i64}, {"stringValue": "12.50"},
            {"doubleValue": 0.25}, {"booleanValue": true}, {"stringValue": "a'b"}, {"stringValue": "hello"},
            {"stringValue": "2024-01-31 12:00:00.5"}, {"stringValue": "2024-01-31 12:00:00+00"},
            {"stringValue": "2024-01-31"}, {"blobValue": "aGk="},
        ])
    );
    assert_eq!(
        page1["Records"][1][9],
        json!({"stringValue": "2000-01-01 00:00:00.123456+00"})
    );
    assert_eq!(page1["Records"][1][7], json!({"stringValue": "é"}));
    let token = page1["NextToken"]
        .as_str()
        .expect("a second page")
        .to_string();

    let (_, _, page2) = call(
        &fake,
        "GetStatementResult",
        json!({"Id": id, "NextToken": token}),
    )
    .await;
    assert_eq!(page2["Records"].as_array().unwrap().len(), 1);
    assert_eq!(page2["Records"][0][0], json!({"longValue": 3}));
    let nulls: Vec<&Value> = page2["Records"][0].as_array().unwrap()[1..]
        .iter()
        .collect();
    assert!(
        nulls.iter().all(|f| **f == json!({"isNull": true})),
        "{nulls:?}"
    );
    assert!(page2.get("NextToken").is_none());
    let (status, _, bad) = call(
        &fake,
        "GetStatementResult",
        json!({"Id": id, "NextToken": "bm9wZQ=="}),
    )
    .await;
    assert_eq!(
        (status, bad["__type"].clone()),
        (400, json!("ValidationException"))
    );
}

#[tokio::test]
async fn sql_errors_end_failed_with_the_postgres_message() {
    let (_pg, schema) = pg_schema("rs_fail").await;
    let fake = fake_with(RedshiftDataConfig::new(&pg_url())).await;
    let id = execute(&fake, json!({"Sql": format!("SELECT * FROM {schema}.missing"), "Database": "test", "ClusterIdentifier": "etl", "DbUser": "awsuser"})).await;
    let failed = wait_for(&fake, &id, &["FAILED"]).await;
    assert_eq!(
        failed["Error"],
        format!("ERROR: relation \"{schema}.missing\" does not exist")
    );
    assert_eq!(failed["DbUser"], "awsuser");
    let (status, _, err) = call(&fake, "GetStatementResult", json!({"Id": id})).await;
    assert_eq!(status, 400);
    assert_eq!(err["__type"], "ResourceNotFoundException");
    assert_eq!(err["ResourceId"], id);

    let other = execute(
        &fake,
        json!({"Sql": "SELECT 1", "Database": "prod", "WorkgroupName": "wg-etl"}),
    )
    .await;
    let failed = wait_for(&fake, &other, &["FAILED"]).await;
    assert_eq!(failed["Error"], "ERROR: database \"prod\" does not exist");
}

#[tokio::test]
async fn dml_reports_affected_rows_and_client_tokens_are_idempotent() {
    let (pg, schema) = pg_schema("rs_dml").await;
    pg.batch_execute(&format!("CREATE TABLE {schema}.n (v int)"))
        .await
        .unwrap();
    let fake = fake_with(RedshiftDataConfig::new(&pg_url())).await;
    let body = json!({"Sql": format!("INSERT INTO {schema}.n SELECT generate_series(1, 4)"), "Database": "test", "WorkgroupName": "wg-etl", "ClientToken": "tok-1"});
    let id = execute(&fake, body.clone()).await;
    let again = execute(&fake, body).await;
    assert_eq!(id, again, "same ClientToken, same statement");
    let done = wait_for(&fake, &id, &["FINISHED"]).await;
    assert_eq!(
        (done["HasResultSet"].clone(), done["ResultRows"].clone()),
        (json!(false), json!(4))
    );
    let count: i64 = pg
        .query_one(&format!("SELECT count(*) FROM {schema}.n"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 4, "ran once");
    let (status, _, err) = call(&fake, "GetStatementResult", json!({"Id": id})).await;
    assert_eq!(
        (status, err["__type"].clone()),
        (400, json!("ResourceNotFoundException"))
    );

    fake.set_result_ttl(Duration::from_millis(500));
    let short = execute(
        &fake,
        json!({"Sql": "SELECT 1 AS one", "Database": "test", "WorkgroupName": "wg-etl"}),
    )
    .await;
    wait_for(&fake, &short, &["FINISHED"]).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, _, gone) = call(&fake, "GetStatementResult", json!({"Id": short})).await;
    assert_eq!(
        (status, gone["Message"].clone()),
        (400, json!("Query does not exist."))
    );
}

#[tokio::test]
async fn cancel_aborts_the_statement_and_its_postgres_query() {
    let (pg, _schema) = pg_schema("rs_cancel").await;
    let fake = fake_with(RedshiftDataConfig {
        max_active_statements: 1,
        ..RedshiftDataConfig::new(&pg_url())
    })
    .await;
    let id = execute(
        &fake,
        json!({"Sql": "SELECT pg_sleep(30)", "Database": "test", "WorkgroupName": "wg-etl"}),
    )
    .await;
    let started = wait_for(&fake, &id, &["STARTED"]).await;
    let pid = started["RedshiftPid"].as_i64().unwrap() as i32;
    let (status, _, busy) = call(
        &fake,
        "ExecuteStatement",
        json!({"Sql": "SELECT 1", "Database": "test", "WorkgroupName": "wg-etl"}),
    )
    .await;
    assert_eq!(
        (status, busy["__type"].clone()),
        (400, json!("ActiveStatementsExceededException"))
    );

    let t0 = Instant::now();
    let (status, _, out) = call(&fake, "CancelStatement", json!({"Id": id})).await;
    assert_eq!((status, out), (200, json!({"Status": true})));
    let aborted = wait_for(&fake, &id, &["ABORTED"]).await;
    assert!(aborted.get("Error").is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: i64 = pg
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'", &[&pid])
            .await
            .unwrap()
            .get(0);
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backend {pid} still runs pg_sleep"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "cancelled long before pg_sleep(30) ended"
    );
    let (status, _, err) = call(&fake, "CancelStatement", json!({"Id": id})).await;
    assert_eq!(status, 400);
    assert_eq!(
        err["Message"],
        format!("Could not cancel a query that is already in ABORTED state with ID: {id}")
    );
}

#[tokio::test]
async fn signature_protocol_and_validation_errors() {
    let fake = fake_with(RedshiftDataConfig::new(&pg_url())).await;
    let unsigned = client()
        .post(format!("{}/", fake.base_url()))
        .header("x-amz-target", "RedshiftData.DescribeStatement")
        .header("content-type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 400);
    let body: Value = unsigned.json().await.unwrap();
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
    let (status, _, err) = call(&fake, "ListWidgets", json!({})).await;
    assert_eq!(
        (status, err["__type"].clone()),
        (400, json!("UnknownOperationException"))
    );
    let (_, _, err) = call(&fake, "DescribeStatement", json!({"Id": "not-a-uuid"})).await;
    assert_eq!(err["__type"], "ValidationException");
    assert!(err["Message"]
        .as_str()
        .unwrap()
        .contains("regular expression pattern"));
    let (status, _, err) = call(
        &fake,
        "DescribeStatement",
        json!({"Id": "00000000-0000-4000-a000-000000000000"}),
    )
    .await;
    assert_eq!(
        (status, err["__type"].clone()),
        (400, json!("ResourceNotFoundException"))
    );
    let (_, _, err) = call(
        &fake,
        "ExecuteStatement",
        json!({"Sql": "SELECT :x", "Database": "test", "WorkgroupName": "w-1"}),
    )
    .await;
    assert_eq!(
        err["Message"],
        "The parameter :x in the SQL statement has no value in Parameters."
    );
    let (_, _, err) = call(
        &fake,
        "ExecuteStatement",
        json!({"Sql": "SELECT 1", "Database": "test"}),
    )
    .await;
    assert_eq!(err["__type"], "ValidationException");
    let (_, _, err) = call(&fake, "ExecuteStatement", json!({"Sql": "SELECT :x", "Database": "test", "WorkgroupName": "w-1", "Parameters": [{"name": "x", "value": ""}]})).await;
    assert!(
        err["Message"]
            .as_str()
            .unwrap()
            .contains("length greater than or equal to 1"),
        "{err}"
    );

    let (_, _, err) = call(
        &fake,
        "ExecuteStatement",
        json!({"Sql": "SELECT 1", "Database": "test", "WorkgroupName": "w-1", "ResultFormat": "CSV"}),
    )
    .await;
    assert_eq!(err["__type"], "ValidationException");
    let calls = fake.calls();
    assert_eq!(
        calls.len(),
        7,
        "the unsigned request never reached an operation"
    );
    assert_eq!(calls[0].operation, "ListWidgets");
    assert_eq!(calls[1].authorization.as_deref(), Some(SIGV4));
    assert_eq!(calls[4].body["Sql"], "SELECT 1");
    let log = fake.requests();
    assert_eq!((log.len(), log[0].status), (8, 400));
}

#[tokio::test]
async fn throttling_server_errors_and_execute_exceptions() {
    let fake = fake_with(RedshiftDataConfig::new(&pg_url())).await;
    let body = json!({"Sql": "SELECT 1", "Database": "test", "WorkgroupName": "wg-etl"});
    fake.faults().burst_429(1);
    let (status, headers, err) = call(&fake, "ExecuteStatement", body.clone()).await;
    assert_eq!(
        (status, err["__type"].clone()),
        (400, json!("ThrottlingException"))
    );
    assert_eq!(header_u64(&headers, "retry-after"), Some(1));
    fake.faults().set_error_ratio(1.0);
    let (status, _, err) = call(&fake, "ExecuteStatement", body.clone()).await;
    assert_eq!(
        (status, err["__type"].clone()),
        (503, json!("InternalServerException"))
    );
    fake.faults().set_error_ratio(0.0);
    fake.fail_next_executes(1);
    let (status, _, err) = call(&fake, "ExecuteStatement", body.clone()).await;
    assert_eq!(
        (status, err["__type"].clone()),
        (500, json!("ExecuteStatementException"))
    );
    assert!(err["StatementId"].is_string());
    let id = execute(&fake, body).await;
    let done = wait_for(&fake, &id, &["FINISHED"]).await;
    assert_eq!(done["ResultRows"], 1);
    let stats = fake.faults().stats();
    assert_eq!((stats.rate_limited, stats.server_errors), (1, 1));
}
