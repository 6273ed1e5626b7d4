use std::path::PathBuf;

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::types::to_json;
use crate::connectors::sql_ident::quote_ident;
use crate::connectors::subquery_sql;
use crate::ports::{
    BatchStream, Bound, ModelQuery, RowBatch, RowStream, Source, SourceError, ROWS_PER_BATCH,
};
use crate::record::Values;

/// An SQLite database file read as a warehouse.
///
/// Type mapping: INTEGER -> number, REAL -> number, TEXT -> string, BLOB -> string `\x<hex>`,
/// NULL -> null. TEXT holding JSON stays a string (wrap it in `json(...)` in SQL to keep text).
#[derive(Debug, Clone)]
pub struct SqliteSource {
    connection: String,
    path: PathBuf,
    timeout: Option<std::time::Duration>,
}

impl SqliteSource {
    /// A source reading `path`, interrupting statements after `timeout`; `connection` names
    /// it in errors.
    pub fn new(connection: &str, path: PathBuf, timeout: Option<std::time::Duration>) -> Self {
        SqliteSource {
            connection: connection.to_string(),
            path,
            timeout,
        }
    }

    fn open(&self) -> Result<Connection, SourceError> {
        if !self.path.is_file() {
            return Err(SourceError::Config {
                connection: self.connection.clone(),
                message: format!("database file {} does not exist", self.path.display()),
            });
        }
        Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: e.to_string(),
        })
    }

    fn query_error(&self, e: rusqlite::Error) -> SourceError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::OperationInterrupted) if self.timeout.is_some() => {
                SourceError::Timeout {
                    connection: self.connection.clone(),
                    seconds: self.timeout.map_or(0, |t| t.as_secs()),
                }
            }
            _ => SourceError::Query {
                connection: self.connection.clone(),
                code: sqlite_code(&e),
                message: e.to_string(),
            },
        }
    }

    /// Interrupts statements of `conn` that run past the timeout, until the returned guard
    /// is dropped.
    fn arm_timeout(&self, conn: &Connection) -> Option<std::sync::mpsc::Sender<()>> {
        let limit = self.timeout?;
        let handle = conn.get_interrupt_handle();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
                handle.interrupt();
            }
        });
        Some(done_tx)
    }

    /// Runs the model on a reader thread; returns the statement's column names and its rows
    /// in batches, positioned as `columns` (the statement's own order when `None`). A
    /// bounded channel keeps memory flat (the reader waits while the consumer works) and
    /// costs one send and one wake per batch.
    async fn read(
        &self,
        query: &ModelQuery,
        columns: Option<&[String]>,
    ) -> Result<(Vec<String>, BatchStream), SourceError> {
        let this = self.clone();
        let (sql, bound) = model_sql(query);
        let wanted = columns.map(<[String]>::to_vec);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RowBatch, SourceError>>(2);
        let (ready_tx, ready_rx) =
            tokio::sync::oneshot::channel::<Result<Vec<String>, SourceError>>();
        std::thread::spawn(move || {
            let conn = match this.open() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _timeout = this.arm_timeout(&conn);
            let mut stmt = match conn.prepare(&sql) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(this.query_error(e)));
                    return;
                }
            };
            let names: Vec<String> = stmt
                .column_names()
                .into_iter()
                .map(str::to_string)
                .collect();
            // Each output column's position in the statement (the first of a repeated name).
            let positions: Vec<Option<usize>> = match &wanted {
                Some(w) => w
                    .iter()
                    .map(|c| names.iter().position(|n| n == c))
                    .collect(),
                None => (0..names.len()).map(Some).collect(),
            };
            let rows = match stmt.query(rusqlite::params_from_iter(bound.iter())) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(this.query_error(e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(names));
            send_rows(&this, rows, &positions, &tx);
        });
        let names = ready_rx.await.map_err(|_| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: "the SQLite reader stopped".into(),
        })??;
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|batch| (batch, rx))
        });
        Ok((names, Box::pin(batches)))
    }
}

