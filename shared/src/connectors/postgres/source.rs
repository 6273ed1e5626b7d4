use async_trait::async_trait;
use futures::StreamExt;
use tokio_postgres::Client;

use super::tls::{connect, ConnectError};

use crate::connectors::subquery_sql;
use crate::ports::{RowStream, Source, SourceError};
use crate::record::Values;

/// A PostgreSQL warehouse. Rows are converted by PostgreSQL's own `row_to_json` in a UTC
/// session, which gives this type mapping:
///
/// | PostgreSQL | JSON |
/// |---|---|
/// | smallint, integer, bigint | number |
/// | numeric | number with every digit kept (no float rounding) |
/// | real, double precision | number (`NaN`, `Infinity` as strings) |
/// | boolean | true / false |
/// | text, varchar, char, uuid, enum | string |
/// | date | `"2024-01-31"` |
/// | timestamp | `"2024-01-31T10:00:00"` |
/// | timestamptz | `"2024-01-31T10:00:00+00:00"` (UTC) |
/// | json, jsonb | the JSON value itself |
/// | arrays | JSON arrays |
/// | bytea | `"\\x<hex>"` |
/// | NULL | null |
#[derive(Debug, Clone)]
pub struct PostgresSource {
    connection: String,
    url: String,
}

impl PostgresSource {
    /// A source for `url`; `connection` names it in errors.
    pub fn new(connection: &str, url: String) -> Self {
        PostgresSource {
            connection: connection.to_string(),
            url,
        }
    }

    async fn connect(&self) -> Result<Client, SourceError> {
        let client = connect(&self.url, &self.connection)
            .await
            .map_err(|e| match e {
                ConnectError::Tls(message) => SourceError::Config {
                    connection: self.connection.clone(),
                    message,
                },
                ConnectError::Postgres(e) => SourceError::Unavailable {
                    connection: self.connection.clone(),
                    message: e.to_string(),
                },
            })?;
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    fn error(&self, e: tokio_postgres::Error) -> SourceError {
        if let Some(db) = e.as_db_error() {
            SourceError::Query {
                connection: self.connection.clone(),
                message: format!("{} ({})", db.message(), db.code().code()),
            }
        } else {
            SourceError::Unavailable {
                connection: self.connection.clone(),
                message: e.to_string(),
            }
        }
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn columns(&self, sql: &str) -> Result<Vec<String>, SourceError> {
        let client = self.connect().await?;
        let stmt = client
            .prepare(subquery_sql(sql))
            .await
            .map_err(|e| self.error(e))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect())
    }

    async fn rows(&self, sql: &str) -> Result<RowStream, SourceError> {
        let client = self.connect().await?;
        let wrapped = format!(
            "SELECT row_to_json(q)::text FROM ({}) AS q",
            subquery_sql(sql)
        );
        let stream = client
            .query_raw(wrapped.as_str(), std::iter::empty::<&str>())
            .await
            .map_err(|e| self.error(e))?;
        let this = self.clone();
        // The client travels with the stream: dropping it would close the connection.
        let rows = stream.map(move |row| {
            let _keep_alive = &client;
            let row = row.map_err(|e| this.error(e))?;
            let text: &str = row.get(0);
            serde_json::from_str::<Values>(text).map_err(|e| SourceError::Query {
                connection: this.connection.clone(),
                message: format!("row is not a JSON object: {e}"),
            })
        });
        Ok(Box::pin(rows))
    }
}
