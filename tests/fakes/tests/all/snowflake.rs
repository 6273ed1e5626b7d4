//! Snowflake fake against the machine's PostgreSQL: chunked JSON and Arrow results with
//! SSE-C chunk downloads, password and key-pair login, session expiry and renewal,
//! async queries, abort, QUERY_TAG, faults.

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_ipc::reader::StreamReader;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use retl_fakes::{ChunkAuth, SnowflakeConfig, SnowflakeFake, SnowflakeUser};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{client, header_u64};
use crate::redshift_data::{pg_schema, pg_url, typed_table};

const PRIVATE: &[u8] = include_bytes!("../fixtures/jwt_private.pem");
const OTHER_PRIVATE: &[u8] = include_bytes!("../fixtures/other_private.pem");
const PUBLIC: &str = include_str!("../fixtures/jwt_public.pem");
const ACCOUNT: &str = "MYORG-ETL";

fn config(schema: &str) -> SnowflakeConfig {
    let users = vec![SnowflakeUser {
        name: "etl_user".into(),
        password: Some("s3cret".into()),
        public_key_pem: Some(PUBLIC.into()),
    }];
    SnowflakeConfig {
        schema: schema.to_ascii_uppercase(),
        ..SnowflakeConfig::new(&pg_url(), ACCOUNT, users)
    }
}

