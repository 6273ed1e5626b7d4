//! Amazon Redshift as a source, through the source conformance suite, against the Redshift
//! Data API fake that runs the SQL on the machine's PostgreSQL (moto's Data API answers canned
//! rows only).

use async_trait::async_trait;
use retl_fakes::{RedshiftDataConfig, RedshiftDataFake};
use retl_tests::source_suite::{run_all, Kind, TypeCase, Warehouse};
use retl_tests::Pg;

struct Redshift {
    pg: Pg,
    fake: RedshiftDataFake,
}

impl Redshift {
    fn base(&self) -> String {
        format!(
            "type: redshift, workgroup: wg-etl, database: test, endpoint: \"{}\", region: us-east-1",
            self.fake.base_url()
        )
    }
}

#[async_trait]
impl Warehouse for Redshift {
    fn name(&self) -> &str {
        "redshift"
    }

    fn connection(&self) -> String {
        format!(
            "{}, access_key_id_env: RS_KEY_ID, secret_access_key_env: RS_SECRET_KEY",
            self.base()
        )
    }

    /// The fake checks that requests are signed, not the signature: a connection without
    /// credentials sends unsigned requests, which it refuses as AWS does
    /// (`MissingAuthenticationTokenException`).
    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some(self.base())
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("RS_KEY_ID".into(), "AKIDEXAMPLE".into()),
            (
                "RS_SECRET_KEY".into(),
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

    /// Redshift's type names where PostgreSQL shares them; SUPER is stood in for by `jsonb`
    /// and VARBYTE by `bytea` (the fake runs on PostgreSQL and reports `bytea` as `varbyte`).
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
            TypeCase::new(Kind::Text, "varchar(256)", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "date", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "timestamp", "'2024-03-01 10:00:00.5'"),
            TypeCase::new(Kind::TimestampTz, "timestamptz", "'2024-03-01 10:00:00+02'"),
            TypeCase::new(Kind::Json, "jsonb", "'{\"plan\": \"pro\", \"seats\": 3}'"),
            TypeCase::new(Kind::Binary, "bytea", "'\\xdeadbeef'"),
        ]
    }

    fn key_type(&self) -> String {
        "bigint".into()
    }

    fn slow_query(&self, seconds: u32) -> String {
        format!("select 1 as id from (select pg_sleep({seconds})) s")
    }

    /// The Data API reports a failed statement as status FAILED with the engine's message and
    /// no SQLSTATE; retl reports the status as the code.
    fn missing_table_code(&self) -> String {
        "FAILED".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redshift_passes_the_source_suite() {
    let pg = Pg::new("suite_rs").await;
    let fake = RedshiftDataFake::start(RedshiftDataConfig {
        // Several pages per result: the suite's tables have a few rows.
        page_rows: 2,
        ..RedshiftDataConfig::new(&pg.url)
    })
    .await
    .expect("the Redshift Data API fake starts");
    let w = Redshift { pg, fake };
    run_all(&w).await;

    let calls = w.fake.calls();
    let executes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "ExecuteStatement" && c.status == 200)
        .collect();
    assert!(
        executes.iter().all(|c| c.body["StatementName"]
            .as_str()
            .is_some_and(|n| n.starts_with("retl:"))
            && c.body["WorkgroupName"] == "wg-etl"
            && c.body["ClientToken"].is_string()),
        "every statement is tagged retl:<sync>:<run>: {executes:?}"
    );
    assert!(
        executes
            .iter()
            .any(|c| c.body["Parameters"][0]["name"] == "retl_after"
                && c.body["Parameters"][0]["value"] == "c' OR '1'='1"),
        "the watermark travels as a parameter"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "GetStatementResult" && c.body["NextToken"].is_string()),
        "results are read page by page"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "CancelStatement" && c.status == 200),
        "the timed-out statement is cancelled"
    );
    assert!(
        w.fake.statuses().values().any(|s| s == "ABORTED"),
        "the cancelled statement ended ABORTED"
    );
}
