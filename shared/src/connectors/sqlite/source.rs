use std::path::PathBuf;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::types::to_json;
use crate::connectors::subquery_sql;
use crate::ports::{RowStream, Source, SourceError};
use crate::record::Values;

/// An SQLite database file read as a warehouse.
///
/// Type mapping: INTEGER -> number, REAL -> number, TEXT -> string, BLOB -> string `\x<hex>`,
/// NULL -> null. TEXT holding JSON stays a string (wrap it in `json(...)` in SQL to keep text).
#[derive(Debug, Clone)]
pub struct SqliteSource {
    connection: String,
    path: PathBuf,
}

impl SqliteSource {
    /// A source reading `path`; `connection` names it in errors.
    pub fn new(connection: &str, path: PathBuf) -> Self {
        SqliteSource {
            connection: connection.to_string(),
            path,
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
        SourceError::Query {
            connection: self.connection.clone(),
            message: e.to_string(),
        }
    }
}

#[async_trait]
impl Source for SqliteSource {
    async fn columns(&self, sql: &str) -> Result<Vec<String>, SourceError> {
        let this = self.clone();
        let sql = subquery_sql(sql).to_string();
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

    async fn rows(&self, sql: &str) -> Result<RowStream, SourceError> {
        let this = self.clone();
        let sql = subquery_sql(sql).to_string();
        // A bounded channel keeps memory flat: the reader thread waits while the consumer works.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Values, SourceError>>(1024);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), SourceError>>();
        std::thread::spawn(move || {
            let conn = match this.open() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
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
            let mut rows = match stmt.query([]) {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(this.query_error(e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            loop {
                let item = match rows.next() {
                    Ok(Some(row)) => {
                        let mut values = Values::new();
                        for (i, name) in names.iter().enumerate() {
                            let v = row.get_ref(i).map(to_json).unwrap_or(Value::Null);
                            values.insert(name.clone(), v);
                        }
                        Ok(values)
                    }
                    Ok(None) => break,
                    Err(e) => Err(this.query_error(e)),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    break;
                }
            }
        });
        ready_rx.await.map_err(|_| SourceError::Unavailable {
            connection: self.connection.clone(),
            message: "the SQLite reader stopped".into(),
        })??;
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }
}
