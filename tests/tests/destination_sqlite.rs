//! SQLite as a destination, through the destination conformance suite (a database file per
//! check, a table per scenario).

use std::path::PathBuf;

use async_trait::async_trait;
use retl_tests::destination_suite;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Write};

struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    async fn start(_check: &str) -> Self {
        Sqlite {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("app.db")
    }

    fn exec(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.file()).expect("open the destination file");
        c.execute_batch(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }
}

#[async_trait]
impl DestinationUnderTest for Sqlite {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: sqlite, path: \"{}\", delivery: {{ {delivery} }}",
            self.file().display()
        )
    }

    async fn fresh_object(&self, label: &str) -> String {
        let table = format!("people_{label}");
        self.exec(&format!(
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
        ));
        table
    }

    async fn seed(&self, object: &str, records: &[(i64, &str)]) -> bool {
        for (id, name) in records {
            self.exec(&format!("INSERT INTO {object} VALUES ({id}, '{name}')"));
        }
        true
    }

    async fn holds(&self, object: &str) -> Held {
        let c = rusqlite::Connection::open(self.file()).expect("open the destination file");
        let mut q = c
            .prepare(&format!("SELECT id, name FROM {object}"))
            .expect("prepare");
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .expect("query");
        rows.map(|r| r.expect("a row")).collect()
    }

    async fn writes(&self) -> Option<Vec<Write>> {
        None
    }

    async fn clear_log(&self) {}

    async fn throttle_next(&self, _n: u32) -> Option<u64> {
        None
    }

    async fn fail_requests(&self, _on: bool) -> bool {
        false
    }

    async fn reject(&self, object: &str, id: i64) -> bool {
        // SQLite cannot add a CHECK to a table: the scenario's table is still empty, so it is
        // made again with one.
        self.exec(&format!(
            "DROP TABLE {object}; CREATE TABLE {object} (id INTEGER PRIMARY KEY, \
             name TEXT NOT NULL, CHECK (id <> {id}))"
        ));
        true
    }
}

destination_suite!(Sqlite::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    rejected_records_are_reported_and_not_retried,
    no_record_value_in_logs,
);
