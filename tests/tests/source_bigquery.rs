//! BigQuery as a source, through the source conformance suite against bqemulator (BigQuery's
//! REST API over DuckDB). bqemulator takes requests without credentials; refused credentials
//! come from a service account whose token endpoint refuses the key, as Google's does.

use async_trait::async_trait;
use axum::routing::post;
use axum::{Json, Router};
use retl_tests::source_suite::{run_all, Kind, TypeCase, Warehouse};
use retl_tests::warehouses::bqemulator::BqEmulator;
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
}
