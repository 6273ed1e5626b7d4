use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::record::Values;

/// A stream of model rows.
pub type RowStream = Pin<Box<dyn Stream<Item = Result<Values, SourceError>> + Send>>;

/// The warehouse failed. Each variant carries the warehouse's own error code where it gives
/// one, so a user can look it up in the vendor's documentation.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Could not connect, lost the connection, or the warehouse is busy; retrying may succeed.
    #[error("cannot reach the source `{connection}`: {message}")]
    Unavailable {
        /// Connection name.
        connection: String,
        /// The cause.
        message: String,
    },
    /// The SQL failed.
    #[error("the model SQL failed on `{connection}`: {message} ({code}); fix the SQL or the objects it reads")]
    Query {
        /// Connection name.
        connection: String,
        /// The warehouse's error code (SQLSTATE, vendor code).
        code: String,
        /// The warehouse's message.
        message: String,
    },
    /// The warehouse refused the credentials, or the role lacks a grant the model needs.
    #[error("the source `{connection}` refused access: {message} ({code}); check the credentials and the role's grants")]
    Auth {
        /// Connection name.
        connection: String,
        /// The warehouse's error code.
        code: String,
        /// The warehouse's message.
        message: String,
    },
    /// The model ran longer than the connection's `timeout_seconds`; it was cancelled.
    #[error("the model SQL on `{connection}` ran longer than {seconds} s and was cancelled; raise `timeout_seconds` or make the model faster")]
    Timeout {
        /// Connection name.
        connection: String,
        /// The limit.
        seconds: u64,
    },
    /// Configuration problem (missing secret, bad URL).
    #[error("source `{connection}` is misconfigured: {message}")]
    Config {
        /// Connection name.
        connection: String,
        /// What to fix.
        message: String,
    },
}

impl SourceError {
    /// Stable error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            SourceError::Unavailable { .. } => "Retl.SourceUnavailable",
            SourceError::Query { .. } => "Retl.SourceQueryFailed",
            SourceError::Auth { .. } => "Retl.SourceAuthFailed",
            SourceError::Timeout { .. } => "Retl.SourceTimeout",
            SourceError::Config { .. } => "Retl.ConfigError",
        }
    }
}

/// The lower bound of an incremental model's high-watermark column, typed as the column's
/// values read (see [`crate::connectors::values`]). Sources bind it as a typed parameter of
/// their dialect; it is never pasted into SQL text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Bound {
    /// An integer, in decimal digits.
    Integer(String),
    /// An exact decimal, in decimal digits.
    Decimal(String),
    /// An instant (timestamp with time zone).
    Instant(DateTime<Utc>),
    /// A timestamp without time zone.
    Naive(NaiveDateTime),
    /// A date.
    Date(NaiveDate),
    /// Text.
    Text(String),
}

impl std::fmt::Display for Bound {
    /// The value in retl's text form of its kind (the form rows are read in).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Integer(t) | Bound::Decimal(t) | Bound::Text(t) => f.write_str(t),
            Bound::Instant(t) => text(f, crate::connectors::values::instant(*t)),
            Bound::Naive(t) => text(f, crate::connectors::values::naive_timestamp(*t)),
            Bound::Date(d) => text(f, crate::connectors::values::date(*d)),
        }
    }
}

fn text(f: &mut std::fmt::Formatter<'_>, v: serde_json::Value) -> std::fmt::Result {
    f.write_str(v.as_str().unwrap_or_default())
}

/// Keep only the rows whose `column` is greater than `after` (an incremental model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFilter {
    /// A result column of the model.
    pub column: String,
    /// The exclusive lower bound.
    pub after: Bound,
}

/// A model to run: its SQL, who runs it (for query tags and labels the warehouse keeps), and
/// an optional high-watermark filter applied around the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelQuery {
    /// The model SQL as the user wrote it.
    pub sql: String,
    /// The sync, for query tags (`retl:<sync>:<run>`) and labels.
    pub sync: String,
    /// The run.
    pub run_id: String,
    /// Rows above a high watermark only.
    pub filter: Option<RowFilter>,
}

impl ModelQuery {
    /// The query of `sql` for a run of `sync`.
    pub fn new(sql: &str, sync: &str, run_id: &str) -> Self {
        ModelQuery {
            sql: sql.to_string(),
            sync: sync.to_string(),
            run_id: run_id.to_string(),
            filter: None,
        }
    }

    /// `retl:<sync>:<run>`: how the warehouse's query history names the query.
    pub fn tag(&self) -> String {
        format!("retl:{}:{}", self.sync, self.run_id)
    }
}

/// A warehouse that runs model SQL. Values follow [`crate::connectors::values`]; rows stream
/// in bounded memory; dropping the stream cancels the query in the warehouse; a query longer
/// than the connection's `timeout_seconds` is cancelled and reported as
/// [`SourceError::Timeout`].
#[async_trait]
pub trait Source: Send + Sync {
    /// The result columns of the model, without running it to completion.
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError>;
    /// The result rows of the model (with its filter), streamed in bounded memory.
    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError>;
}
