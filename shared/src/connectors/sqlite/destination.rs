//! An SQLite table as destination: an operational database on the same machine (and the
//! quickstart's destination). Each record is its own statement inside one transaction per
//! batch, so a bad record is rejected on its own without splitting.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection};
use serde_json::{Number, Value};

use super::types::to_json;
use crate::config::SyncDef;
use crate::connectors::sql_ident::{quote_ident, quote_table};
use crate::ports::{
    Batch, Destination, DestinationError, OutRecord, RecordOutcome, SendError, WriteOp,
};
use crate::record::{key_values, Values};

/// An SQLite destination connection.
pub struct SqliteDestination {
    connection: String,
    path: PathBuf,
    create_tables: bool,
    conn: Arc<Mutex<Option<Connection>>>,
}

/// JSON -> SQLite: integers stay integers, other numbers become REAL when exact and TEXT
/// otherwise (no precision loss), booleans 0/1, objects and arrays JSON text.
fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                SqlValue::Integer(i)
            } else {
                let text = n.to_string();
                match n.as_f64() {
                    Some(f) if Number::from_f64(f).is_some_and(|x| x.to_string() == text) => {
                        SqlValue::Real(f)
                    }
                    _ => SqlValue::Text(text),
                }
            }
        }
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

/// The two forms a text key part may be stored in: as text, or as the integer it spells.
fn key_forms(part: &Value) -> [SqlValue; 2] {
    let text = match part {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let int = text
        .parse::<i64>()
        .ok()
        .filter(|i| i.to_string() == text)
        .map(SqlValue::Integer)
        .unwrap_or_else(|| SqlValue::Text(text.clone()));
    [SqlValue::Text(text), int]
}

/// `"k1" IN (?, ?) AND "k2" IN (?, ?)`: matches a key part stored as text or as integer.
fn key_where(sync: &SyncDef) -> String {
    sync.key_fields
        .iter()
        .map(|k| format!("{} IN (?, ?)", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

struct Param(SqlValue);

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::from(&self.0)))
    }
}

impl SqliteDestination {
    /// A destination writing to the database at `path`; with `create_tables`, a missing
    /// table is created with the mapped fields and a primary key on the key fields.
    pub fn new(connection: &str, path: PathBuf, create_tables: bool) -> Self {
        SqliteDestination {
            connection: connection.to_string(),
            path,
            create_tables,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, rusqlite::Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let slot = Arc::clone(&self.conn);
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                let c = Connection::open(&path)?;
                c.busy_timeout(Duration::from_secs(10))?;
                *guard = Some(c);
            }
            f(guard.as_mut().expect("connection opened above"))
        })
        .await
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
    }

    fn invalid(&self, message: String) -> DestinationError {
        DestinationError::Invalid {
            connection: self.connection.clone(),
            message,
        }
    }
}

fn table_columns(c: &Connection, object: &str) -> rusqlite::Result<Vec<(String, bool)>> {
    let (schema, table) = match object.split_once('.') {
        Some((s, t)) => (quote_ident(s), t.to_string()),
        None => ("main".to_string(), object.to_string()),
    };
    let mut stmt = c.prepare(&format!(
        "PRAGMA {schema}.table_info({})",
        quote_ident(&table)
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)? > 0))
    })?;
    rows.collect()
}

fn classify(e: &rusqlite::Error) -> Option<SendError> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let message = msg.clone().unwrap_or_else(|| f.to_string());
            Some(match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    SendError::Transient {
                        code: "busy".into(),
                        message,
                        retry_after: None,
                    }
                }
                rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TypeMismatch => {
                    return None
                }
                _ => SendError::Fatal {
                    code: format!("{:?}", f.code),
                    message,
                },
            })
        }
        other => Some(SendError::Fatal {
            code: "sqlite".into(),
            message: other.to_string(),
        }),
    }
}

