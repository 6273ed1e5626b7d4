use std::path::PathBuf;

use async_trait::async_trait;
use futures::StreamExt;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::types::to_json;
use crate::connectors::sql_ident::quote_ident;
use crate::connectors::subquery_sql;
use crate::ports::{Bound, ModelQuery, RowStream, Source, SourceError};
use crate::record::Values;

/// Rows the reader thread hands over at a time.
const ROWS_PER_BATCH: usize = 1024;

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
        let this = self.clone();
        let (sql, bound) = model_sql(query);
        // A bounded channel of row batches keeps memory flat (the reader thread waits while
        // the consumer works) and costs one send and one wake per batch, not per row.
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Result<Values, SourceError>>>(2);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), SourceError>>();
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
            let mut rows = match stmt.query(rusqlite::params_from_iter(bound.iter())) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(this.query_error(e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let mut batch = Vec::with_capacity(ROWS_PER_BATCH);
            loop {
                match rows.next() {
                    Ok(Some(row)) => {
                        let mut values = Values::new();
                        for (i, name) in names.iter().enumerate() {
                            let v = row.get_ref(i).map(to_json).unwrap_or(Value::Null);
                            values.insert(name.clone(), v);
                        }
                        batch.push(Ok(values));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        batch.push(Err(this.query_error(e)));
                        break;
                    }
                }
                if batch.len() == ROWS_PER_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(ROWS_PER_BATCH));
                    if tx.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
        });
        ready_rx.await.map_err(|_| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: "the SQLite reader stopped".into(),
        })??;
        let batches = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|batch| (futures::stream::iter(batch), rx))
        });
        Ok(Box::pin(batches.flatten()))
    }
}
