use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::record::Values;

/// A stream of model rows.
pub type RowStream = Pin<Box<dyn Stream<Item = Result<Values, SourceError>> + Send>>;

/// A stream of model rows in positional batches.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RowBatch, SourceError>> + Send>>;

/// Rows a batch holds when the source does not choose.
pub const ROWS_PER_BATCH: usize = 1024;

/// Model rows by position: each row's values in the order of the model's columns, every row
/// of the batch in one allocation, so extract never builds a name -> value map per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowBatch {
    width: usize,
    rows: usize,
    cells: Vec<serde_json::Value>,
}

impl RowBatch {
    /// An empty batch of rows `width` columns wide, with room for `rows` rows.
    pub fn with_capacity(width: usize, rows: usize) -> Self {
        RowBatch {
            width,
            rows: 0,
            cells: Vec::with_capacity(width * rows),
        }
    }

    /// Appends a row; missing trailing values are null and extra values are dropped, so
    /// every row is exactly `width` wide.
    pub fn push_row(&mut self, values: impl IntoIterator<Item = serde_json::Value>) {
        let start = self.cells.len();
        self.cells.extend(values.into_iter().take(self.width));
        self.cells
            .resize(start + self.width, serde_json::Value::Null);
        self.rows += 1;
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the batch holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The values of each row, in column order.
    pub fn rows(&self) -> impl Iterator<Item = &[serde_json::Value]> + '_ {
        (0..self.rows).map(move |i| &self.cells[i * self.width..(i + 1) * self.width])
    }
}

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

/// `rows` in positional batches of [`ROWS_PER_BATCH`], each row's values in the order of
/// `columns` (a missing column is null).
pub fn batches_of(rows: RowStream, columns: &[String]) -> BatchStream {
    use futures::StreamExt;
    let columns = columns.to_vec();
    Box::pin(rows.ready_chunks(ROWS_PER_BATCH).map(move |chunk| {
        let mut batch = RowBatch::with_capacity(columns.len(), chunk.len());
        for row in chunk {
            let mut row = row?;
            batch.push_row(
                columns
                    .iter()
                    .map(|c| row.remove(c).unwrap_or(serde_json::Value::Null)),
            );
        }
        Ok(batch)
    }))
}

/// Where a warehouse may write a model's results: a folder of the run's object store that
/// the warehouse reaches by URL (the stack's S3 bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    /// The folder's URL as the warehouse addresses it (`https://bucket.s3.region.amazonaws.com/
    /// prefix/`, or the endpoint's path-style URL), ending with `/`.
    pub url: String,
    /// The same folder as a key of the object store, ending with `/`.
    pub key: String,
}

/// Batches of rows read from one exported object, decoded as they are taken.
pub type ExportBatches = Box<dyn Iterator<Item = Result<RowBatch, SourceError>> + Send>;

/// Turns one object a warehouse exported into rows, in the order of the model's columns.
pub trait ExportReader: Send + Sync {
    /// The rows of one exported object's bytes, in batches of positional rows; the rows
    /// are decoded batch by batch, so only the object's own bytes are held whole.
    fn batches(&self, body: bytes::Bytes) -> Result<ExportBatches, SourceError>;
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

    /// The rows of [`Source::rows`] in positional batches, each row's values in the order
    /// of `columns` (what [`Source::columns`] returned). Sources that read rows by position
    /// override it to skip building a map per row; the result must be the same.
    async fn row_batches(
        &self,
        query: &ModelQuery,
        columns: &[String],
    ) -> Result<BatchStream, SourceError> {
        Ok(batches_of(self.rows(query).await?, columns))
    }

    /// The model's rows as `parts` streams read at once over as many connections, each
    /// holding the rows whose `key` columns hash to it, all read in one snapshot where the
    /// warehouse can share one; positional batches as [`Source::row_batches`] gives.
    /// `Ok(None)` when the connection reads over one connection (the default).
    async fn partitions(
        &self,
        _query: &ModelQuery,
        _columns: &[String],
        _key: &[String],
    ) -> Result<Option<Vec<BatchStream>>, SourceError> {
        Ok(None)
    }

    /// Has the warehouse write the model's results (with its filter) into `target` as
    /// several objects at once, so that a run reads them in parallel instead of streaming
    /// every row through one connection; every object under `target.key` (empty when it
    /// started) is then one of them, read by the returned reader. `Ok(None)` when the
    /// connection does not export (the default): the run streams [`Source::row_batches`]
    /// instead. The objects hold exactly the rows and values [`Source::rows`] would give,
    /// in the order of [`Source::columns`].
    async fn export(
        &self,
        _query: &ModelQuery,
        _target: &ExportTarget,
    ) -> Result<Option<std::sync::Arc<dyn ExportReader>>, SourceError> {
        Ok(None)
    }
}
