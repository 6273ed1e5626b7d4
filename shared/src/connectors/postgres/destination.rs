//! A PostgreSQL table as destination: upsert with ON CONFLICT on the key columns, create-only,
//! update-only and delete, each one statement per batch over `jsonb_populate_recordset`, so
//! PostgreSQL itself casts JSON values to the column types.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::tls::{connect, ConnectError};
use crate::config::SyncDef;
use crate::connectors::sql_ident::{quote_ident, quote_table};
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError, WriteOp};
use crate::record::{key_of, key_values, Values};

/// A PostgreSQL destination connection.
pub struct PostgresDestination {
    connection: String,
    url: String,
    pool: Mutex<Vec<Client>>,
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `json_build_object('f', t."f", ...)::text` over the mapped fields.
fn json_of(fields: &[&String], alias: &str) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| format!("{}, {alias}.{}", quote_literal(f), quote_ident(f)))
        .collect();
    format!("json_build_object({})::text", parts.join(", "))
}

impl PostgresDestination {
    /// A destination for `url`; `connection` names it in errors.
    pub fn new(connection: &str, url: String) -> Self {
        PostgresDestination {
            connection: connection.to_string(),
            url,
            pool: Mutex::new(Vec::new()),
        }
    }

    async fn client(&self) -> Result<Client, ConnectError> {
        if let Some(c) = self.pool.lock().await.pop() {
            if !c.is_closed() {
                return Ok(c);
            }
        }
        let client = connect(&self.url, &self.connection).await?;
        client.batch_execute("SET TIME ZONE 'UTC'").await?;
        Ok(client)
    }

    fn connect_error(&self, e: ConnectError) -> DestinationError {
        match e {
            ConnectError::Postgres(e) => self.read_error(e),
            ConnectError::Tls(message) => self.invalid(message),
        }
    }