/// Reads every row into batches of the columns at `positions` and hands them to the
/// consumer, until the rows end, a read fails (its error is the last item) or the consumer
/// is gone.
fn send_rows(
    source: &SqliteSource,
    mut rows: rusqlite::Rows<'_>,
    positions: &[Option<usize>],
    tx: &tokio::sync::mpsc::Sender<Result<RowBatch, SourceError>>,
) {
    let width = positions.len();
    let mut batch = RowBatch::with_capacity(width, ROWS_PER_BATCH);
    loop {
        match rows.next() {
            Ok(Some(row)) => batch.push_row(positions.iter().map(|p| {
                p.and_then(|i| row.get_ref(i).ok())
                    .map_or(Value::Null, to_json)
            })),
            Ok(None) => break,
            Err(e) => {
                if !batch.is_empty() {
                    let _ = tx.blocking_send(Ok(std::mem::take(&mut batch)));
                }
                let _ = tx.blocking_send(Err(source.query_error(e)));
                return;
            }
        }
        if batch.len() == ROWS_PER_BATCH {
            let full =
                std::mem::replace(&mut batch, RowBatch::with_capacity(width, ROWS_PER_BATCH));
            if tx.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// The model, filtered by the high watermark when there is one (SQLite compares the bound
/// as it compares the column: numbers numerically, text as text in retl's ISO forms).
fn model_sql(query: &ModelQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as Sql;
    let sql = subquery_sql(&query.sql);
    let Some(f) = &query.filter else {
        return (sql.to_string(), Vec::new());
    };
    let bound = match &f.after {
        Bound::Integer(t) => t
            .parse::<i64>()
            .map_or_else(|_| Sql::Text(t.clone()), Sql::Integer),
        Bound::Decimal(t) => t
            .parse::<f64>()
            .map_or_else(|_| Sql::Text(t.clone()), Sql::Real),
        // The column holds text; the bound is written exactly as the source reads such text
        // (the engine only types text that round-trips), so text order is time order.
        Bound::Instant(_) | Bound::Naive(_) | Bound::Date(_) => Sql::Text(f.after.to_string()),
        Bound::Text(t) => Sql::Text(t.clone()),
    };
    (
        format!(
            "SELECT * FROM ({sql}) AS q WHERE q.{} > ?1",
            quote_ident(&f.column)
        ),
        vec![bound],
    )
}

/// SQLite's name for the primary result code of `e` (`SQLITE_ERROR` for a bad statement).
fn sqlite_code(e: &rusqlite::Error) -> String {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return "SQLITE_MISUSE".into();
    };
    match f.extended_code & 0xff {
        1 => "SQLITE_ERROR".into(),
        5 => "SQLITE_BUSY".into(),
        6 => "SQLITE_LOCKED".into(),
        10 => "SQLITE_IOERR".into(),
        11 => "SQLITE_CORRUPT".into(),
        14 => "SQLITE_CANTOPEN".into(),
        26 => "SQLITE_NOTADB".into(),
        n => format!("SQLITE_{n}"),
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn columns(&self, query: &ModelQuery) -> Result<Vec<String>, SourceError> {
        let this = self.clone();
        let sql = subquery_sql(&query.sql).to_string();
        tokio::task::spawn_blocking(move || {
            let conn = this.open()?;
            let stmt = conn.prepare(&sql).map_err(|e| this.query_error(e))?;
            Ok(stmt
                .column_names()
                .into_iter()
                .map(str::to_string)
                .collect())
        })
        .await
        .map_err(|e| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: e.to_string(),
        })?
    }

    async fn rows(&self, query: &ModelQuery) -> Result<RowStream, SourceError> {
        let (names, batches) = self.read(query, None).await?;
        let rows = batches.flat_map(move |batch| {
            let rows: Vec<Result<Values, SourceError>> = match batch {
                Ok(batch) => batch
                    .rows()
                    .map(|cells| Ok(names.iter().cloned().zip(cells.iter().cloned()).collect()))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(rows)
        });
        Ok(Box::pin(rows))
    }

    async fn row_batches(
        &self,
        query: &ModelQuery,
        columns: &[String],
    ) -> Result<BatchStream, SourceError> {
        Ok(self.read(query, Some(columns)).await?.1)
    }
}
