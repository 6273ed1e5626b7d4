use async_trait::async_trait;
use futures::StreamExt;
use tokio_postgres::Client;

use super::tls::{connect, ConnectError};

use crate::connectors::sql_ident::quote_ident;
use crate::connectors::subquery_sql;
use crate::ports::{batches_of, BatchStream, Bound, ModelQuery, RowStream, Source, SourceError};
use crate::record::Values;

/// A PostgreSQL warehouse. Rows are converted by PostgreSQL's own `row_to_json` in a UTC
/// session. That path is PostgreSQL-only: Redshift has no `row_to_json`, and its connector
/// (`connectors::redshift`) reads the Data API's typed fields instead. The type mapping:
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
    timeout_seconds: Option<u64>,
    parallel_reads: u32,
}

impl PostgresSource {
    /// A source for `url` whose statements are cancelled after `timeout_seconds`, reading
    /// a model over `parallel_reads` connections; `connection` names it in errors.
    pub fn new(
        connection: &str,
        url: String,
        timeout_seconds: Option<u64>,
        parallel_reads: u32,
    ) -> Self {
        PostgresSource {
            connection: connection.to_string(),
            url,
            timeout_seconds,
            parallel_reads,
        }
    }

    /// The rows of `sql` on `client` as maps (`row_to_json`'s text parsed); the client
    /// travels with the stream: dropping the stream closes the connection, which ends the
    /// query in PostgreSQL.
    async fn stream(
        &self,
        client: Client,
        sql: &str,
        params: &[String],
    ) -> Result<RowStream, SourceError> {
        let stream = client
            .query_raw(sql, params.iter())
            .await
            .map_err(|e| self.error(e))?;
        let this = self.clone();
        let rows = stream.map(move |row| {
            let _keep_alive = &client;
            let row = row.map_err(|e| this.error(e))?;
            let text: &str = row.get(0);
            serde_json::from_str::<Values>(text).map_err(|e| SourceError::Query {
                connection: this.connection.clone(),
                code: "retl_row".into(),
                message: format!("row is not a JSON object: {e}"),
            })
        });
        Ok(Box::pin(rows))
    }

    /// `parts` connections in one transaction snapshot: the first exports it
    /// (`pg_export_snapshot`, as `pg_dump --jobs` does), the others import it, so every
    /// partition reads the model as of the same moment.
    async fn snapshot_connections(&self, parts: u32) -> Result<Vec<Client>, SourceError> {
        let first = self.connect().await?;
        first
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.error(e))?;
        let snapshot: String = first
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(|e| self.error(e))?
            .get(0);
        let mut clients = vec![first];
        for _ in 1..parts {
            let client = self.connect().await?;
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                    snapshot.replace('\'', "''")
                ))
                .await
                .map_err(|e| self.error(e))?;
            clients.push(client);
        }
        Ok(clients)
    }

    async fn connect(&self) -> Result<Client, SourceError> {
        let client = connect(&self.url, &self.connection)
            .await
            .map_err(|e| match e {
                ConnectError::Tls(message) => SourceError::Config {
                    connection: self.connection.clone(),
                    message,
                },
                ConnectError::Postgres(e) => self.error(e),
            })?;
        let timeout_ms = self.timeout_seconds.map_or(0, |s| s.saturating_mul(1000));
        client
            .batch_execute(&format!(
                "SET TIME ZONE 'UTC'; SET statement_timeout = {timeout_ms}"
            ))
            .await
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    fn error(&self, e: tokio_postgres::Error) -> SourceError {
        let connection = self.connection.clone();
        let Some(db) = e.as_db_error() else {
            return SourceError::Unavailable {
                connection,
                message: error_chain(&e),
            };
        };
        let code = db.code().code().to_string();
        let message = db.message().to_string();
        match code.as_str() {
            // query_canceled: the statement_timeout fired.
            "57014" => SourceError::Timeout {
                connection,
                seconds: self.timeout_seconds.unwrap_or(0),
            },
            // invalid_authorization_specification, invalid_password, insufficient_privilege.
            "28000" | "28P01" | "42501" => SourceError::Auth {
                connection,
                code,
                message,
            },
            // Connection exceptions, too many connections, the server shutting down.
            c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
                SourceError::Unavailable {
                    connection,
                    message: format!("{message} ({code})"),
                }
            }
            _ => SourceError::Query {
                connection,
                code,
                message,
            },
        }
    }
}

