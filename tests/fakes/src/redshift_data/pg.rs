//! Runs one SQL statement on the test's real PostgreSQL for the warehouse fakes (Redshift
//! Data, Databricks SQL, Snowflake), so that what a connector reads back was really computed.
//!
//! Each statement gets its own connection: the vendors run statements independently, and a
//! connection per statement gives each one its own cancel token and backend pid. The
//! statement is prepared first (column names, types, type modifiers and source tables come
//! from the row description) and then run with the simple protocol, whose text output is what
//! the vendors' own text forms are derived from. Every session runs with `TimeZone = UTC`,
//! ISO dates and hex `bytea`, so the text forms do not depend on the server's settings.

use std::fmt;

use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, Client, NoTls, SimpleQueryMessage};

/// SQLSTATE of a statement cancelled by a cancel request (`query_canceled`).
const QUERY_CANCELED: &str = "57014";

/// Settings every fake session starts with, so text output is stable.
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET bytea_output = 'hex'; SET extra_float_digits = 1";

/// One result column as PostgreSQL describes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PgColumn {
    /// Column label.
    pub name: String,
    /// PostgreSQL type.
    pub ty: Type,
    /// Type modifier (`-1` when none): precision/scale of `numeric`, length of `varchar`.
    pub typmod: i32,
    /// Schema of the source table, when the column is a plain table column.
    pub schema: Option<String>,
    /// Source table, when the column is a plain table column.
    pub table: Option<String>,
    /// Whether the source column is declared `NOT NULL`.
    pub not_null: bool,
}

/// What a finished statement produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PgResult {
    /// Result columns; empty for a statement without a result set (DDL, DML).
    pub columns: Vec<PgColumn>,
    /// Rows in PostgreSQL's text form; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows returned or affected, from the command tag.
    pub affected: u64,
}

impl PgResult {
    /// Whether the statement has a result set (true for an empty one).
    pub(crate) fn has_result_set(&self) -> bool {
        !self.columns.is_empty()
    }

    /// Bytes of all values as text, a stand-in for the vendors' result-size accounting.
    pub(crate) fn text_bytes(&self) -> usize {
        self.rows.iter().map(|r| row_bytes(r)).sum()
    }
}

/// Bytes of one row's values as text.
pub(crate) fn row_bytes(row: &[Option<String>]) -> usize {
    row.iter().map(|v| v.as_ref().map_or(0, String::len)).sum()
}

/// Why a statement did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PgError {
    /// PostgreSQL refused or failed the statement.
    Sql {
        /// SQLSTATE, e.g. `42P01`.
        code: String,
        /// PostgreSQL's message, without the `ERROR:` prefix.
        message: String,
    },
    /// The statement was cancelled through its cancel token.
    Canceled,
    /// PostgreSQL could not be reached.
    Connect(String),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Sql { message, .. } => f.write_str(message),
            PgError::Canceled => f.write_str("canceling statement due to user request"),
            PgError::Connect(e) => write!(f, "cannot reach PostgreSQL: {e}"),
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code().code() == QUERY_CANCELED => PgError::Canceled,
            Some(db) => PgError::Sql {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => PgError::Connect(e.to_string()),
        }
    }
}

/// A statement that is running on its own connection.
pub(crate) struct Running {
    /// Cancels the statement on the server (a real cancel request to PostgreSQL).
    pub cancel: CancelToken,
    /// The backend process id running it.
    pub pid: i32,
    /// Resolves when the statement ends.
    pub done: JoinHandle<Result<PgResult, PgError>>,
}

/// Connects to `url`, runs `setup` statements, then starts `sql` in the background.
pub(crate) async fn start(url: &str, setup: &[String], sql: String) -> Result<Running, PgError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.batch_execute(SESSION_SETUP).await?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let cancel = client.cancel_token();
    let setup = setup.to_vec();
    let done = tokio::spawn(async move {
        for s in &setup {
            client.batch_execute(s).await?;
        }
        run(&client, &sql).await
    });
    Ok(Running { cancel, pid, done })
}

/// Describes then runs `sql`, collecting text rows and the command tag's count.
async fn run(client: &Client, sql: &str) -> Result<PgResult, PgError> {
    let statement = client.prepare(sql).await?;
    let mut columns = Vec::with_capacity(statement.columns().len());
    for c in statement.columns() {
        columns.push(describe(client, c).await?);
    }
    let mut result = PgResult {
        columns,
        ..PgResult::default()
    };
    for message in client.simple_query(sql).await? {
        match message {
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len()).map(|i| row.get(i).map(str::to_string));
                result.rows.push(values.collect());
            }
            SimpleQueryMessage::CommandComplete(n) => result.affected = n,
            _ => {}
        }
    }
    Ok(result)
}

/// One column, with its source table and nullability looked up in the catalog.
async fn describe(client: &Client, c: &tokio_postgres::Column) -> Result<PgColumn, PgError> {
    let mut column = PgColumn {
        name: c.name().to_string(),
        ty: c.type_().clone(),
        typmod: c.type_modifier(),
        schema: None,
        table: None,
        not_null: false,
    };
    if let (Some(oid), Some(attnum)) = (c.table_oid(), c.column_id()) {
        let found = client
            .query_opt(
                "SELECT n.nspname::text, c.relname::text, a.attnotnull FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attrelid = $1 AND a.attnum = $2",
                &[&oid, &attnum],
            )
            .await?;
        if let Some(row) = found {
            column.schema = Some(row.get(0));
            column.table = Some(row.get(1));
            column.not_null = row.get(2);
        }
    }
    Ok(column)
}

/// `(precision, scale)` of a `numeric` type modifier, when the column declares them.
pub(crate) fn numeric_typmod(typmod: i32) -> Option<(u32, u32)> {
    (typmod >= 4).then(|| {
        let t = (typmod - 4) as u32;
        ((t >> 16) & 0xffff, t & 0xffff)
    })
}

/// Declared length of a `varchar(n)` / `char(n)` type modifier.
pub(crate) fn char_length(typmod: i32) -> Option<u32> {
    (typmod >= 4).then(|| (typmod - 4) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typmods_decode() {
        // numeric(10,2) is stored as ((10 << 16) | 2) + 4.
        assert_eq!(numeric_typmod((10 << 16 | 2) + 4), Some((10, 2)));
        assert_eq!(numeric_typmod(-1), None);
        assert_eq!(char_length(36), Some(32));
    }
}
