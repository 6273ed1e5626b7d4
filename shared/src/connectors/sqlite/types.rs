//! The SQLite type mapping, shared by the source and the destination so that a record read
//! back from an SQLite destination hashes like the row that was written.

use rusqlite::types::ValueRef;
use serde_json::{Number, Value};

/// SQLite value -> JSON: INTEGER -> number, REAL -> number, TEXT -> string, BLOB -> string
/// `\x<hex>`, NULL -> null.
pub(crate) fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Number(i.into()),
        ValueRef::Real(f) => Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(format!("\\x{}", hex::encode(b))),
    }
}
