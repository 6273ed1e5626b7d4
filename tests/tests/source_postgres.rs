//! PostgreSQL as a source, through the source conformance suite.

use async_trait::async_trait;
use retl_tests::source_suite::{run_all, Kind, TypeCase, Warehouse};
use retl_tests::Pg;

struct Postgres {
    pg: Pg,
}

#[async_trait]
impl Warehouse for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }

    fn connection(&self) -> String {
        "type: postgres, url_env: WH_URL".into()
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        Some("type: postgres, url: \"postgres://no_such_role@127.0.0.1:5432/test\"".into())
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("WH_URL".into(), self.pg.url.clone())]
    }

    async fn execute(&self, sql: &str) {
        self.pg.exec(sql).await;
    }

    fn table(&self, name: &str) -> String {
        self.pg.table(name)
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "bigint", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "integer", "-42"),
            TypeCase::new(
                Kind::Decimal,
                "numeric(38,10)",
                "12345678901234567890.1234567890",
            ),
            TypeCase::new(Kind::Float, "double precision", "0.5"),
            TypeCase::new(Kind::Bool, "boolean", "true"),
            TypeCase::new(Kind::Text, "text", "'Zoë ✓ 日本 🚀'"),
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

    fn missing_table_code(&self) -> String {
        "42P01".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_source_suite() {
    let w = Postgres {
        pg: Pg::new("suite_pg").await,
    };
    run_all(&w).await;
}
