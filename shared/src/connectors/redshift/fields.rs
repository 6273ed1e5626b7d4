//! Data API `Field`s as retl values, by the column's declared Redshift type (`typeName` of
//! `ColumnMetadata`): integers come as `longValue`, floats as `doubleValue`, booleans as
//! `booleanValue`, VARBYTE as `blobValue`, and everything else (DECIMAL included, so no
//! digit is lost) as `stringValue` in Redshift's text form.

use aws_sdk_redshiftdata::types::{ColumnMetadata, Field};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Number, Value};

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
    /// The column label.
    pub name: String,
    /// The declared type, for errors.
    pub type_name: String,
    /// How its values are read.
    pub kind: Kind,
}

/// The kind of a Redshift type name.
fn kind(type_name: &str) -> Kind {
    match type_name.to_ascii_lowercase().as_str() {
        "int2" | "int4" | "int8" | "smallint" | "integer" | "bigint" => Kind::Integer,
        "numeric" | "decimal" => Kind::Decimal,
        "float4" | "float8" | "real" | "float" | "double precision" => Kind::Float,
        "bool" | "boolean" => Kind::Bool,
        "date" => Kind::Date,
        "timestamp" | "timestamp without time zone" => Kind::Timestamp,
        "timestamptz" | "timestamp with time zone" => Kind::TimestampTz,
        "super" | "json" | "jsonb" => Kind::Json,
        "varbyte" | "varbinary" | "binary varying" | "bytea" => Kind::Binary,
        _ => Kind::Text,
    }
}

/// The result columns of a `ColumnMetadata` list.
pub(super) fn columns(meta: &[ColumnMetadata]) -> Vec<Column> {
    meta.iter()
        .enumerate()
        .map(|(i, m)| {
            let type_name = m.type_name().unwrap_or("varchar").to_string();
            Column {
                name: m
                    .label()
                    .or(m.name())
                    .map_or_else(|| format!("column{}", i + 1), str::to_string),
                kind: kind(&type_name),
                type_name,
            }
        })
        .collect()
}

/// The value of `field` in `column`; `Err` says what could not be read (never the value).
pub(super) fn value(column: &Column, field: &Field) -> Result<Value, String> {
    let bad = || {
        format!(
            "column `{}` ({}) holds a value retl cannot read as {:?}",
            column.name, column.type_name, column.kind
        )
    };
    match field {
        Field::IsNull(true) => Ok(Value::Null),
        Field::LongValue(v) => Ok(Value::Number(Number::from(*v))),
        Field::DoubleValue(v) => Ok(values::float(*v)),
        Field::BooleanValue(v) => Ok(Value::Bool(*v)),
        Field::BlobValue(b) => Ok(values::binary(b.as_ref())),
        Field::StringValue(s) => text_value(column.kind, s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// A value given as text, read by the column's kind.
fn text_value(kind: Kind, s: &str) -> Option<Value> {
    match kind {
        Kind::Integer | Kind::Decimal => values::decimal(s),
        Kind::Float => match s {
            "NaN" | "nan" => Some(Value::String("NaN".into())),
            "Infinity" | "inf" => Some(Value::String("Infinity".into())),
            "-Infinity" | "-inf" => Some(Value::String("-Infinity".into())),
            _ => values::decimal(s).or_else(|| s.parse::<f64>().ok().map(values::float)),
        },
        Kind::Bool => match s {
            "t" | "true" | "TRUE" => Some(Value::Bool(true)),
            "f" | "false" | "FALSE" => Some(Value::Bool(false)),
            _ => None,
        },
        Kind::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(values::date),
        Kind::Timestamp => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(values::naive_timestamp),
        Kind::TimestampTz => DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
            .ok()
            .map(|t| values::instant(t.to_utc())),
        // SUPER holds JSON text; a scalar that is not JSON stays text.
        Kind::Json => Some(serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into()))),
        Kind::Binary => hex::decode(s.trim_start_matches("\\x"))
            .ok()
            .map(|b| values::binary(&b)),
        Kind::Text => Some(Value::String(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(type_name: &str) -> Column {
        Column {
            name: "c".into(),
            type_name: type_name.into(),
            kind: kind(type_name),
        }
    }

    fn text(type_name: &str, s: &str) -> String {
        value(&col(type_name), &Field::StringValue(s.into()))
            .unwrap()
            .to_string()
    }

    #[test]
    fn text_forms_map_by_declared_type() {
        assert_eq!(
            text("numeric", "12345678901234567890.1234567890"),
            "12345678901234567890.1234567890"
        );
        assert_eq!(text("date", "2024-02-29"), "\"2024-02-29\"");
        assert_eq!(
            text("timestamp", "2024-03-01 10:00:00.5"),
            "\"2024-03-01T10:00:00.5\""
        );
        assert_eq!(
            text("timestamptz", "2024-03-01 10:00:00+02"),
            "\"2024-03-01T08:00:00+00:00\""
        );
        assert_eq!(text("super", "{\"a\": 1}"), "{\"a\":1}");
        assert_eq!(text("float8", "NaN"), "\"NaN\"");
        assert_eq!(text("varchar", "Zoë"), "\"Zoë\"");
    }

    #[test]
    fn typed_fields_and_nulls() {
        let c = col("int8");
        assert_eq!(
            value(&c, &Field::LongValue(9_007_199_254_740_993))
                .unwrap()
                .to_string(),
            "9007199254740993"
        );
        assert_eq!(value(&c, &Field::IsNull(true)).unwrap(), Value::Null);
        let b = col("varbyte");
        assert_eq!(
            value(&b, &Field::BlobValue(vec![0xde, 0xad].into())).unwrap(),
            "\\xdead"
        );
        assert!(value(&col("numeric"), &Field::StringValue("x".into())).is_err());
    }
}