    async fn give_back(&self, c: Client) {
        if !c.is_closed() {
            self.pool.lock().await.push(c);
        }
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> DestinationError {
        DestinationError::Unavailable {
            connection: self.connection.clone(),
            message: e.to_string(),
        }
    }

    fn invalid(&self, message: String) -> DestinationError {
        DestinationError::Invalid {
            connection: self.connection.clone(),
            message,
        }
    }

    /// A failed read or connect: busy, shutting down or out of connections (SQLSTATE 53300)
    /// is a transient failure the step retries; anything else is the sync's to fix.
    fn read_error(&self, e: tokio_postgres::Error) -> DestinationError {
        match e.as_db_error() {
            Some(db) if is_transient(db.code()) => {
                self.unavailable(format!("{} ({})", db.message(), db.code().code()))
            }
            Some(db) => self.invalid(format!("{} ({})", db.message(), db.code().code())),
            None => self.unavailable(e),
        }
    }

    fn statement(sync: &SyncDef, op: WriteOp) -> String {
        let table = quote_table(&sync.object);
        let fields: Vec<&String> = sync.mapping.keys().collect();
        let cols = fields
            .iter()
            .map(|f| quote_ident(f))
            .collect::<Vec<_>>()
            .join(", ");
        let keys = sync
            .key_fields
            .iter()
            .map(|f| quote_ident(f))
            .collect::<Vec<_>>()
            .join(", ");
        let key_refs: Vec<&String> = sync.key_fields.iter().collect();
        let returning = json_of(&key_refs, "t");
        let src = format!("jsonb_populate_recordset(NULL::{table}, $1::text::jsonb)");
        let join = sync
            .key_fields
            .iter()
            .map(|f| format!("t.{0} = s.{0}", quote_ident(f)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let non_keys: Vec<&&String> = fields
            .iter()
            .filter(|f| !sync.key_fields.contains(f))
            .collect();
        match op {
            WriteOp::Upsert => {
                let action = if non_keys.is_empty() {
                    // Nothing to update: an existing row is already what the record says.
                    format!(
                        "DO UPDATE SET {0} = EXCLUDED.{0}",
                        quote_ident(&sync.key_fields[0])
                    )
                } else {
                    let sets = non_keys
                        .iter()
                        .map(|f| format!("{0} = EXCLUDED.{0}", quote_ident(f)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("DO UPDATE SET {sets}")
                };
                format!(
                    "INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {src} \
                     ON CONFLICT ({keys}) {action} RETURNING {returning}"
                )
            }
            WriteOp::Create => format!(
                "INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {src} \
                 ON CONFLICT ({keys}) DO NOTHING RETURNING {returning}"
            ),
            WriteOp::Update => {
                let sets = if non_keys.is_empty() {
                    format!("{0} = s.{0}", quote_ident(&sync.key_fields[0]))
                } else {
                    non_keys
                        .iter()
                        .map(|f| format!("{0} = s.{0}", quote_ident(f)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "UPDATE {table} AS t SET {sets} FROM {src} AS s WHERE {join} RETURNING {returning}"
                )
            }
            WriteOp::Delete => format!(
                "DELETE FROM {table} AS t USING {src} AS s WHERE {join} RETURNING {returning}"
            ),
        }
    }
}

/// Errors that heal by waiting: serialization failures and deadlocks (40), insufficient
/// resources such as too many connections (53), connection failures (08), a lock not
/// available, a cancelled statement, a server shutting down or starting.
fn is_transient(state: &SqlState) -> bool {
    let code = state.code();
    code.starts_with("40")
        || code.starts_with("53")
        || code.starts_with("08")
        || *state == SqlState::LOCK_NOT_AVAILABLE
        || *state == SqlState::QUERY_CANCELED
        || *state == SqlState::ADMIN_SHUTDOWN
        || *state == SqlState::CANNOT_CONNECT_NOW
}

fn classify(e: tokio_postgres::Error) -> SendError {
    let Some(db) = e.as_db_error() else {
        return SendError::Transient {
            code: "connection".into(),
            message: e.to_string(),
            retry_after: None,
        };
    };
    let code = db.code().code().to_string();
    let message = match (db.detail(), db.column()) {
        (Some(d), _) => format!("{} ({d})", db.message()),
        (None, Some(c)) => format!("{} (column {c})", db.message()),
        _ => db.message().to_string(),
    };
    let state = db.code();
    if code.starts_with("22") || code.starts_with("23") {
        // Bad data or a constraint: one record is at fault, so split to find it.
        SendError::BatchRejected { code, message }
    } else if is_transient(state) {
        SendError::Transient {
            code,
            message,
            retry_after: None,
        }
    } else {
        SendError::Fatal { code, message }
    }
}

#[async_trait]
impl Destination for PostgresDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        let client = self.client().await.map_err(|e| self.connect_error(e))?;
        let table = quote_table(&sync.object);
        let exists: Option<String> = client
            .query_one("SELECT to_regclass($1)::text", &[&table])
            .await
            .map_err(|e| self.read_error(e))?
            .get(0);
        if exists.is_none() {
            return Err(self.invalid(format!(
                "table {} does not exist; create it with a primary key on ({})",
                sync.object,
                sync.key_fields.join(", ")
            )));
        }
        let cols: BTreeSet<String> = client
            .query(
                "SELECT attname::text FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
                &[&table],
            )
            .await
            .map_err(|e| self.read_error(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing: Vec<&String> = sync.mapping.keys().filter(|f| !cols.contains(*f)).collect();
        if !missing.is_empty() {
            return Err(self.invalid(format!(
                "table {} has no column {}; its columns are: {}",
                sync.object,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                cols.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let unique_sets = client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY a.attname)
                 FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indpred IS NULL
                 GROUP BY i.indexrelid",
                &[&table],
            )
            .await
            .map_err(|e| self.read_error(e))?;
        let mut wanted: Vec<String> = sync.key_fields.clone();
        wanted.sort();
        let has_key = unique_sets
            .iter()
            .any(|r| r.get::<_, Vec<String>>(0) == wanted);
        self.give_back(client).await;
        if !has_key {
            return Err(self.invalid(format!(
                "table {} needs a primary key or unique constraint on exactly ({}) so retl can \
                 match records; run: ALTER TABLE {} ADD PRIMARY KEY ({})",
                sync.object,
                sync.key_fields.join(", "),
                sync.object,
                sync.key_fields.join(", ")
            )));
        }
        Ok(())
    }

    async fn list(
        &self,
        sync: &SyncDef,
    ) -> Result<BoxStream<'static, Result<Values, DestinationError>>, DestinationError> {
        let client = self.client().await.map_err(|e| self.connect_error(e))?;
        let fields: Vec<&String> = sync.mapping.keys().collect();
        let sql = format!(
            "SELECT {} FROM {} AS t",
            json_of(&fields, "t"),
            quote_table(&sync.object)
        );
        let rows = client
            .query_raw(sql.as_str(), std::iter::empty::<&str>())
            .await
            .map_err(|e| self.read_error(e))?;
        let connection = self.connection.clone();
        Ok(rows
            .map(move |r| {
                let _keep_alive = &client;
                let r = r.map_err(|e| DestinationError::Unavailable {
                    connection: connection.clone(),
                    message: e.to_string(),
                })?;
                serde_json::from_str::<Values>(r.get(0)).map_err(|e| DestinationError::Invalid {
                    connection: connection.clone(),
                    message: e.to_string(),
                })
            })
            .boxed())
    }

    async fn lookup(
        &self,
        sync: &SyncDef,
        keys: &[String],
    ) -> Result<Vec<Values>, DestinationError> {
        let client = self.client().await.map_err(|e| self.connect_error(e))?;
        let table = quote_table(&sync.object);
        let fields: Vec<&String> = sync.mapping.keys().collect();
        let join = sync
            .key_fields
            .iter()
            .map(|f| format!("t.{0} = s.{0}", quote_ident(f)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT {} FROM {table} AS t JOIN jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) AS s ON {join}",
            json_of(&fields, "t")
        );
        let mut out = Vec::new();
        for chunk in keys.chunks(1000) {
            let payload: Vec<Values> = chunk
                .iter()
                .map(|k| key_values(k, &sync.key_fields))
                .collect();
            let payload = serde_json::to_string(&payload).expect("keys serialise");
            let rows = client
                .query(sql.as_str(), &[&payload])
                .await
                .map_err(|e| self.read_error(e))?;
            for r in rows {
                let v: Values =
                    serde_json::from_str(r.get(0)).map_err(|e| self.invalid(e.to_string()))?;
                out.push(v);
            }
        }
        self.give_back(client).await;
        Ok(out)
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let client = self.client().await.map_err(|e| match e {
            ConnectError::Postgres(e) => classify(e),
            ConnectError::Tls(message) => SendError::Fatal {
                code: "tls".into(),
                message,
            },
        })?;
        let payload: Vec<&Values> = batch.records.iter().map(|r| &r.values).collect();
        let payload = serde_json::to_string(&payload).map_err(|e| SendError::BatchRejected {
            code: "encoding".into(),
            message: e.to_string(),
        })?;
        let sql = Self::statement(sync, batch.op);
        let rows = client.query(sql.as_str(), &[&payload]).await;
        self.give_back(client).await;
        let rows = rows.map_err(classify)?;
        let mut written = BTreeSet::new();
        for r in rows {
            let v: Values = serde_json::from_str(r.get(0)).unwrap_or_default();
            if let Ok(k) = key_of(&v, &sync.key_fields) {
                written.insert(k);
            }
        }
        let missing = match batch.op {
            WriteOp::Create => "already exists in the destination",
            WriteOp::Update | WriteOp::Delete => "not found in the destination",
            WriteOp::Upsert => "not written by the upsert",
        };
        Ok(batch
            .records
            .iter()
            .map(|r| {
                if written.contains(&r.key) {
                    RecordOutcome::Delivered
                } else if batch.op == WriteOp::Upsert {
                    RecordOutcome::Failed {
                        code: "not_written".into(),
                        message: missing.into(),
                    }
                } else {
                    RecordOutcome::Skipped {
                        reason: missing.into(),
                    }
                }
            })
            .collect())
    }
}
