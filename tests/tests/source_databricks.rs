//! Databricks SQL as a source, through the source conformance suite, against the Statement
//! Execution API fake that runs the SQL on the machine's PostgreSQL: EXTERNAL_LINKS Arrow
//! chunks with a personal access token, and INLINE JSON chunks with OAuth M2M.

use async_trait::async_trait;
use retl_fakes::{DatabricksConfig, DatabricksFake};
use retl_tests::source_suite::{
    run_all, types_and_nulls, watermark_filter, Kind, TypeCase, Warehouse,
};
use retl_tests::Pg;

const PAT: &str = "dapi0123456789abcdef";
const CLIENT: (&str, &str) = ("sp-retl", "sp-secret-value");

/// How the connection authenticates and fetches results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `token_env`, `EXTERNAL_LINKS` + `ARROW_STREAM` (the default disposition).
    PatExternalLinks,
    /// `client_id` + `client_secret_env`, `INLINE` + `JSON_ARRAY`.
    OAuthInline,
}

struct Databricks {
    pg: Pg,
    fake: DatabricksFake,
    mode: Mode,
}

impl Databricks {
    async fn start(test: &str, mode: Mode) -> Databricks {
        let pg = Pg::new(test).await;
        let fake = DatabricksFake::start(DatabricksConfig {
            // Several chunks per result: the suite's tables have a few rows.
            rows_per_chunk: 2,
            oauth_client: Some((CLIENT.0.into(), CLIENT.1.into())),
            ..DatabricksConfig::new(&pg.url, PAT)
        })
        .await
        .expect("the Databricks fake starts");
        Databricks { pg, fake, mode }
    }

    fn base(&self) -> String {
        format!(
            "type: databricks, host: dbc-test.cloud.databricks.com, warehouse_id: wh-1, endpoint: \"{}\"",
            self.fake.base_url()
        )
    }
}

#[async_trait]
impl Warehouse for Databricks {
    fn name(&self) -> &str {
        "databricks"
    }

    fn connection(&self) -> String {
        match self.mode {
            Mode::PatExternalLinks => format!("{}, token_env: DBX_TOKEN", self.base()),
            Mode::OAuthInline => format!(
                "{}, client_id: {}, client_secret_env: DBX_SP_SECRET, disposition: INLINE",
                self.base(),
                CLIENT.0
            ),
        }
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(format!("{}, token_env: DBX_BAD_TOKEN", self.base()))
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DBX_TOKEN".into(), PAT.into()),
            ("DBX_SP_SECRET".into(), CLIENT.1.into()),
            ("DBX_BAD_TOKEN".into(), "dapi-revoked".into()),
        ]
    }

    async fn execute(&self, sql: &str) {
        self.pg.exec(sql).await;
    }

    fn table(&self, name: &str) -> String {
        self.pg.table(name)
    }

    /// Databricks' types where PostgreSQL spells them alike (the fake runs on PostgreSQL and
    /// reports `timestamp` as TIMESTAMP_NTZ, `timestamptz` as TIMESTAMP, `bytea` as BINARY).
    /// Databricks has no JSON column type, so the optional JSON kind is not listed.
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
            TypeCase::new(Kind::Text, "text", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "date", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "timestamp", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(Kind::TimestampTz, "timestamptz", "'2024-03-01 10:00:00+02'"),
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
        "42P01".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn databricks_with_external_arrow_links_passes_the_source_suite() {
    let w = Databricks::start("suite_dbx", Mode::PatExternalLinks).await;
    run_all(&w).await;

    let calls = w.fake.calls();
    let submits: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/api/2.0/sql/statements")
        .collect();
    assert!(
        submits
            .iter()
            .all(|c| c.body["disposition"] == "EXTERNAL_LINKS"
                && c.body["format"] == "ARROW_STREAM"
                && c.body["query_tags"][0]["key"] == "retl-sync"),
        "every statement asks for Arrow links and is tagged: {submits:?}"
    );
    assert!(
        submits
            .iter()
            .any(|c| c.body["parameters"][0]["name"] == "retl_after"
                && c.body["parameters"][0]["value"] == "c' OR '1'='1"
                && c.body["parameters"][0]["type"] == "STRING"),
        "the watermark travels as a typed parameter"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.method == "GET" && c.path.contains("/result/chunks/")),
        "further chunks are read along next_chunk_internal_link"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.method == "POST" && c.path.ends_with("/cancel")),
        "the timed-out statement is cancelled"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn databricks_inline_with_oauth_reads_the_same_values() {
    let w = Databricks::start("suite_dbx_inline", Mode::OAuthInline).await;
    types_and_nulls(&w).await;
    watermark_filter(&w).await;

    let calls = w.fake.calls();
    assert!(
        calls.iter().any(|c| c.path == "/oidc/v1/token"),
        "an OAuth token was fetched"
    );
    let submits: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/api/2.0/sql/statements")
        .collect();
    assert!(
        !submits.is_empty()
            && submits.iter().all(|c| c.body["disposition"] == "INLINE"
                && c.body["format"] == "JSON_ARRAY"
                && c.authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Bearer ") && !a.contains(PAT))),
        "inline JSON chunks with the OAuth token: {submits:?}"
    );
}