#[async_trait]
impl Destination for SqliteDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        let object = sync.object.clone();
        let cols = self
            .with_conn(move |c| table_columns(c, &object))
            .await
            .map_err(|e| self.invalid(e.to_string()))?;
        if cols.is_empty() {
            if !self.create_tables {
                return Err(self.invalid(format!(
                    "table {} does not exist in {}; create it, or set `create_tables: true` on the connection",
                    sync.object,
                    self.path.display()
                )));
            }
            let defs: Vec<String> = sync.mapping.keys().map(|f| quote_ident(f)).collect();
            let keys: Vec<String> = sync.key_fields.iter().map(|f| quote_ident(f)).collect();
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
                quote_table(&sync.object),
                defs.join(", "),
                keys.join(", ")
            );
            return self
                .with_conn(move |c| c.execute_batch(&sql))
                .await
                .map_err(|e| self.invalid(e.to_string()));
        }
        let names: Vec<&String> = cols.iter().map(|(n, _)| n).collect();
        let missing: Vec<&String> = sync.mapping.keys().filter(|f| !names.contains(f)).collect();
        if !missing.is_empty() {
            return Err(self.invalid(format!(
                "table {} has no column {}",
                sync.object,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut pk: Vec<String> = cols
            .iter()
            .filter(|(_, k)| *k)
            .map(|(n, _)| n.clone())
            .collect();
        pk.sort();
        let mut want = sync.key_fields.clone();
        want.sort();
        if pk != want {
            return Err(self.invalid(format!(
                "table {} needs its primary key on exactly ({}) so retl can match records",
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
        let fields: Vec<String> = sync.mapping.keys().cloned().collect();
        let sql = format!(
            "SELECT {} FROM {}",
            fields
                .iter()
                .map(|f| quote_ident(f))
                .collect::<Vec<_>>()
                .join(", "),
            quote_table(&sync.object)
        );
        let rows = self
            .with_conn(move |c| {
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map([], |r| {
                    let mut v = Values::new();
                    for (i, f) in fields.iter().enumerate() {
                        v.insert(f.clone(), to_json(r.get_ref(i)?));
                    }
                    Ok(v)
                })?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| self.invalid(e.to_string()))?;
        Ok(Box::pin(futures::stream::iter(rows.into_iter().map(Ok))))
    }

    async fn lookup(
        &self,
        sync: &SyncDef,
        keys: &[String],
    ) -> Result<Vec<Values>, DestinationError> {
        let fields: Vec<String> = sync.mapping.keys().cloned().collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            fields
                .iter()
                .map(|f| quote_ident(f))
                .collect::<Vec<_>>()
                .join(", "),
            quote_table(&sync.object),
            key_where(sync)
        );
        let key_fields = sync.key_fields.clone();
        let keys = keys.to_vec();
        self.with_conn(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let mut out = Vec::new();
            for key in &keys {
                let kv = key_values(key, &key_fields);
                let params: Vec<Param> = key_fields
                    .iter()
                    .flat_map(|f| key_forms(kv.get(f).unwrap_or(&Value::Null)))
                    .map(Param)
                    .collect();
                let mut rows = stmt.query(params_from_iter(params.iter()))?;
                if let Some(r) = rows.next()? {
                    let mut v = Values::new();
                    for (i, f) in fields.iter().enumerate() {
                        v.insert(f.clone(), to_json(r.get_ref(i)?));
                    }
                    out.push(v);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| self.invalid(e.to_string()))
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let op = batch.op;
        let sql = statement(sync, op);
        let shape = Shape::of(sync);
        // Bound here, so the blocking writer needs no copy of the records.
        let bound: Vec<Vec<Param>> = batch.records.iter().map(|r| shape.params(op, r)).collect();
        let result = self
            .with_conn(move |c| {
                let tx = c.transaction()?;
                let mut out = Vec::with_capacity(bound.len());
                {
                    let mut stmt = tx.prepare(&sql)?;
                    for params in &bound {
                        out.push(match stmt.execute(params_from_iter(params.iter())) {
                            Ok(n) => outcome_of(op, n),
                            Err(e) if classify(&e).is_none() => RecordOutcome::Rejected {
                                code: "constraint".into(),
                                message: e.to_string(),
                            },
                            Err(e) => return Err(e),
                        });
                    }
                }
                tx.commit()?;
                Ok(out)
            })
            .await;
        result.map_err(|e| {
            classify(&e).unwrap_or(SendError::Transient {
                code: "sqlite".into(),
                message: e.to_string(),
                retry_after: None,
            })
        })
    }
}

/// How a statement that changed `n` rows ends for its record.
fn outcome_of(op: WriteOp, n: usize) -> RecordOutcome {
    match (op, n) {
        (WriteOp::Upsert, _) | (_, 1..) => RecordOutcome::Delivered,
        (WriteOp::Create, 0) => RecordOutcome::Skipped {
            reason: "already exists in the destination".into(),
        },
        (_, 0) => RecordOutcome::Skipped {
            reason: "not found in the destination".into(),
        },
    }
}

/// The one statement each record of a batch runs, for the write `op`.
fn statement(sync: &SyncDef, op: WriteOp) -> String {
    let table = quote_table(&sync.object);
    let fields: Vec<&String> = sync.mapping.keys().collect();
    let join = |names: &[&String]| {
        names
            .iter()
            .map(|f| quote_ident(f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cols = join(&fields);
    let marks = vec!["?"; fields.len()].join(", ");
    let keys = join(&sync.key_fields.iter().collect::<Vec<_>>());
    let non_keys: Vec<&String> = fields
        .iter()
        .copied()
        .filter(|f| !sync.key_fields.contains(f))
        .collect();
    let insert = format!("INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({keys})");
    match op {
        WriteOp::Upsert if !non_keys.is_empty() => {
            let sets: Vec<String> = non_keys
                .iter()
                .map(|f| format!("{0} = excluded.{0}", quote_ident(f)))
                .collect();
            format!("{insert} DO UPDATE SET {}", sets.join(", "))
        }
        WriteOp::Upsert | WriteOp::Create => format!("{insert} DO NOTHING"),
        WriteOp::Update => {
            let sets = if non_keys.is_empty() {
                format!("{0} = {0}", quote_ident(&sync.key_fields[0]))
            } else {
                let s: Vec<String> = non_keys
                    .iter()
                    .map(|f| format!("{} = ?", quote_ident(f)))
                    .collect();
                s.join(", ")
            };
            format!("UPDATE {table} SET {sets} WHERE {}", key_where(sync))
        }
        WriteOp::Delete => format!("DELETE FROM {table} WHERE {}", key_where(sync)),
    }
}

/// The sync's fields as a statement binds them.
struct Shape {
    fields: Vec<String>,
    non_keys: Vec<String>,
    key_fields: Vec<String>,
}

impl Shape {
    fn of(sync: &SyncDef) -> Self {
        let fields: Vec<String> = sync.mapping.keys().cloned().collect();
        let non_keys = fields
            .iter()
            .filter(|f| !sync.key_fields.contains(f))
            .cloned()
            .collect();
        Shape {
            fields,
            non_keys,
            key_fields: sync.key_fields.clone(),
        }
    }

    /// The parameters of [`statement`] for one record.
    fn params(&self, op: WriteOp, r: &OutRecord) -> Vec<Param> {
        let value = |f: &String| Param(to_sql(r.values.get(f).unwrap_or(&Value::Null)));
        let key_forms_of = || {
            let kv = key_values(&r.key, &self.key_fields);
            self.key_fields
                .iter()
                .flat_map(|f| key_forms(kv.get(f).unwrap_or(&Value::Null)).map(Param))
                .collect::<Vec<_>>()
        };
        match op {
            WriteOp::Upsert | WriteOp::Create => self.fields.iter().map(value).collect(),
            WriteOp::Update => self
                .non_keys
                .iter()
                .map(value)
                .chain(key_forms_of())
                .collect(),
            WriteOp::Delete => key_forms_of(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_keep_their_precision() {
        assert_eq!(to_sql(&json!(5)), SqlValue::Integer(5));
        assert_eq!(to_sql(&json!(1.5)), SqlValue::Real(1.5));
        let big: Value = serde_json::from_str("12345678901234567890.123456789").unwrap();
        assert_eq!(
            to_sql(&big),
            SqlValue::Text("12345678901234567890.123456789".into())
        );
    }

    #[test]
    fn key_parts_match_text_or_integer_storage() {
        assert_eq!(
            key_forms(&json!("7")),
            [SqlValue::Text("7".into()), SqlValue::Integer(7)]
        );
        assert_eq!(
            key_forms(&json!("007")),
            [SqlValue::Text("007".into()), SqlValue::Text("007".into())]
        );
    }
}
