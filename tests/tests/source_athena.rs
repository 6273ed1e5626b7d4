//! Amazon Athena as a source, through the source conformance suite, against moto's Athena.
//!
//! moto does not run queries: it answers `GetQueryResults` with the results it is told to
//! return (`POST /moto-api/static/athena/query-results`). A thin front in this test stands
//! between retl and moto: for each `StartQueryExecution` it runs the SQL on the machine's
//! PostgreSQL (where the suite loaded its tables), tells moto the result in Athena's form
//! (every value a string, the header as the first row, `ColumnInfo` with Athena's type
//! names), and reports the query RUNNING until then, FAILED with Athena's error name when
//! PostgreSQL refuses it; it pages moto's single answer (moto has no `NextToken`) and
//! refuses requests not signed with the test's access key, as AWS does. Every other call
//! (S3's among them) goes to moto unchanged. moto also writes each result as the CSV file
//! Athena leaves in the output location, which `results_from: s3` reads with S3 GetObject.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use retl_shared::ports::ModelQuery;
use retl_tests::moto::Moto;
use retl_tests::source_suite::{open_source, run_all, Kind, TypeCase, Warehouse};
use retl_tests::Pg;
use serde_json::{json, Value};
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, NoTls, SimpleQueryMessage};

const KEY_ID: &str = "AKIDATHENATEST";
/// Rows per `GetQueryResults` page the front serves (the header row counts).
const PAGE: usize = 2;

/// A query's progress on PostgreSQL.
enum Progress {
    Running(CancelToken),
    Failed(String),
    Done,
}

struct Front {
    moto: String,
    pg_url: String,
    http: reqwest::Client,
    queries: Mutex<HashMap<String, Progress>>,
    calls: Mutex<Vec<(String, Value)>>,
    /// Requests that are not Athena's (S3), passed on to moto: method and path.
    passed: Mutex<Vec<(String, String)>>,
}

fn aws_error(status: StatusCode, shape: &str, message: &str) -> Response {
    let body = json!({"__type": shape, "Message": message}).to_string();
    (
        status,
        [("content-type", "application/x-amz-json-1.1")],
        body,
    )
        .into_response()
}

