//! PostgreSQL as a destination, through the destination conformance suite against the
//! machine's real server (a table per scenario in the test's own schema).

use async_trait::async_trait;
use retl_tests::destination_suite::{DestinationUnderTest, Held, Write};
use retl_tests::{destination_suite, Pg};

struct Postgres {
    pg: Pg,
}

impl Postgres {
    async fn start(check: &str) -> Self {
        Postgres {
            pg: Pg::new(&format!("dest_{check}")).await,
        }
    }
}

#[async_trait]
impl DestinationUnderTest for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }

    fn connection(&self, delivery: &str) -> String {
        format!(
            "type: postgres, url: \"{}\", delivery: {{ {delivery} }}",
            self.pg.url
        )
    }

    async fn fresh_object(&self, label: &str) -> String {
        let table = format!("people_{label}");
        self.pg
            .exec(&format!(
                "CREATE TABLE {table} (id integer PRIMARY KEY, name text NOT NULL)"
            ))
            .await;
        self.pg.table(&table)
    }

    async fn seed(&self, object: &str, records: &[(i64, &str)]) -> bool {
        for (id, name) in records {
            self.pg
                .exec(&format!("INSERT INTO {object} VALUES ({id}, '{name}')"))
                .await;
        }
        true
    }

    async fn holds(&self, object: &str) -> Held {
        self.pg
            .rows(&format!("SELECT id, name FROM {object}"))
            .await
            .iter()
            .map(|r| {
                let id = r["id"].as_i64().expect("an integer id");
                (id, r["name"].as_str().unwrap_or_default().to_string())
            })
            .collect()
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
        self.pg
            .exec(&format!(
                "ALTER TABLE {object} ADD CONSTRAINT refuse_{id} CHECK (id <> {id})"
            ))
            .await;
        true
    }
}

destination_suite!(Postgres::start =>
    worked_examples_in_every_supported_mode,
    unsupported_modes_are_refused,
    rejected_records_are_reported_and_not_retried,
    no_record_value_in_logs,
);
