//! SQLite as a source, through the source conformance suite.

use std::path::PathBuf;

use async_trait::async_trait;
use retl_tests::source_suite::{run_all, Kind, TypeCase, Warehouse};

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    fn file(&self) -> PathBuf {
        self.dir.path().join("wh.db")
    }
}

#[async_trait]
impl Warehouse for Sqlite {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn connection(&self) -> String {
        format!("type: sqlite, path: \"{}\"", self.file().display())
    }

    fn connection_with_bad_credentials(&self) -> Option<String> {
        None
    }

    fn env(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn execute(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.file()).expect("open the warehouse file");
        c.execute_batch(sql).expect("warehouse SQL");
    }

    fn table(&self, name: &str) -> String {
        name.to_string()
    }

    fn type_cases(&self) -> Vec<TypeCase> {
        vec![
            TypeCase::new(Kind::BigInt, "INTEGER", "9007199254740993"),
            TypeCase::new(Kind::NegativeInt, "INTEGER", "-42"),
            TypeCase::new(Kind::Float, "REAL", "0.5"),
            TypeCase::new(Kind::Text, "TEXT", "'Zoë ✓ 日本 🚀'"),
            TypeCase::new(Kind::Date, "TEXT", "'2024-02-29'"),
            TypeCase::new(Kind::Timestamp, "TEXT", "'2024-03-01T10:00:00.5'"),
            TypeCase::new(Kind::Binary, "BLOB", "X'deadbeef'"),
        ]
    }

    fn unsupported(&self) -> Vec<(Kind, &'static str)> {
        vec![
            (
                Kind::Decimal,
                "SQLite has no exact decimal: REAL rounds, TEXT stays text",
            ),
            (Kind::Bool, "SQLite stores booleans as the integers 0 and 1"),
        ]
    }

    fn key_type(&self) -> String {
        "INTEGER".into()
    }

    fn slow_query(&self, _seconds: u32) -> String {
        // Counts forever; only the timeout stops it.
        "with recursive c(x) as (select 1 union all select x + 1 from c) \
         select max(x) as id from c"
            .into()
    }

    fn missing_table_code(&self) -> String {
        "SQLITE_ERROR".into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_passes_the_source_suite() {
    let w = Sqlite {
        dir: tempfile::tempdir().expect("a temporary folder"),
    };
    run_all(&w).await;
}