fn json_answer(v: &Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

impl Front {
    async fn forward(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> (u16, Bytes) {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = self.http.request(method, format!("{}{path}", self.moto));
        for (k, v) in headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        let resp = req.body(body).send().await.expect("moto answers");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("moto's body"))
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, HashMap<String, Progress>> {
        self.queries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `?` markers (outside strings, identifiers and comments) replaced by the parameters, which
/// Athena binds as SQL literals.
fn bind(sql: &str, params: &[String]) -> String {
    let (mut out, mut next, mut quote, mut comment) = (String::new(), 0, None::<char>, false);
    for c in sql.chars() {
        match (quote, comment, c) {
            (None, true, '\n') => comment = false,
            (None, false, '?') if next < params.len() => {
                out.push_str(&params[next]);
                next += 1;
                continue;
            }
            (None, false, '\'' | '"') => quote = Some(c),
            (None, false, '-') if out.ends_with('-') => comment = true,
            (Some(q), _, c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Athena's name for a PostgreSQL type.
fn athena_type(ty: &Type) -> &'static str {
    match *ty {
        Type::INT2 => "smallint",
        Type::INT4 => "integer",
        Type::INT8 => "bigint",
        Type::NUMERIC => "decimal",
        Type::FLOAT4 => "real",
        Type::FLOAT8 => "double",
        Type::BOOL => "boolean",
        Type::DATE => "date",
        Type::TIMESTAMP => "timestamp",
        Type::TIMESTAMPTZ => "timestamp with time zone",
        Type::JSON | Type::JSONB => "json",
        Type::BYTEA => "varbinary",
        _ => "varchar",
    }
}

/// A PostgreSQL text value as Athena writes it.
fn athena_text(ty: &Type, text: &str) -> String {
    let millis = |t: &str| {
        chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            .unwrap_or_else(|_| t.to_string())
    };
    match *ty {
        Type::BOOL => (text == "t").to_string(),
        Type::TIMESTAMP => millis(text),
        Type::TIMESTAMPTZ => format!("{} UTC", millis(text.trim_end_matches("+00"))),
        Type::BYTEA => {
            let hex = text.trim_start_matches("\\x");
            let bytes: Vec<&str> = (0..hex.len()).step_by(2).map(|i| &hex[i..i + 2]).collect();
            bytes.join(" ")
        }
        _ => text.to_string(),
    }
}

/// Athena's error text for a PostgreSQL error.
fn athena_error(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return format!("GENERIC_INTERNAL_ERROR: {e}");
    };
    let name = match db.code().code() {
        "42P01" => "TABLE_NOT_FOUND",
        "42703" => "COLUMN_NOT_FOUND",
        "42601" => "SYNTAX_ERROR",
        _ => "GENERIC_USER_ERROR",
    };
    format!("{name}: line 1:1: {}", db.message())
}

/// Runs one query on PostgreSQL and, when it succeeds, tells moto its result.
async fn run_query(front: Arc<Front>, id: String, sql: String) {
    let (client, conn) = tokio_postgres::connect(&front.pg_url, NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(conn);
    front
        .progress()
        .insert(id.clone(), Progress::Running(client.cancel_token()));
    let outcome = async {
        client.batch_execute("SET TimeZone = 'UTC'").await?;
        let columns: Vec<(String, Type)> = client
            .prepare(&sql)
            .await?
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone()))
            .collect();
        let messages = client.simple_query(&sql).await?;
        Ok::<_, tokio_postgres::Error>((columns, messages))
    }
    .await;
    let (columns, messages) = match outcome {
        Ok(r) => r,
        Err(e) => {
            front
                .progress()
                .insert(id, Progress::Failed(athena_error(&e)));
            return;
        }
    };
    let header = json!({"Data": columns.iter().map(|(name, _)| json!({"VarCharValue": name})).collect::<Vec<_>>()});
    let mut rows = vec![header];
    for m in messages {
        if let SimpleQueryMessage::Row(r) = m {
            let data: Vec<Value> = columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| match r.get(i) {
                    Some(t) => json!({"VarCharValue": athena_text(ty, t)}),
                    None => json!({}),
                })
                .collect();
            rows.push(json!({"Data": data}));
        }
    }
    let info: Vec<Value> = columns
        .iter()
        .map(|(name, ty)| json!({"Name": name, "Label": name, "Type": athena_type(ty), "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": false}))
        .collect();
    let told = front
        .http
        .post(format!(
            "{}/moto-api/static/athena/query-results",
            front.moto
        ))
        .json(&json!({"results": [{"rows": rows, "column_info": info}]}))
        .send()
        .await
        .expect("moto takes the result");
    assert_eq!(told.status().as_u16(), 201, "moto refused the query result");
    front.progress().insert(id, Progress::Done);
}

/// One page of moto's whole answer, from the front's own `NextToken`.
fn paged(mut out: Value, req: &Value) -> Value {
    let rows = out["ResultSet"]["Rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let start: usize = req["NextToken"]
        .as_str()
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let size = req["MaxResults"]
        .as_u64()
        .map_or(PAGE, |m| (m as usize).min(PAGE));
    let end = (start + size).min(rows.len());
    out["ResultSet"]["Rows"] = Value::Array(rows[start.min(end)..end].to_vec());
    if end < rows.len() {
        out["NextToken"] = json!(format!("page-{end}"));
    }
    out
}

/// Refuses requests not signed with the test's access key, as AWS does.
fn refused(headers: &HeaderMap) -> Option<Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth {
        None => Some(aws_error(
            StatusCode::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )),
        Some(a) if !a.contains(&format!("Credential={KEY_ID}/")) => Some(aws_error(
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )),
        _ => None,
    }
}

fn passed_on(status: u16, bytes: Bytes) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        bytes,
    )
        .into_response()
}

/// Starts the query on PostgreSQL; until its task records progress, it counts as running.
fn started(front: &Arc<Front>, req: &Value, out: &Value) {
    let id = out["QueryExecutionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let params: Vec<String> = req["ExecutionParameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let sql = bind(req["QueryString"].as_str().unwrap_or_default(), &params);
    tokio::spawn(run_query(front.clone(), id, sql));
}

/// moto's status of a query, corrected by its progress on PostgreSQL.
fn with_progress(front: &Front, req: &Value, mut out: Value) -> Value {
    let id = req["QueryExecutionId"].as_str().unwrap_or_default();
    let status = &mut out["QueryExecution"]["Status"];
    if status["State"] == "CANCELLED" {
        return out;
    }
    match front.progress().get(id) {
        None | Some(Progress::Running(_)) => status["State"] = json!("RUNNING"),
        Some(Progress::Failed(message)) => {
            status["State"] = json!("FAILED");
            status["StateChangeReason"] = json!(message);
            status["AthenaError"] = json!({"ErrorCategory": 2, "ErrorType": 1301, "Retryable": false, "ErrorMessage": message});
        }
        Some(Progress::Done) => {}
    }
    out
}

/// Cancels the query's PostgreSQL statement.
async fn stopped(front: &Front, req: &Value) {
    let id = req["QueryExecutionId"].as_str().unwrap_or_default();
    let token = match front.progress().get(id) {
        Some(Progress::Running(t)) => Some(t.clone()),
        _ => None,
    };
    if let Some(t) = token {
        let _ = t.cancel_query(NoTls).await;
    }
}

async fn handle(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(op) = target.strip_prefix("AmazonAthena.") else {
        front
            .passed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((method.to_string(), uri.path().to_string()));
        let (status, bytes) = front.forward(method, &uri, &headers, body).await;
        return passed_on(status, bytes);
    };
    if let Some(refusal) = refused(&headers) {
        return refusal;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    front
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((op.to_string(), req.clone()));
    let (status, bytes) = front.forward(method, &uri, &headers, body).await;
    let out = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if status == 200 => v,
        _ => return passed_on(status, bytes),
    };
    match op {
        "StartQueryExecution" => {
            started(&front, &req, &out);
            json_answer(&out)
        }
        "GetQueryExecution" => json_answer(&with_progress(&front, &req, out)),
        "GetQueryResults" => json_answer(&paged(out, &req)),
        "StopQueryExecution" => {
            stopped(&front, &req).await;
            json_answer(&out)
        }
        _ => json_answer(&out),
    }
}

struct Athena {
    pg: Pg,
    front: Arc<Front>,
    url: String,
    moto: Moto,
    /// Whether the connection reads the result file from S3 (through the front, to moto).
    results_from_s3: AtomicBool,
}

impl Athena {
    async fn start() -> Athena {
        let pg = Pg::new("suite_athena").await;
        let moto = Moto::start();
        let http = reqwest::Client::new();
        // Queries succeed at once in moto; the front says when they really finished.
        let set = http
            .post(format!("{}/moto-api/state-manager/set-transition", moto.endpoint))
            .json(&json!({"model_name": "athena::execution", "transition": {"progression": "immediate"}}))
            .send()
            .await
            .expect("moto's state manager");
        assert!(set.status().is_success(), "moto refused the transition");
        let front = Arc::new(Front {
            moto: moto.endpoint.clone(),
            pg_url: pg.url.clone(),
            http,
            queries: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            passed: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(front.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Athena {
            pg,
            front,
            url,
            moto,
            results_from_s3: AtomicBool::new(false),
        }
    }

    fn base(&self) -> String {
        let s3 = if self.results_from_s3.load(Ordering::SeqCst) {
            format!(", results_from: s3, s3_endpoint: \"{}\"", self.url)
        } else {
            String::new()
        };
        format!(
            "type: athena, workgroup: primary, database: test, output_location: \"s3://retl-athena/results/\", endpoint: \"{}\", region: us-east-1{s3}",
            self.url
        )
    }
}

#[async_trait]
impl Warehouse for Athena {
    fn name(&self) -> &str {
        "athena"
    }

    fn connection(&self) -> String {
        format!(
            "{}, access_key_id_env: ATH_KEY_ID, secret_access_key_env: ATH_SECRET_KEY",
            self.base()
        )
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(format!(
            "{}, access_key_id_env: ATH_BAD_KEY_ID, secret_access_key_env: ATH_SECRET_KEY",
            self.base()
        ))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ATH_KEY_ID".into(), KEY_ID.into()),
            ("ATH_BAD_KEY_ID".into(), "AKIDREVOKED".into()),
            (
                "ATH_SECRET_KEY".into(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ),
        ]
    }

    async fn execute(&self, sql: &str) {
        self.pg.exec(sql).await;
    }

    fn table(&self, name: &str) -> String {
        self.pg.table(name)
    }

    /// The DDL runs on PostgreSQL (the front computes results there); Athena reports the
    /// columns as `bigint`, `decimal`, `double`, `timestamp with time zone`, `json`,
    /// `varbinary`, ...
    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "bigint", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "integer", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "decimal(38,10)",
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "double precision", "0.5"),
            TypeCase::new(Kind::Bool, "boolean", "true"),
            TypeCase::new(Kind::Text, "varchar(64)", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "date", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "timestamp", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(Kind::TimestampTz, "timestamptz", "'2024-03-01 10:00:00+02'"),
            TypeCase::new(Kind::Json, "json", "'{\"plan\": \"pro\", \"seats\": 3}'"),
            TypeCase::new(Kind::Binary, "bytea", "'\\xdeadbeef'"),
        ]
    }

    fn key_type(&self) -> String {
        "bigint".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        format!("select 1 as id from (select pg_sleep({seconds})) s")
    }

    fn missing_table_code(&self) -> String {
        "TABLE_NOT_FOUND".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn athena_passes_the_source_suite() {
    let w = Athena::start().await;
    run_all(&w).await;

    let calls = w
        .front
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let starts: Vec<&Value> = calls
        .iter()
        .filter(|(op, _)| op == "StartQueryExecution")
        .map(|(_, b)| b)
        .collect();
    assert!(
        starts.iter().all(|b| b["QueryString"]
            .as_str()
            .is_some_and(|q| q.starts_with("-- retl:"))
            && b["WorkGroup"] == "primary"
            && b["QueryExecutionContext"]["Database"] == "test"
            && b["ResultConfiguration"]["OutputLocation"] == "s3://retl-athena/results/"
            && b["ClientRequestToken"]
                .as_str()
                .is_some_and(|t| t.len() >= 32)),
        "every query is tagged, placed and idempotent: {starts:?}"
    );
    assert!(
        starts
            .iter()
            .any(|b| b["ExecutionParameters"][0] == "'c'' OR ''1''=''1'"),
        "the watermark travels as an escaped literal parameter"
    );
    assert!(
        calls
            .iter()
            .any(|(op, b)| op == "GetQueryResults" && b["NextToken"].is_string()),
        "results are read page by page"
    );
    assert!(
        calls.iter().any(|(op, _)| op == "StopQueryExecution"),
        "the timed-out query is stopped"
    );
}

/// Every row of `sql` through the connection as it is now set, by id.
async fn read_rows(w: &Athena, sql: &str) -> Vec<Value> {
    let source = open_source(w).await;
    let mut stream = source
        .rows(&ModelQuery::new(sql, "file", "run1"))
        .await
        .expect("the model runs");
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        rows.push(Value::Object(row.expect("a row")));
    }
    rows.sort_by_key(|r| r["id"].as_i64());
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn the_result_file_is_read_from_s3() {
    let w = Athena::start().await;
    let bucket = reqwest::Client::new()
        .put(format!("{}/retl-athena", w.moto.endpoint))
        .send()
        .await
        .expect("moto's S3");
    assert!(bucket.status().is_success(), "the output bucket is made");
    let table = w.table("retl_file");
    w.execute(&format!(
        "CREATE TABLE {table} (id bigint, name varchar(64), amount decimal(38,10), at timestamptz)"
    ))
    .await;
    w.execute(&format!(
        "INSERT INTO {table} VALUES (1, 'Zoë, ✓\nsecond line', 12345678901234567890.1234567890, '2024-03-01 10:00:00+02'), \
         (2, '', NULL, NULL), (3, NULL, -1.5, '2024-03-01 00:00:00+00')"
    ))
    .await;
    let sql = format!("select id, name, amount, at from {table}");
    let paged = read_rows(&w, &sql).await;
    w.results_from_s3.store(true, Ordering::SeqCst);
    let from_file = read_rows(&w, &sql).await;
    assert_eq!(from_file, paged, "the file reads as the pages do");
    assert_eq!(from_file.len(), 3);
    assert_eq!(from_file[1]["name"], "", "an empty string is not NULL");
    assert_eq!(from_file[2]["name"], Value::Null, "NULL stays NULL");
    assert_eq!(from_file[0]["name"], "Zoë, ✓\nsecond line");
    assert_eq!(from_file[0]["at"], "2024-03-01T08:00:00+00:00");
    assert_eq!(
        from_file[0]["amount"].to_string(),
        "12345678901234567890.1234567890",
        "every digit of the decimal"
    );
    let passed = w
        .front
        .passed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        passed.iter().any(|(m, p)| m == "GET"
            && p.starts_with("/retl-athena/results/")
            && p.ends_with(".csv")),
        "the rows come from the result file: {passed:?}"
    );
    let calls = w
        .front
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let last_start = calls
        .iter()
        .rposition(|(op, _)| op == "StartQueryExecution")
        .expect("a query");
    let pages: Vec<&Value> = calls[last_start..]
        .iter()
        .filter(|(op, _)| op == "GetQueryResults")
        .map(|(_, b)| b)
        .collect();
    assert!(
        pages.len() == 1 && pages[0]["MaxResults"] == 1,
        "only the column types come from GetQueryResults: {pages:?}"
    );
}