/// An error with its causes (tokio-postgres says only "error connecting to server").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The rows of partition `i` of `parts`: those whose key columns' text hashes to it
/// (`hashtextextended`, PostgreSQL 11 and later; the sign bit masked, so every hash has a
/// partition and only one).
fn partition_filter(key: &[String], i: u32, parts: u32) -> String {
    let columns: Vec<String> = key
        .iter()
        .map(|c| format!("q.{}", quote_ident(c)))
        .collect();
    format!(
        "(hashtextextended(row({})::text, 0) & 9223372036854775807) % {parts} = {i}",
        columns.join(", ")
    )
}

/// The model wrapped as a subquery, filtered by the high watermark when there is one and
/// to one partition (key columns, partition, partitions) when reading in parallel; the
/// bound is the only parameter, cast from text to the column's kind.
fn model_sql(
    query: &ModelQuery,
    partition: Option<(&[String], u32, u32)>,
) -> (String, Vec<String>) {
    let sql = subquery_sql(&query.sql);
    let partition = partition.map(|(key, i, parts)| partition_filter(key, i, parts));
    let Some(f) = &query.filter else {
        let filter = partition.map_or_else(String::new, |p| format!(" WHERE {p}"));
        return (
            format!("SELECT row_to_json(q)::text FROM ({sql}) AS q{filter}"),
            Vec::new(),
        );
    };
    let (ty, text) = match &f.after {
        Bound::Integer(t) | Bound::Decimal(t) => ("numeric", t.clone()),
        Bound::Instant(t) => ("timestamptz", t.to_rfc3339()),
        Bound::Naive(t) => ("timestamp", t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        Bound::Date(d) => ("date", d.format("%Y-%m-%d").to_string()),
        Bound::Text(t) => ("text", t.clone()),
    };
    let partition = partition.map_or_else(String::new, |p| format!(" AND {p}"));
    (
        format!(
            "SELECT row_to_json(q)::text FROM ({sql}) AS q WHERE q.{} > $1::text::{ty}{partition}",
            quote_ident(&f.column)
        ),
        vec![text],
    )
}

#[async_trait]
impl Source for PostgresSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let client = self.connect().await?;
        let stmt = client
            .prepare(subquery_sql(&query.sql))
            .await
            .map_err(|e| self.error(e))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect())
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let client = self.connect().await?;
        let (wrapped, params) = model_sql(query, None);
        self.stream(client, &wrapped, &params).await
    }

    async fn partitions(
        &self,
        query: &ModelQuery,
        columns: &[String],
        key: &[String],
    ) -> Result<Option<Vec<BatchStream>>, SourceError> {
        if self.parallel_reads <= 1 || key.is_empty() {
            return Ok(None);
        }
        let parts = self.parallel_reads;
        let clients = self.snapshot_connections(parts).await?;
        let mut streams = Vec::with_capacity(parts as usize);
        for (i, client) in (0..parts).zip(clients) {
            let (sql, params) = model_sql(query, Some((key, i, parts)));
            let rows = self.stream(client, &sql, &params).await?;
            streams.push(batches_of(rows, columns));
        }
        Ok(Some(streams))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowFilter;

    #[test]
    fn a_partition_is_a_masked_hash_of_the_key_columns() {
        let mut query = ModelQuery::new("select * from t;", "s", "r");
        let key = ["region".to_string(), "id\"x".to_string()];
        let (sql, params) = model_sql(&query, Some((&key, 2, 4)));
        assert_eq!(
            sql,
            "SELECT row_to_json(q)::text FROM (select * from t) AS q WHERE \
             (hashtextextended(row(q.\"region\", q.\"id\"\"x\")::text, 0) & 9223372036854775807) % 4 = 2"
        );
        assert!(params.is_empty());
        query.filter = Some(RowFilter {
            column: "id".into(),
            after: Bound::Integer("7".into()),
        });
        let (sql, params) = model_sql(&query, Some((&key, 0, 2)));
        assert!(
            sql.ends_with("WHERE q.\"id\" > $1::text::numeric AND (hashtextextended(row(q.\"region\", q.\"id\"\"x\")::text, 0) & 9223372036854775807) % 2 = 0"),
            "{sql}"
        );
        assert_eq!(params, ["7"]);
    }
}
