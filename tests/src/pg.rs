//! A private PostgreSQL schema per test on the machine's server (127.0.0.1:5432, database
//! `test`, trust auth; `RETL_TEST_PG_URL` overrides). No server means a loud failure.

use serde_json::Value;
use tokio_postgres::{Client, NoTls};

/// A connected client whose search_path is the test's own schema.
pub struct Pg {
    /// The client.
    pub client: Client,
    /// The schema name.
    pub schema: String,
    /// Connection URL for retl.
    pub url: String,
}

/// The server URL used by tests.
pub fn base_url() -> String {
    std::env::var("RETL_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

impl Pg {
    /// Connects and creates a fresh schema named after the test.
    pub async fn new(test: &str) -> Pg {
        let url = base_url();
        let (client, conn) = tokio_postgres::connect(&url, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is required at {url} ({e}). Start it (see README: \
                 pg_ctlcluster 15 main start) or set RETL_TEST_PG_URL"
                )
            });
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let schema = format!("t_{}_{}", test, std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema}"
            ))
            .await
            .expect("create test schema");
        Pg {
            client,
            schema,
            url,
        }
    }

    /// Runs statements in the test schema.
    pub async fn exec(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"));
    }

    /// Rows of a query as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<Value> {
        let wrapped = format!("SELECT row_to_json(q)::text FROM ({sql}) q");
        self.client
            .query(wrapped.as_str(), &[])
            .await
            .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
            .iter()
            .map(|r| serde_json::from_str(r.get::<_, &str>(0)).expect("json row"))
            .collect()
    }

    /// A single number.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
            .get(0)
    }

    /// `schema.table`.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", self.schema, name)
    }
}
