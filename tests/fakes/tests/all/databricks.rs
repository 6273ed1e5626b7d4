//! Databricks SQL Statement Execution API fake against the machine's PostgreSQL: INLINE
//! chunks, EXTERNAL_LINKS in JSON/CSV/Arrow, parameters, limits, async polling and
//! cancellation, PAT and OAuth M2M auth, faults.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_ipc::reader::StreamReader;
use arrow_schema::{DataType, TimeUnit};
use retl_fakes::{DatabricksConfig, DatabricksFake};
use serde_json::{json, Value};

use crate::common::{client, header_u64};
use crate::redshift_data::{pg_schema, pg_url, typed_table};

const PAT: &str = "dapi0123456789abcdef";

async fn fake_with(rows_per_chunk: usize) -> DatabricksFake {
    DatabricksFake::start(DatabricksConfig {
        rows_per_chunk,
        oauth_client: Some(("sp-client".into(), "sp-secret".into())),
        ..DatabricksConfig::new(&pg_url(), PAT)
    })
    .await
    .expect("start")
}

async fn api(
    fake: &DatabricksFake,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().request(method, format!("{}{path}", fake.base_url()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn execute(fake: &DatabricksFake, body: Value) -> (u16, Value) {
    let (status, _, out) = api(
        fake,
        reqwest::Method::POST,
        "/api/2.0/sql/statements",
        Some(body),
        Some(PAT),
    )
    .await;
    (status, out)
}

async fn get(fake: &DatabricksFake, path: &str) -> (u16, Value) {
    let (status, _, out) = api(fake, reqwest::Method::GET, path, None, Some(PAT)).await;
    (status, out)
}

/// Polls the statement until its state is one of `wanted`.
async fn wait_state(fake: &DatabricksFake, id: &str, wanted: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, out) = get(fake, &format!("/api/2.0/sql/statements/{id}")).await;
        assert_eq!(status, 200, "{out}");
        if wanted.iter().any(|w| out["status"]["state"] == *w) {
            return out;
        }
        assert!(Instant::now() < deadline, "still {out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs an external link the way a client must: no Authorization, the listed headers.
async fn download(link: &Value) -> (u16, Vec<u8>) {
    let mut req = client().get(link["external_link"].as_str().unwrap());
    for (k, v) in link["http_headers"].as_object().into_iter().flatten() {
        req = req.header(k.as_str(), v.as_str().unwrap());
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn inline_json_array_in_several_chunks() {
    let (pg, schema) = pg_schema("dbx_inline").await;
    typed_table(&pg, &schema).await;
    let fake = fake_with(2).await;
    let (status, out) = execute(&fake, json!({
        "statement": "SELECT * FROM t WHERE id >= :min AND note IS DISTINCT FROM :skip ORDER BY id",
        "warehouse_id": "wh-1", "catalog": "main", "schema": schema, "wait_timeout": "10s",
        "parameters": [{"name": "min", "value": "1", "type": "INT"}, {"name": "skip", "value": "it's"}],
    }))
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["status"]["state"], "SUCCEEDED");
    let manifest = &out["manifest"];
    assert_eq!(manifest["format"], "JSON_ARRAY");
    assert_eq!(
        (
            manifest["total_row_count"].clone(),
            manifest["total_chunk_count"].clone(),
            manifest["truncated"].clone()
        ),
        (json!(3), json!(2), json!(false))
    );
    assert_eq!(
        manifest["chunks"],
        json!([{"chunk_index": 0, "row_offset": 0, "row_count": 2}, {"chunk_index": 1, "row_offset": 2, "row_count": 1}])
    );
    let cols = &manifest["schema"]["columns"];
    assert_eq!(manifest["schema"]["column_count"], 12);
    let names: Vec<(&str, &str)> = cols
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type_name"].as_str().unwrap(),
                c["type_text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("INT", "INT"),
            ("SHORT", "SMALLINT"),
            ("LONG", "BIGINT"),
            ("DECIMAL", "DECIMAL(10,2)"),
            ("DOUBLE", "DOUBLE"),
            ("BOOLEAN", "BOOLEAN"),
            ("STRING", "STRING"),
            ("STRING", "STRING"),
            ("TIMESTAMP_NTZ", "TIMESTAMP_NTZ"),
            ("TIMESTAMP", "TIMESTAMP"),
            ("DATE", "DATE"),
            ("BINARY", "BINARY")
        ]
    );
    assert_eq!(
        (
            cols[3]["type_precision"].clone(),
            cols[3]["type_scale"].clone(),
            cols[11]["position"].clone()
        ),
        (json!(10), json!(2), json!(11))
    );
    let result = &out["result"];
    assert_eq!(
        result["data_array"][0],
        json!([
            "1",
            "7",
            "9000000000",
            "12.50",
            "0.25",
            "true",
            "a'b",
            "hello",
            "2024-01-31T12:00:00.500",
            "2024-01-31T12:00:00Z",
            "2024-01-31",
            "aGk="
        ])
    );
    assert_eq!(result["data_array"][1][3], "-0.01");
    assert_eq!(result["data_array"][1][9], "2000-01-01T00:00:00.123456Z");
    assert_eq!(result["next_chunk_index"], 1);
    let id = out["statement_id"].as_str().unwrap();
    let link = result["next_chunk_internal_link"].as_str().unwrap();
    assert_eq!(
        link,
        format!("/api/2.0/sql/statements/{id}/result/chunks/1")
    );
    let (status, chunk) = get(&fake, link).await;
    assert_eq!(status, 200, "{chunk}");
    assert_eq!(
        chunk["data_array"],
        json!([["3", null, null, null, null, null, null, null, null, null, null, null]])
    );
    assert_eq!(
        (chunk["row_offset"].clone(), chunk.get("next_chunk_index")),
        (json!(2), None)
    );
    let (status, err) = get(
        &fake,
        &format!("/api/2.0/sql/statements/{id}/result/chunks/2"),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (400, json!("INVALID_PARAMETER_VALUE"))
    );
    let calls = fake.calls();
    assert_eq!(calls[0].body["parameters"][0]["type"], "INT");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {PAT}").as_str())
    );
}

#[tokio::test]
async fn external_links_serve_arrow_csv_and_json_without_the_bearer_token() {
    let (pg, schema) = pg_schema("dbx_links").await;
    typed_table(&pg, &schema).await;
    let fake = fake_with(2).await;
    let sql = format!("SELECT id, amount, seen_tz, big, note FROM {schema}.t ORDER BY id");
    let (status, out) = execute(&fake, json!({"statement": sql, "warehouse_id": "wh-1", "disposition": "EXTERNAL_LINKS", "format": "ARROW_STREAM"})).await;
    assert_eq!(status, 200, "{out}");
    let link = &out["result"]["external_links"][0];
    assert_eq!(
        (
            link["chunk_index"].clone(),
            link["row_count"].clone(),
            link["next_chunk_index"].clone()
        ),
        (json!(0), json!(2), json!(1))
    );
    assert!(link["expiration"].as_str().unwrap().ends_with('Z'));
    let (status, bytes) = download(link).await;
    assert_eq!(status, 200);
    assert_eq!(link["byte_count"], bytes.len());
    assert_eq!(out["manifest"]["chunks"][0]["byte_count"], bytes.len());
    let batch = StreamReader::try_new(bytes.as_slice(), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let schema_ref = batch.schema();
    assert_eq!(
        schema_ref.field(1).data_type(),
        &DataType::Decimal128(10, 2)
    );
    assert_eq!(
        schema_ref.field(2).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("Etc/UTC")))
    );
    assert_eq!(
        batch.column(0).as_primitive::<Int32Type>().values(),
        &[1, 2]
    );
    assert_eq!(
        batch.column(1).as_primitive::<Decimal128Type>().value(0),
        1250
    );
    assert_eq!(
        batch
            .column(2)
            .as_primitive::<TimestampMicrosecondType>()
            .value(1),
        946_684_800_123_456
    );
    assert_eq!(
        batch.column(3).as_primitive::<Int64Type>().value(0),
        9_000_000_000
    );
    assert_eq!(batch.column(4).as_string::<i32>().value(1), "é");

    let with_auth = client()
        .get(link["external_link"].as_str().unwrap())
        .bearer_auth(PAT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_auth.status().as_u16(),
        400,
        "the Databricks token must not reach cloud storage"
    );
    let id = out["statement_id"].as_str().unwrap();
    let (_, next) = get(
        &fake,
        &format!("/api/2.0/sql/statements/{id}/result/chunks/1"),
    )
    .await;
    let second = &next["external_links"][0];
    let (_, bytes) = download(second).await;
    let batch = StreamReader::try_new(bytes.as_slice(), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((batch.num_rows(), batch.column(1).is_null(0)), (1, true));

    let (_, out) = execute(&fake, json!({"statement": sql, "warehouse_id": "wh-1", "disposition": "EXTERNAL_LINKS", "format": "CSV"})).await;
    let (_, csv0) = download(&out["result"]["external_links"][0]).await;
    assert_eq!(String::from_utf8(csv0).unwrap(), "id,amount,seen_tz,big,note\r\n1,12.50,2024-01-31T12:00:00Z,9000000000,hello\r\n2,-0.01,2000-01-01T00:00:00.123456Z,-2,é\r\n");
    let id = out["statement_id"].as_str().unwrap();
    let (_, next) = get(
        &fake,
        &format!("/api/2.0/sql/statements/{id}/result/chunks/1"),
    )
    .await;
    let (_, csv1) = download(&next["external_links"][0]).await;
    assert_eq!(
        String::from_utf8(csv1).unwrap(),
        "3,null,null,null,null\r\n",
        "header only in the first chunk"
    );

    fake.set_link_ttl(Duration::from_millis(1000));
    let (_, out) = execute(
        &fake,
        json!({"statement": sql, "warehouse_id": "wh-1", "disposition": "EXTERNAL_LINKS"}),
    )
    .await;
    let (status, json0) = download(&out["result"]["external_links"][0]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&json0).unwrap()[0],
        json!(["1", "12.50", "2024-01-31T12:00:00Z", "9000000000", "hello"])
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = download(&out["result"]["external_links"][0]).await;
    assert_eq!(status, 403);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("Request has expired"));

    let (status, err) = execute(
        &fake,
        json!({"statement": sql, "warehouse_id": "wh-1", "format": "ARROW_STREAM"}),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (400, json!("INVALID_PARAMETER_VALUE"))
    );
}

#[tokio::test]
async fn async_statements_poll_and_cancel_the_postgres_query() {
    let (pg, _schema) = pg_schema("dbx_cancel").await;
    let fake = fake_with(100).await;
    let marker = format!("dbx_cancel_{}", std::process::id());
    let (status, out) = execute(&fake, json!({"statement": format!("SELECT pg_sleep(30) /* {marker} */"), "warehouse_id": "wh-1", "wait_timeout": "0s"})).await;
    assert_eq!(status, 200);
    assert!(
        ["PENDING", "RUNNING"].contains(&out["status"]["state"].as_str().unwrap()),
        "{out}"
    );
    assert!(out.get("manifest").is_none());
    let id = out["statement_id"].as_str().unwrap().to_string();
    wait_state(&fake, &id, &["RUNNING"]).await;
    let (status, _, body) = api(
        &fake,
        reqwest::Method::POST,
        &format!("/api/2.0/sql/statements/{id}/cancel"),
        None,
        Some(PAT),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    wait_state(&fake, &id, &["CANCELED"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let like = format!("%{marker}%");
    loop {
        let n: i64 = pg.query_one("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()", &[&like]).await.unwrap().get(0);
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "pg_sleep still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t0 = Instant::now();
    let (_, out) = execute(&fake, json!({"statement": "SELECT pg_sleep(30)", "warehouse_id": "wh-1", "wait_timeout": "5s", "on_wait_timeout": "CANCEL"})).await;
    assert_eq!(out["status"]["state"], "CANCELED");
    assert!(t0.elapsed() >= Duration::from_secs(5) && t0.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn sql_failures_parameters_limits_and_dml() {
    let (pg, schema) = pg_schema("dbx_fail").await;
    pg.batch_execute(&format!("CREATE TABLE {schema}.n (v int)"))
        .await
        .unwrap();
    let fake = fake_with(100).await;
    let (_, out) = execute(
        &fake,
        json!({"statement": format!("SELECT * FROM {schema}.missing"), "warehouse_id": "wh-1"}),
    )
    .await;
    assert_eq!(out["status"]["state"], "FAILED");
    assert_eq!(
        out["status"]["error"],
        json!({"error_code": "BAD_REQUEST", "message": format!("relation \"{schema}.missing\" does not exist")})
    );
    assert_eq!(out["status"]["sql_state"], "42P01");
    let (_, out) = execute(
        &fake,
        json!({"statement": "SELECT :nope", "warehouse_id": "wh-1"}),
    )
    .await;
    assert!(out["status"]["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("[UNBOUND_SQL_PARAMETER] Found the unbound parameter: nope."));
    let (status, err) = execute(
        &fake,
        json!({"statement": "SELECT 1", "warehouse_id": "wh-1", "wait_timeout": "3s"}),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (400, json!("INVALID_PARAMETER_VALUE"))
    );
    let (status, err) = execute(&fake, json!({"statement": "SELECT 1"})).await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (400, json!("INVALID_PARAMETER_VALUE"))
    );

    let (_, out) = execute(&fake, json!({"statement": format!("INSERT INTO {schema}.n SELECT generate_series(1, 5)"), "warehouse_id": "wh-1"})).await;
    assert_eq!(
        out["manifest"]["schema"]["columns"][0]["name"],
        "num_affected_rows"
    );
    assert_eq!(out["result"]["data_array"], json!([["5"]]));
    let (_, out) = execute(&fake, json!({"statement": format!("SELECT v FROM {schema}.n ORDER BY v"), "warehouse_id": "wh-1", "row_limit": 3})).await;
    assert_eq!(
        (
            out["manifest"]["truncated"].clone(),
            out["manifest"]["total_row_count"].clone()
        ),
        (json!(true), json!(3))
    );
    let (_, out) = execute(&fake, json!({
        "statement": "SELECT :d AS d, :n AS n, :x AS x", "warehouse_id": "wh-1",
        "parameters": [{"name": "d", "value": "2024-02-29", "type": "DATE"}, {"name": "n", "value": "1.5", "type": "DECIMAL(4,2)"}, {"name": "x", "type": "INT"}],
    }))
    .await;
    assert_eq!(
        out["result"]["data_array"],
        json!([["2024-02-29", "1.50", null]])
    );
    assert_eq!(
        out["manifest"]["schema"]["columns"][1]["type_text"],
        "DECIMAL(4,2)"
    );

    fake.set_result_ttl(Duration::from_millis(30));
    let (_, out) = execute(
        &fake,
        json!({"statement": "SELECT 1", "warehouse_id": "wh-1"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    let id = out["statement_id"].as_str().unwrap();
    let closed = wait_state(&fake, id, &["CLOSED"]).await;
    assert!(closed.get("result").is_none());
    let (status, _) = get(
        &fake,
        &format!("/api/2.0/sql/statements/{id}/result/chunks/0"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, err) = get(
        &fake,
        "/api/2.0/sql/statements/01ef0000-0000-4000-a000-000000000000",
    )
    .await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (404, json!("NOT_FOUND"))
    );
}

#[tokio::test]
async fn pat_oauth_m2m_throttling_and_unavailability() {
    let fake = fake_with(100).await;
    let path = "/api/2.0/sql/statements";
    let body = json!({"statement": "SELECT 1 AS one", "warehouse_id": "wh-1"});
    let (status, _, err) = api(&fake, reqwest::Method::POST, path, Some(body.clone()), None).await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    let (status, _, err) = api(
        &fake,
        reqwest::Method::POST,
        path,
        Some(body.clone()),
        Some("dapi-wrong"),
    )
    .await;
    assert_eq!(
        (status, err["message"].clone()),
        (403, json!("Invalid access token."))
    );

    let token_url = format!("{}/oidc/v1/token", fake.base_url());
    let discovery: Value = client()
        .get(format!(
            "{}/oidc/.well-known/oauth-authorization-server",
            fake.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["token_endpoint"], token_url.as_str());
    let form = [("grant_type", "client_credentials"), ("scope", "all-apis")];
    let resp = client()
        .post(&token_url)
        .basic_auth("sp-client", Some("sp-secret"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let granted: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            granted["token_type"].clone(),
            granted["expires_in"].clone(),
            granted["scope"].clone()
        ),
        (json!("Bearer"), json!(3600), json!("all-apis"))
    );
    let access = granted["access_token"].as_str().unwrap().to_string();
    let (status, _, out) = api(
        &fake,
        reqwest::Method::POST,
        path,
        Some(body.clone()),
        Some(&access),
    )
    .await;
    assert_eq!(
        (status, out["result"]["data_array"].clone()),
        (200, json!([["1"]]))
    );
    let denied = client()
        .post(&token_url)
        .basic_auth("sp-client", Some("nope"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    assert_eq!(
        denied.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    fake.expire_oauth_tokens();
    let (status, _, _) = api(
        &fake,
        reqwest::Method::POST,
        path,
        Some(body.clone()),
        Some(&access),
    )
    .await;
    assert_eq!(status, 403);

    let (_, out) = execute(
        &fake,
        json!({"statement": "SELECT 1", "warehouse_id": "wh-1", "disposition": "EXTERNAL_LINKS"}),
    )
    .await;
    fake.faults().burst_429(1);
    let (status, headers, err) = api(
        &fake,
        reqwest::Method::POST,
        path,
        Some(body.clone()),
        Some(PAT),
    )
    .await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (429, json!("REQUEST_LIMIT_EXCEEDED"))
    );
    assert_eq!(header_u64(&headers, "retry-after"), Some(1));
    fake.faults().set_error_ratio(1.0);
    let (status, _, err) = api(&fake, reqwest::Method::POST, path, Some(body), Some(PAT)).await;
    assert_eq!(
        (status, err["error_code"].clone()),
        (503, json!("TEMPORARILY_UNAVAILABLE"))
    );
    let (status, _) = download(&out["result"]["external_links"][0]).await;
    assert_eq!(
        status, 200,
        "cloud storage is outside the workspace's faults"
    );
    let stats = fake.faults().stats();
    assert_eq!((stats.rate_limited, stats.server_errors), (1, 1));
}
