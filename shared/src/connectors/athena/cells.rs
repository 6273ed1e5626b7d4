//! Athena result cells as retl values. `GetQueryResults` gives every value as a string
//! (`VarCharValue`, absent for NULL) and each column's declared type in `ColumnInfo.Type`
//! (Trino's names: `bigint`, `decimal`, `timestamp with time zone`, ...); values are read by
//! that type, so decimals keep every digit and integers all 64 bits.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
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
    TimestampTz,
    Json,
    Binary,
    Text,
}

/// One result column.
#[derive(Debug, Clone)]
pub(super) struct Column {
    /// Its name.
    pub name: String,
    /// The declared type, for errors.
    pub type_name: String,
    /// How its values are read.
    pub kind: Kind,
}

impl Column {
    /// A column of `name` declared as `type_name`.
    pub(super) fn new(name: &str, type_name: &str) -> Self {
        Column {
            name: name.to_string(),
            type_name: type_name.to_string(),
            kind: kind(type_name),
        }
    }
}

fn kind(type_name: &str) -> Kind {
    let t = type_name.to_ascii_lowercase();
    // `decimal(38,10)`, `varchar(20)`, `timestamp(3) with time zone`: the base name decides.
    let base = t.split(['(', ' ']).next().unwrap_or("");
    match base {
        "tinyint" | "smallint" | "integer" | "int" | "bigint" => Kind::Integer,
        "decimal" => Kind::Decimal,
        "real" | "float" | "double" => Kind::Float,
        "boolean" => Kind::Bool,
        "date" => Kind::Date,
        "timestamp" if t.contains("with time zone") => Kind::TimestampTz,
        "timestamp" => Kind::Timestamp,
        "json" => Kind::Json,
        "varbinary" => Kind::Binary,
        _ => Kind::Text,
    }
}

/// The value of a cell (`None`: SQL NULL); `Err` says what could not be read (never the
/// value).
pub(super) fn value(column: &Column, cell: Option<&str>) -> Result<Value, String> {
    let Some(s) = cell else {
        return Ok(Value::Null);
    };
    read(column.kind, s).ok_or_else(|| {
        format!(
            "column `{}` ({}) holds a value retl cannot read as {:?}",
            column.name, column.type_name, column.kind
        )
    })
}

fn read(kind: Kind, s: &str) -> Option<Value> {
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
        Kind::Timestamp => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(values::naive_timestamp),
        Kind::TimestampTz => instant(s),
        Kind::Json => serde_json::from_str(s).ok(),
        // Athena writes varbinary as hex bytes separated by spaces: `de ad be ef`.
        Kind::Binary => hex::decode(s.replace(' ', ""))
            .ok()
            .map(|b| values::binary(&b)),
        Kind::Text => Some(Value::String(s.to_string())),
    }
}

/// `2024-03-01 08:00:00.000 UTC` or `2024-03-01 10:00:00.000 +02:00`, in UTC. Zone names
/// other than UTC need a time-zone database; the model can convert with
/// `AT TIME ZONE 'UTC'`.
fn instant(s: &str) -> Option<Value> {
    let (local, zone) = s.rsplit_once(' ')?;
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let offset = match zone {
        "UTC" | "Z" | "Etc/UTC" | "GMT" => FixedOffset::east_opt(0)?,
        z => DateTime::parse_from_str(&format!("2000-01-01 00:00:00 {z}"), "%Y-%m-%d %H:%M:%S %:z")
            .ok()?
            .offset()
            .to_owned(),
    };
    let t = naive.and_local_timezone(offset).single()?;
    Some(values::instant(t.to_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_as(type_name: &str, s: &str) -> String {
        value(&Column::new("c", type_name), Some(s))
            .unwrap()
            .to_string()
    }

    #[test]
    fn strings_read_by_declared_type() {
        assert_eq!(read_as("bigint", "9007199254740993"), "9007199254740993");
        assert_eq!(
            read_as("decimal(38,10)", "12345678901234567890.1234567890"),
            "12345678901234567890.1234567890"
        );
        assert_eq!(read_as("double", "0.5"), "0.5");
        assert_eq!(read_as("boolean", "true"), "true");
        assert_eq!(
            read_as("timestamp", "2024-03-01 10:00:00.500"),
            "\"2024-03-01T10:00:00.5\""
        );
        assert_eq!(
            read_as("timestamp with time zone", "2024-03-01 08:00:00.000 UTC"),
            "\"2024-03-01T08:00:00+00:00\""
        );
        assert_eq!(
            read_as(
                "timestamp(3) with time zone",
                "2024-03-01 10:00:00.000 +02:00"
            ),
            "\"2024-03-01T08:00:00+00:00\""
        );
        assert_eq!(read_as("varbinary", "de ad be ef"), "\"\\\\xdeadbeef\"");
        assert_eq!(read_as("json", "{\"a\": 1}"), "{\"a\":1}");
        assert_eq!(read_as("varchar", "Zoë"), "\"Zoë\"");
        let c = Column::new("c", "integer");
        assert_eq!(value(&c, None).unwrap(), Value::Null);
        assert!(value(&c, Some("x")).is_err());
    }
}