async fn post(
    fake: &SnowflakeFake,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client()
        .post(format!("{}{path}", fake.base_url()))
        .header("accept", "application/snowflake")
        .json(&body);
    if let Some(t) = token {
        req = req.header("authorization", format!("Snowflake Token=\"{t}\""));
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

async fn login(fake: &SnowflakeFake, data: Value) -> Value {
    let (status, _, out) = post(
        fake,
        "/session/v1/login-request?databaseName=test&warehouse=wh_etl&requestId=r-1",
        None,
        json!({"data": data}),
    )
    .await;
    assert_eq!(status, 200);
    out
}

async fn password_session(fake: &SnowflakeFake, params: Value) -> (String, String) {
    let out = login(fake, json!({"ACCOUNT_NAME": ACCOUNT, "LOGIN_NAME": "ETL_USER", "PASSWORD": "s3cret", "CLIENT_APP_ID": "retl", "SESSION_PARAMETERS": params})).await;
    assert_eq!(out["success"], true, "{out}");
    (
        out["data"]["token"].as_str().unwrap().to_string(),
        out["data"]["masterToken"].as_str().unwrap().to_string(),
    )
}

async fn query(fake: &SnowflakeFake, token: &str, request_id: &str, body: Value) -> Value {
    let (status, _, out) = post(
        fake,
        &format!("/queries/v1/query-request?requestId={request_id}"),
        Some(token),
        body,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    out
}

/// Downloads a chunk with `headers`, returning the status and the gunzipped body.
async fn chunk(url: &str, headers: &[(String, String)]) -> (u16, Vec<u8>) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert!(status != 200 || resp.headers()["content-encoding"] == "gzip");
    let bytes = resp.bytes().await.unwrap();
    if status != 200 {
        return (status, bytes.to_vec());
    }
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .unwrap();
    (status, out)
}

fn chunk_headers(data: &Value) -> Vec<(String, String)> {
    data["chunkHeaders"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn arrow_batch(bytes: &[u8]) -> RecordBatch {
    StreamReader::try_new(bytes, None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn json_results_arrive_in_gzip_chunks_with_sse_c_headers_and_query_tags() {
    let (pg, schema) = pg_schema("sf_json").await;
    typed_table(&pg, &schema).await;
    let fake = SnowflakeFake::start(SnowflakeConfig {
        rows_per_chunk: 1,
        ..config(&schema)
    })
    .await
    .unwrap();
    let (token, _) = password_session(
        &fake,
        json!({"QUERY_TAG": "retl:login", "CLIENT_SESSION_KEEP_ALIVE": false}),
    )
    .await;
    let login = &fake.logins()[0];
    assert_eq!(
        (
            login.user.as_str(),
            login.code.as_ref(),
            login.query["warehouse"].as_str()
        ),
        ("ETL_USER", None, "wh_etl")
    );

    let out = query(
        &fake,
        &token,
        "q-1",
        json!({"sqlText": "SELECT * FROM t ORDER BY id", "asyncExec": false, "sequenceId": 1}),
    )
    .await;
    assert_eq!(out["success"], true, "{out}");
    let data = &out["data"];
    assert_eq!(
        (
            data["total"].clone(),
            data["returned"].clone(),
            data["queryResultFormat"].clone()
        ),
        (json!(3), json!(1), json!("json"))
    );
    assert_eq!(data["rowtype"][3]["type"], "fixed");
    assert_eq!(
        (
            data["rowtype"][3]["precision"].clone(),
            data["rowtype"][3]["scale"].clone(),
            data["rowtype"][3]["name"].clone()
        ),
        (json!(10), json!(2), json!("AMOUNT"))
    );
    assert_eq!(data["rowtype"][9]["type"], "timestamp_ltz");
    assert_eq!(data["rowtype"][0]["nullable"], false);
    assert_eq!(data["finalWarehouseName"], "WH_ETL");
    assert_eq!(
        data["rowset"],
        json!([[
            "1",
            "7",
            "9000000000",
            "12.50",
            "0.25",
            "1",
            "a'b",
            "hello",
            "1706702400.500000000",
            "1706702400.000000000",
            "19753",
            "6869"
        ]])
    );
    let chunks = data["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 2);
    assert!(data["qrmk"].is_string());
    let headers = chunk_headers(data);
    assert_eq!(headers.len(), 3);
    let (status, body) = chunk(chunks[0]["url"].as_str().unwrap(), &headers).await;
    assert_eq!(status, 200);
    assert_eq!(chunks[0]["uncompressedSize"], body.len());
    assert_eq!(chunks[0]["rowCount"], 1);
    let rows: Value =
        serde_json::from_str(&format!("[{}]", String::from_utf8(body).unwrap())).unwrap();
    assert_eq!(rows[0][8], "946684799.000000000");
    assert_eq!(rows[0][5], "0");
    let (_, body) = chunk(chunks[1]["url"].as_str().unwrap(), &headers).await;
    let rows: Value =
        serde_json::from_str(&format!("[{}]", String::from_utf8(body).unwrap())).unwrap();
    assert_eq!(
        rows,
        json!([["3", null, null, null, null, null, null, null, null, null, null, null]])
    );

    let url = chunks[0]["url"].as_str().unwrap();
    assert_eq!(chunk(url, &[]).await.0, 400, "SSE-C headers are required");
    let wrong: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k.ends_with("-key") {
                    "AAAA".into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    assert_eq!(chunk(url, &wrong).await.0, 403);
    let mut with_auth = headers.clone();
    with_auth.push((
        "authorization".into(),
        format!("Snowflake Token=\"{token}\""),
    ));
    assert_eq!(
        chunk(url, &with_auth).await.0,
        400,
        "the session token must not reach cloud storage"
    );

    let alter = query(
        &fake,
        &token,
        "q-2",
        json!({"sqlText": "ALTER SESSION SET QUERY_TAG = 'retl:sync ''people'''"}),
    )
    .await;
    assert_eq!(
        alter["data"]["rowset"],
        json!([["Statement executed successfully."]])
    );
    query(&fake, &token, "q-3", json!({"sqlText": "SELECT 1"})).await;
    query(&fake, &token, "q-4", json!({"sqlText": "SELECT ?", "bindings": {"1": {"type": "TEXT", "value": "x"}}, "parameters": {"QUERY_TAG": "per-request"}})).await;
    let tags: Vec<Option<String>> = fake.queries().iter().map(|q| q.query_tag.clone()).collect();
    assert_eq!(
        tags,
        vec![
            Some("retl:login".into()),
            Some("retl:login".into()),
            Some("retl:sync 'people'".into()),
            Some("per-request".into())
        ]
    );
    assert_eq!(fake.queries()[3].request_id, "q-4");
}

#[tokio::test]
async fn arrow_results_in_rowset_base64_and_chunks_with_qrmk_headers() {
    let (pg, schema) = pg_schema("sf_arrow").await;
    typed_table(&pg, &schema).await;
    let fake = SnowflakeFake::start(SnowflakeConfig {
        rows_per_chunk: 2,
        chunk_auth: ChunkAuth::Qrmk,
        ..config(&schema)
    })
    .await
    .unwrap();
    let (token, _) = password_session(&fake, json!({"GO_QUERY_RESULT_FORMAT": "ARROW"})).await;
    let out = query(
        &fake,
        &token,
        "q-1",
        json!({"sqlText": "SELECT id, amount, seen, active, day, raw, note FROM t ORDER BY id"}),
    )
    .await;
    let data = &out["data"];
    assert_eq!(data["queryResultFormat"], "arrow");
    assert!(data.get("chunkHeaders").is_none());
    let first = base64::engine::general_purpose::STANDARD
        .decode(data["rowsetBase64"].as_str().unwrap())
        .unwrap();
    let batch = arrow_batch(&first);
    assert_eq!(batch.num_rows(), 2);
    let field = batch.schema().field(1).clone();
    assert_eq!(
        (
            field.name().as_str(),
            field.metadata()["logicalType"].as_str(),
            field.metadata()["scale"].as_str()
        ),
        ("AMOUNT", "FIXED", "2")
    );
    assert_eq!(
        batch.column(0).as_primitive::<Int64Type>().values(),
        &[1, 2]
    );
    assert_eq!(
        batch.column(1).as_primitive::<Int64Type>().values(),
        &[1250, -1]
    );
    let seen = batch.column(2).as_struct();
    assert_eq!(
        seen.column(0).as_primitive::<Int64Type>().value(0),
        1_706_702_400
    );
    assert_eq!(
        seen.column(1).as_primitive::<Int32Type>().value(0),
        500_000_000
    );
    assert!(batch.column(3).as_boolean().value(0));
    assert_eq!(
        batch
            .column(4)
            .as_primitive::<arrow_array::types::Date32Type>()
            .value(0),
        19753
    );
    assert_eq!(batch.column(5).as_binary::<i32>().value(0), b"hi");
    let qrmk = data["qrmk"].as_str().unwrap();
    let headers = vec![
        (
            "x-amz-server-side-encryption-customer-algorithm".to_string(),
            "AES256".to_string(),
        ),
        (
            "x-amz-server-side-encryption-customer-key".to_string(),
            qrmk.to_string(),
        ),
    ];
    let (status, body) = chunk(data["chunks"][0]["url"].as_str().unwrap(), &headers).await;
    assert_eq!(status, 200);
    let rest = arrow_batch(&body);
    assert_eq!(rest.num_rows(), 1);
    assert!(rest.column(1).is_null(0) && rest.column(2).is_null(0));

    let json_again = query(
        &fake,
        &token,
        "q-2",
        json!({"sqlText": "SELECT 1 AS one", "parameters": {"GO_QUERY_RESULT_FORMAT": "JSON"}}),
    )
    .await;
    assert_eq!(json_again["data"]["rowset"], json!([["1"]]));
}

fn jwt(key: &[u8], iss: &str, sub: &str, lifetime: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": iss, "sub": sub, "iat": now, "exp": now + lifetime});
    encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(key).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn key_pair_jwt_and_password_failures_use_the_real_codes() {
    let fake = SnowflakeFake::start(config("public")).await.unwrap();
    let der: String = PUBLIC.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .unwrap();
    let fp = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&der));
    let iss = format!("MYORG-ETL.ETL_USER.SHA256:{fp}");
    let body = |token: String| json!({"ACCOUNT_NAME": "myorg-etl", "LOGIN_NAME": "etl_user", "AUTHENTICATOR": "SNOWFLAKE_JWT", "TOKEN": token});
    let ok = login(&fake, body(jwt(PRIVATE, &iss, "MYORG-ETL.ETL_USER", 300))).await;
    assert_eq!(ok["success"], true, "{ok}");
    assert!(ok["data"]["sessionId"].as_i64().unwrap() > 0);
    assert_eq!(ok["data"]["validityInSeconds"], 3600);
    for bad in [
        jwt(OTHER_PRIVATE, &iss, "MYORG-ETL.ETL_USER", 300),
        jwt(
            PRIVATE,
            "MYORG-ETL.ETL_USER.SHA256:AAAA",
            "MYORG-ETL.ETL_USER",
            300,
        ),
        jwt(PRIVATE, &iss, "OTHER.ETL_USER", 300),
        jwt(PRIVATE, &iss, "MYORG-ETL.ETL_USER", 7200),
    ] {
        let out = login(&fake, body(bad)).await;
        assert_eq!(
            (out["success"].clone(), out["code"].clone()),
            (json!(false), json!("390144"))
        );
        assert!(out["message"]
            .as_str()
            .unwrap()
            .starts_with("JWT token is invalid."));
    }
    let out = login(
        &fake,
        json!({"ACCOUNT_NAME": ACCOUNT, "LOGIN_NAME": "etl_user", "PASSWORD": "nope"}),
    )
    .await;
    assert_eq!(
        (out["code"].clone(), out["message"].clone()),
        (
            json!("390100"),
            json!("Incorrect username or password was specified.")
        )
    );
    let codes: Vec<Option<String>> = fake.logins().iter().map(|l| l.code.clone()).collect();
    assert_eq!(codes[0], None);
    assert_eq!(codes.len(), 6);
}

#[tokio::test]
async fn session_tokens_expire_and_renew_with_the_master_token() {
    let fake = SnowflakeFake::start(config("public")).await.unwrap();
    let (token, master) = password_session(&fake, json!({})).await;
    fake.expire_session_tokens();
    let out = query(&fake, &token, "q-1", json!({"sqlText": "SELECT 1"})).await;
    assert_eq!(
        (out["success"].clone(), out["code"].clone()),
        (json!(false), json!("390112"))
    );
    let (_, _, renewed) = post(
        &fake,
        "/session/token-request?requestId=r-2",
        Some(&master),
        json!({"oldSessionToken": token, "requestType": "RENEW"}),
    )
    .await;
    assert_eq!(renewed["success"], true, "{renewed}");
    let fresh = renewed["data"]["sessionToken"].as_str().unwrap();
    assert_ne!(fresh, token);
    assert_eq!(renewed["data"]["validityInSecondsMT"], 14400);
    let out = query(&fake, fresh, "q-2", json!({"sqlText": "SELECT 2 AS two"})).await;
    assert_eq!(out["data"]["rowset"], json!([["2"]]));
    let out = query(&fake, &token, "q-3", json!({"sqlText": "SELECT 1"})).await;
    assert_eq!(out["code"], "390111", "the old token is gone");
    fake.expire_master_tokens();
    let (_, _, out) = post(
        &fake,
        "/session/token-request",
        Some(&master),
        json!({"oldSessionToken": fresh, "requestType": "RENEW"}),
    )
    .await;
    assert_eq!(out["code"], "390114");
    let (status, _, out) = post(
        &fake,
        "/queries/v1/query-request",
        None,
        json!({"sqlText": "SELECT 1"}),
    )
    .await;
    assert_eq!((status, out["code"].clone()), (401, json!("390101")));
    let (_, _, out) = post(&fake, "/session?delete=true", Some(fresh), json!({})).await;
    assert_eq!(out["success"], true);
}

#[tokio::test]
async fn async_queries_poll_get_result_url_and_abort_the_postgres_query() {
    let (pg, schema) = pg_schema("sf_async").await;
    let fake = SnowflakeFake::start(SnowflakeConfig {
        sync_wait: Duration::from_millis(200),
        ..config(&schema)
    })
    .await
    .unwrap();
    let (token, _) = password_session(&fake, json!({})).await;
    let marker = format!("sf_abort_{}", std::process::id());
    let out = query(
        &fake,
        &token,
        "req-long",
        json!({"sqlText": format!("SELECT pg_sleep(30) /* {marker} */"), "asyncExec": true}),
    )
    .await;
    assert_eq!(
        (out["code"].clone(), out["success"].clone()),
        (json!("333334"), json!(true))
    );
    let id = out["data"]["queryId"].as_str().unwrap().to_string();
    let result_url = out["data"]["getResultUrl"].as_str().unwrap().to_string();
    assert_eq!(result_url, format!("/queries/{id}/result"));
    let poll = |url: String| {
        let token = token.clone();
        let base = fake.base_url().to_string();
        async move {
            let resp = client()
                .get(format!("{base}{url}"))
                .header("authorization", format!("Snowflake Token=\"{token}\""))
                .send()
                .await
                .unwrap();
            resp.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(poll(result_url.clone()).await["code"], "333333");
    let (_, _, aborted) = post(
        &fake,
        "/queries/v1/abort-request?requestId=r-9",
        Some(&token),
        json!({"requestId": "req-long"}),
    )
    .await;
    assert_eq!(aborted["success"], true, "{aborted}");
    let ended = poll(result_url.clone()).await;
    assert_eq!(
        (
            ended["code"].clone(),
            ended["message"].clone(),
            ended["data"]["sqlState"].clone()
        ),
        (
            json!("000604"),
            json!("SQL execution canceled"),
            json!("57014")
        )
    );
    let like = format!("%{marker}%");
    let n: i64 = pg.query_one("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()", &[&like]).await.unwrap().get(0);
    assert_eq!(n, 0, "pg_sleep was cancelled on the server");
    let (_, _, again) = post(
        &fake,
        "/queries/v1/abort-request",
        Some(&token),
        json!({"requestId": "req-long"}),
    )
    .await;
    assert_eq!(again["code"], "000605");
    let status = poll(format!("/monitoring/queries/{id}")).await;
    let entry = &status["data"]["queries"][0];
    assert_eq!(
        (entry["status"].clone(), entry["errorCode"].clone()),
        (json!("FAILED_WITH_ERROR"), json!("000604"))
    );

    let slow = query(
        &fake,
        &token,
        "req-slow",
        json!({"sqlText": "SELECT 42 AS answer FROM pg_sleep(0.5)"}),
    )
    .await;
    assert_eq!(
        slow["code"], "333333",
        "held for sync_wait, then handed back for polling"
    );
    let url = slow["data"]["getResultUrl"].as_str().unwrap().to_string();
    let mut done = poll(url.clone()).await;
    for _ in 0..20 {
        if done["success"] == true && done["code"].is_null() {
            break;
        }
        done = poll(url.clone()).await;
    }
    assert_eq!(done["data"]["rowset"], json!([["42"]]));

    // Back to a generous hold, so the statements below answer in one round trip.
    fake.set_sync_wait(Duration::from_secs(10));
    let failed = query(
        &fake,
        &token,
        "req-bad",
        json!({"sqlText": "SELECT * FROM missing_table"}),
    )
    .await;
    assert_eq!(
        (
            failed["success"].clone(),
            failed["code"].clone(),
            failed["data"]["sqlState"].clone()
        ),
        (json!(false), json!("002003"), json!("42S02"))
    );
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .starts_with("SQL compilation error:\nrelation \"missing_table\" does not exist"));
    let dml = query(
        &fake,
        &token,
        "req-ddl",
        json!({"sqlText": "CREATE TABLE made_here (v int)"}),
    )
    .await;
    assert_eq!(
        dml["data"]["rowset"],
        json!([["Statement executed successfully."]])
    );
    let ins = query(
        &fake,
        &token,
        "req-ins",
        json!({"sqlText": "INSERT INTO made_here VALUES (1), (2)"}),
    )
    .await;
    assert_eq!(
        (
            ins["data"]["rowtype"][0]["name"].clone(),
            ins["data"]["rowset"].clone()
        ),
        (json!("number of rows inserted"), json!([["2"]]))
    );
}

#[tokio::test]
async fn throttling_and_server_errors_spare_chunk_downloads() {
    let (pg, schema) = pg_schema("sf_faults").await;
    typed_table(&pg, &schema).await;
    let fake = SnowflakeFake::start(SnowflakeConfig {
        rows_per_chunk: 2,
        ..config(&schema)
    })
    .await
    .unwrap();
    let (token, _) = password_session(&fake, json!({})).await;
    let out = query(
        &fake,
        &token,
        "q-1",
        json!({"sqlText": "SELECT id FROM t ORDER BY id"}),
    )
    .await;
    fake.faults().burst_429(1);
    let (status, headers, _) = post(
        &fake,
        "/queries/v1/query-request?requestId=q-2",
        Some(&token),
        json!({"sqlText": "SELECT 1"}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(header_u64(&headers, "retry-after"), Some(1));
    fake.faults().set_error_ratio(1.0);
    let (status, _, _) = post(
        &fake,
        "/queries/v1/query-request?requestId=q-3",
        Some(&token),
        json!({"sqlText": "SELECT 1"}),
    )
    .await;
    assert_eq!(status, 503);
    let (status, body) = chunk(
        out["data"]["chunks"][0]["url"].as_str().unwrap(),
        &chunk_headers(&out["data"]),
    )
    .await;
    assert_eq!(
        (status, String::from_utf8(body).unwrap()),
        (200, "[\"3\"]".to_string())
    );
    assert_eq!(
        fake.queries().len(),
        1,
        "refused requests never reached the query handler"
    );
}
