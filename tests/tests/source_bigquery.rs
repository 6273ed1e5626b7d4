//! BigQuery as a source, through the source conformance suite against bqemulator (BigQuery's
//! REST API over DuckDB). bqemulator takes requests without credentials; refused credentials
//! come from a service account whose token endpoint refuses the key, as Google's does.
//! bqemulator pages results (`pageToken`) but answers every job complete, so a running job
//! (`jobComplete: false`, polled with `getQueryResults`) and `jobs.cancel` on timeout are
//! checked against the repository's BigQuery fake.

use async_trait::async_trait;
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use retl_fakes::{BigQueryCall, BigQueryConfig, BigQueryFake};
use retl_shared::ports::ModelQuery;
use retl_tests::http::WebhookReceiver;
use retl_tests::source_suite::{run_all, Kind, TypeCase, Warehouse};
use retl_tests::warehouses::bqemulator::BqEmulator;
use retl_tests::Project;
use serde_json::json;

const PRIVATE_KEY: &str = include_str!("../fakes/tests/fixtures/jwt_private.pem");

struct Bq {
    bq: BqEmulator,
    /// A token endpoint answering `invalid_grant`.
    token_uri: String,
}

/// Serves `POST /token` answering 400 `invalid_grant`, as Google's token endpoint does for a
/// deleted or unknown key.
async fn refusing_token_endpoint() -> String {
    let app = Router::new().route(
        "/token",
        post(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/token")
}

#[async_trait]
impl Warehouse for Bq {
    fn name(&self) -> &str {
        "bigquery"
    }

    fn connection(&self) -> String {
        format!(
            "type: bigquery, project: {}, location: US, maximum_bytes_billed: 1000000000, endpoint: \"{}\"",
            self.bq.project, self.bq.rest_url
        )
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(format!(
            "{}, credentials_env: BQ_REFUSED_KEY",
            self.connection()
        ))
    }

    fn env(&self) -> Vec<(String, String)> {
        let key = json!({
            "type": "service_account",
            "project_id": self.bq.project,
            "client_email": "retl@retl-test.iam.gserviceaccount.com",
            "private_key": PRIVATE_KEY,
            "token_uri": self.token_uri,
        });
        vec![("BQ_REFUSED_KEY".into(), key.to_string())]
    }

    async fn execute(&self, sql: &str) {
        self.bq.execute(&[sql]).await;
    }

    fn table(&self, name: &str) -> String {
        format!("ds.{name}")
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "INT64", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "INT64", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "BIGNUMERIC(38,10)",
                "BIGNUMERIC '12345678901234567890.1234567890'",
            ),
            TypeCase::new(Kind::Float, "FLOAT64", "0.5"),
            TypeCase::new(Kind::Bool, "BOOL", "TRUE"),
            TypeCase::new(Kind::Text, "STRING", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "DATE", "DATE '2024-02-29'"),
            TypeCase::new(
                Kind::Timestamp,
                "DATETIME",
                "DATETIME '2024-03-01 10:00:00.5'",
            ),
            TypeCase::new(
                Kind::TimestampTz,
                "TIMESTAMP",
                "TIMESTAMP '2024-03-01 10:00:00+02:00'",
            ),
            TypeCase::new(
                Kind::Json,
                "JSON",
                "JSON '{\"plan\": \"pro\", \"seats\": 3}'",
            ),
            TypeCase::new(Kind::Binary, "BYTES", "FROM_HEX('deadbeef')"),
        ]
    }

    fn key_type(&self) -> String {
        "INT64".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        // DuckDB hashes a few million generated rows a second here: minutes of work.
        format!(
            "select length(max(md5(cast(a * b as string)))) as id \
             from unnest(generate_array(1, {})) a, unnest(generate_array(1, 3000)) b",
            u64::from(seconds) * 1000
        )
    }

    fn missing_table_code(&self) -> String {
        "notFound".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bqemulator_passes_the_source_suite() {
    let bq = BqEmulator::start();
    bq.execute(&["CREATE SCHEMA ds"]).await;
    let w = Bq {
        bq,
        token_uri: refusing_token_endpoint().await,
    };
    run_all(&w).await;

    // More rows than one page (10,000) come over several getQueryResults pages.
    let source = retl_tests::source_suite::open_source(&w).await;
    let sql = "select x as id from unnest(generate_array(1, 25000)) x";
    let mut stream = source
        .rows(&ModelQuery::new(sql, "pages", "run1"))
        .await
        .expect("the model runs");
    let mut ids = std::collections::BTreeSet::new();
    while let Some(row) = stream.next().await {
        ids.insert(row.expect("a row")["id"].to_string());
    }
    assert_eq!(ids.len(), 25_000, "every page is read once");
}

/// A project reading `select id, name from ds.users` from `bq` into a webhook.
fn fake_project(bq: &BigQueryFake, extra: &str, hook: &WebhookReceiver) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        &format!(
            "connections:\n  wh: {{ type: bigquery, project: retl-test, location: EU, endpoint: \"{}\"{extra} }}\n  \
             dest: {{ type: webhook, url: \"{}\" }}\n",
            bq.base_url(),
            hook.url
        ),
    );
    p.write(
        "syncs/users.yaml",
        "name: users\nsource: { connection: wh, sql: \"select id, name from ds.users\" }\n\
         primary_key: id\ndestination: { connection: dest, object: users }\n\
         mapping: { id: id, name: name }\nmode: upsert\n",
    );
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_is_polled_and_its_pages_are_read_in_turn() {
    let bq = BigQueryFake::start(BigQueryConfig {
        rows: 25,
        page_rows: 10,
        pending_polls: 3,
    })
    .await
    .expect("the fake starts");
    let hook = WebhookReceiver::start().await;
    let p = fake_project(&bq, "", &hook);
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_eq!((code, v["rows"].as_u64()), (0, Some(25)), "{v}");
    let ids: std::collections::BTreeSet<String> =
        hook.accepted().into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(ids.len(), 25, "every page's rows are delivered");

    let calls = bq.calls();
    let results: Vec<&BigQueryCall> = calls.iter().filter(|c| c.kind == "results").collect();
    let pending = results.iter().filter(|c| !c.complete).count();
    assert_eq!(pending, 3, "polled while jobComplete was false: {calls:?}");
    let pages: Vec<(Option<&str>, usize)> = results
        .iter()
        .filter(|c| c.complete)
        .map(|c| (c.page_token.as_deref(), c.rows))
        .collect();
    assert_eq!(
        pages,
        [(None, 10), (Some("10"), 10), (Some("20"), 5)],
        "the pages follow pageToken: {calls:?}"
    );
    assert!(
        calls.iter().all(|c| c.location.as_deref() == Some("EU")),
        "every call names the job's location: {calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.kind == "cancel"),
        "a job that completes is not cancelled: {calls:?}"
    );
    let query = bq
        .queries()
        .into_iter()
        .find(|q| q["dryRun"] != json!(true))
        .expect("the model query");
    assert_eq!(query["labels"]["retl-sync"], "users", "{query}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_outlasts_the_timeout_is_cancelled() {
    let bq = BigQueryFake::start(BigQueryConfig {
        rows: 1,
        page_rows: 10,
        pending_polls: u32::MAX,
    })
    .await
    .expect("the fake starts");
    let hook = WebhookReceiver::start().await;
    let p = fake_project(&bq, ", timeout_seconds: 2", &hook);
    let started = std::time::Instant::now();
    let (code, v) = p.run_json(&["run", "users"]).await;
    assert_ne!(code, 0, "{v}");
    assert!(format!("{v}").contains("Retl.SourceTimeout"), "{v}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let calls = bq.calls();
    let job = calls
        .iter()
        .find(|c| c.kind == "query")
        .map(|c| c.job_id.clone())
        .expect("a job");
    assert!(
        calls
            .iter()
            .any(|c| c.kind == "cancel" && c.job_id == job && c.location.as_deref() == Some("EU")),
        "jobs.cancel is called for the job, in its location: {calls:?}"
    );
    assert!(hook.accepted().is_empty());
}
