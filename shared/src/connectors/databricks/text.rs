//! Result columns (`manifest.schema.columns`) and the string values of `JSON_ARRAY` results,
//! read by each column's `type_name`: integers and decimals keep every digit, doubles are
//! Java's `Double.toString`, TIMESTAMP is an instant (`2024-03-01T08:00:00.000Z`),
//! TIMESTAMP_NTZ a wall-clock time, BINARY base64, complex types JSON text.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::connectors::values;

/// How a column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Integer,
    Decimal,
    Float,
    Bool,
    Date,
    Timestamp,
    TimestampNtz,
    Binary,
    /// STRUCT, ARRAY, MAP, VARIANT: JSON text.
    Json,
    Text,
}

/// One result column.
#[derive(Debug, Clone)]
pub(super) struct Column {
    /// Its name.
    pub name: String,
    /// The `type_name` Databricks gives, for errors.
    pub type_name: String,
    /// How its values are read.
    pub kind: Kind,
}

fn kind(type_name: &str) -> Kind {
    match type_name.to_ascii_uppercase().as_str() {
        "BYTE" | "TINYINT" | "SHORT" | "SMALLINT" | "INT" | "INTEGER" | "LONG" | "BIGINT" => {
            Kind::Integer
        }
        "DECIMAL" => Kind::Decimal,
        "FLOAT" | "DOUBLE" | "REAL" => Kind::Float,
        "BOOLEAN" => Kind::Bool,
        "DATE" => Kind::Date,
        "TIMESTAMP" => Kind::Timestamp,
        "TIMESTAMP_NTZ" => Kind::TimestampNtz,
        "BINARY" => Kind::Binary,
        "STRUCT" | "ARRAY" | "MAP" | "VARIANT" => Kind::Json,
        _ => Kind::Text,
    }
}

/// The columns of a statement's manifest.
pub(super) fn columns(manifest: &Value) -> Vec<Column> {
    manifest["schema"]["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| {
            let type_name = c["type_name"].as_str().unwrap_or("STRING").to_string();
            Column {
                name: c["name"]
                    .as_str()
                    .map_or_else(|| format!("col{i}"), str::to_string),
                kind: kind(&type_name),
                type_name,
            }
        })
        .collect()
}

/// The value of one JSON_ARRAY cell; `None` when it does not read as its type.
pub(super) fn value(kind: Kind, cell: &Value) -> Option<Value> {
    let s = match cell {
        Value::Null => return Some(Value::Null),
        Value::String(s) => s.as_str(),
        // Not what the API sends, but a typed JSON value needs no reading.
        other => return Some(other.clone()),
    };
    match kind {
        Kind::Integer | Kind::Decimal => values::decimal(s),
        Kind::Float => match s {
            "NaN" | "Infinity" | "-Infinity" => Some(Value::String(s.into())),
            _ => s.parse::<f64>().ok().map(values::float),
        },
        Kind::Bool => match s {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        Kind::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(values::date),
        Kind::Timestamp => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| values::instant(t.to_utc())),
        Kind::TimestampNtz => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
            .ok()
            .map(values::naive_timestamp),
        Kind::Binary => base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .map(|b| values::binary(&b)),
        Kind::Json => Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into()))),
        Kind::Text => Some(Value::String(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(type_name: &str, s: &str) -> String {
        value(kind(type_name), &json!(s)).unwrap().to_string()
    }

    #[test]
    fn strings_read_by_type_name() {
        assert_eq!(read("LONG", "9007199254740993"), "9007199254740993");
        assert_eq!(
            read("DECIMAL", "12345678901234567890.1234567890"),
            "12345678901234567890.1234567890"
        );
        assert_eq!(read("DOUBLE", "0.5"), "0.5");
        assert_eq!(
            read("TIMESTAMP", "2024-03-01T08:00:00.000Z"),
            "\"2024-03-01T08:00:00+00:00\""
        );
        assert_eq!(
            read("TIMESTAMP_NTZ", "2024-03-01T10:00:00.500"),
            "\"2024-03-01T10:00:00.5\""
        );
        assert_eq!(read("BINARY", "3q2+7w=="), "\"\\\\xdeadbeef\"");
        assert_eq!(read("STRUCT", "{\"a\":1}"), "{\"a\":1}");
        assert_eq!(value(Kind::Integer, &Value::Null), Some(Value::Null));
        assert_eq!(value(Kind::Integer, &json!("x")), None);
    }
}
