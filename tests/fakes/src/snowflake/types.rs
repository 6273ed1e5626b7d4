//! PostgreSQL columns and values as Snowflake reports them: `rowtype` entries, the JSON
//! result encoding the drivers parse (`converter.go` in gosnowflake, `converter.py` in the
//! Python connector), and Arrow columns with Snowflake's field metadata.
//!
//! Mapping: integers and `numeric` are FIXED (`NUMBER(38,0)` for integers, `numeric(p,s)`
//! as is, unconstrained `numeric` as (38,18)); `float4`/`float8` REAL; `bool` BOOLEAN; text
//! types TEXT; `date` DATE; `timestamp` TIMESTAMP_NTZ(9); `timestamptz` TIMESTAMP_LTZ(9);
//! `bytea` BINARY.
//!
//! JSON encoding (every value a string, NULL as `null`): FIXED as digits with `scale`
//! places, REAL as PostgreSQL prints it, BOOLEAN `"1"`/`"0"`, DATE as days since the epoch,
//! TIMESTAMP_NTZ/LTZ as `seconds.nanoseconds` since the epoch (`1706702400.500000000`),
//! BINARY as upper-case hex, TEXT as is.
//!
//! Arrow encoding: FIXED Int64 (scaled when `scale` > 0; Decimal128 for a declared
//! precision above 18 digits; the service picks the narrowest integer width per batch,
//! the fake always Int64), REAL
//! Float64, TEXT Utf8, BOOLEAN Boolean, DATE Date32, BINARY Binary, TIMESTAMP_NTZ/LTZ(9) a
//! struct of `epoch` (Int64 seconds) and `fraction` (Int32 nanoseconds). Each field carries
//! the metadata `logicalType`, `precision`, `scale`, `charLength`, `byteLength`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, StructBuilder,
};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, Fields};
use serde_json::{json, Value};
use tokio_postgres::types::Type;

use crate::redshift_data::pg::{char_length, numeric_typmod, PgColumn};
use crate::redshift_data::pgtext;

/// VARCHAR's default (and maximum) length.
const MAX_TEXT: u32 = 16_777_216;

/// A Snowflake column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SfType {
    /// FIXED(38,0) holding a PostgreSQL integer: always fits Int64.
    Integer,
    Fixed(u32, u32),
    Real,
    Text(u32),
    Boolean,
    Date,
    TimestampNtz,
    TimestampLtz,
    Binary,
}

impl SfType {
    pub(crate) fn of(column: &PgColumn) -> Self {
        match column.ty {
            Type::INT2 | Type::INT4 | Type::INT8 => SfType::Integer,
            Type::NUMERIC => {
                let (p, s) = numeric_typmod(column.typmod).unwrap_or((38, 18));
                SfType::Fixed(p.min(38), s.min(p.min(38)))
            }
            Type::FLOAT4 | Type::FLOAT8 => SfType::Real,
            Type::BOOL => SfType::Boolean,
            Type::DATE => SfType::Date,
            Type::TIMESTAMP => SfType::TimestampNtz,
            Type::TIMESTAMPTZ => SfType::TimestampLtz,
            Type::BYTEA => SfType::Binary,
            _ => SfType::Text(char_length(column.typmod).unwrap_or(MAX_TEXT)),
        }
    }

    /// `(rowtype type, logicalType)`.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            SfType::Integer | SfType::Fixed(..) => ("fixed", "FIXED"),
            SfType::Real => ("real", "REAL"),
            SfType::Text(_) => ("text", "TEXT"),
            SfType::Boolean => ("boolean", "BOOLEAN"),
            SfType::Date => ("date", "DATE"),
            SfType::TimestampNtz => ("timestamp_ntz", "TIMESTAMP_NTZ"),
            SfType::TimestampLtz => ("timestamp_ltz", "TIMESTAMP_LTZ"),
            SfType::Binary => ("binary", "BINARY"),
        }
    }

    /// `(precision, scale, length, byteLength)` as `rowtype` reports them.
    fn sizes(self) -> (Option<u32>, Option<u32>, Option<u32>, Option<u32>) {
        match self {
            SfType::Integer => (Some(38), Some(0), None, None),
            SfType::Fixed(p, s) => (Some(p), Some(s), None, None),
            SfType::Text(n) => (None, None, Some(n), Some(n.saturating_mul(4).min(MAX_TEXT))),
            SfType::Binary => (None, None, Some(8_388_608), Some(8_388_608)),
            SfType::TimestampNtz | SfType::TimestampLtz => (Some(0), Some(9), None, None),
            _ => (None, None, None, None),
        }
    }
}

/// A column name as Snowflake reports it: PostgreSQL folds unquoted identifiers to lower
/// case where Snowflake folds them to upper case; any other name was quoted and is kept.
fn display_name(name: &str) -> String {
    let unquoted = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if unquoted {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

/// One `rowtype` entry; `database`/`schema` are the session's.
pub(crate) fn rowtype(column: &PgColumn, database: &str, schema: &str) -> Value {
    let ty = SfType::of(column);
    let (precision, scale, length, byte_length) = ty.sizes();
    json!({
        "name": display_name(&column.name),
        "database": database,
        "schema": schema,
        "table": column.table.clone().unwrap_or_default().to_ascii_uppercase(),
        "type": ty.names().0,
        "precision": precision,
        "scale": scale,
        "length": length,
        "byteLength": byte_length,
        "nullable": !column.not_null,
        "collation": Value::Null,
    })
}

fn epoch_nanos_text(text: &str) -> Option<String> {
    let t = pgtext::timestamp(text)?.and_utc();
    Some(format!(
        "{}.{:09}",
        t.timestamp(),
        t.timestamp_subsec_nanos()
    ))
}

/// The JSON-result string of a non-NULL PostgreSQL text value.
pub(crate) fn json_value(ty: SfType, text: &str) -> String {
    let converted = match ty {
        SfType::Fixed(_, s) => pgtext::scaled_decimal(text, s).map(|v| pgtext::format_scaled(v, s)),
        SfType::Integer => None,
        SfType::Boolean => pgtext::boolean(text).map(|b| if b { "1" } else { "0" }.to_string()),
        SfType::Date => pgtext::date(text).map(|d| pgtext::epoch_days(d).to_string()),
        SfType::TimestampNtz | SfType::TimestampLtz => epoch_nanos_text(text),
        SfType::Binary => {
            pgtext::bytea(text).map(|b| b.iter().map(|x| format!("{x:02X}")).collect())
        }
        SfType::Real | SfType::Text(_) => None,
    };
    converted.unwrap_or_else(|| text.to_string())
}

/// The Arrow field of a column, with Snowflake's metadata.
pub(crate) fn arrow_field(column: &PgColumn) -> Field {
    let ty = SfType::of(column);
    let (precision, scale, length, byte_length) = ty.sizes();
    let text = |v: Option<u32>| v.unwrap_or(0).to_string();
    let metadata = HashMap::from([
        ("logicalType".to_string(), ty.names().1.to_string()),
        ("precision".to_string(), text(precision)),
        ("scale".to_string(), text(scale)),
        ("charLength".to_string(), text(length)),
        ("byteLength".to_string(), text(byte_length)),
        ("finalType".to_string(), "T".to_string()),
    ]);
    Field::new(display_name(&column.name), arrow_type(ty), true).with_metadata(metadata)
}

fn timestamp_fields() -> Fields {
    Fields::from(vec![
        Field::new("epoch", DataType::Int64, true),
        Field::new("fraction", DataType::Int32, true),
    ])
}

fn arrow_type(ty: SfType) -> DataType {
    match ty {
        SfType::Fixed(p, s) if p > 18 => DataType::Decimal128(p as u8, s as i8),
        SfType::Integer | SfType::Fixed(..) => DataType::Int64,
        SfType::Real => DataType::Float64,
        SfType::Text(_) => DataType::Utf8,
        SfType::Boolean => DataType::Boolean,
        SfType::Date => DataType::Date32,
        SfType::TimestampNtz | SfType::TimestampLtz => DataType::Struct(timestamp_fields()),
        SfType::Binary => DataType::Binary,
    }
}

/// One column of values as an Arrow array (unparseable values become null).
pub(crate) fn arrow_column(ty: SfType, values: &[Option<&str>]) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for v in values {
                b.append_option(v.and_then($parse));
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        SfType::Fixed(p, s) if p > 18 => build!(
            Decimal128Builder::new().with_data_type(arrow_type(ty)),
            |t| pgtext::scaled_decimal(t, s)
        ),
        SfType::Fixed(_, s) => build!(Int64Builder::new(), |t| pgtext::scaled_decimal(t, s)
            .and_then(|v| i64::try_from(v).ok())),
        SfType::Integer => build!(Int64Builder::new(), |t: &str| t.parse::<i64>().ok()),
        SfType::Real => build!(Float64Builder::new(), |t: &str| t.parse::<f64>().ok()),
        SfType::Text(_) => build!(StringBuilder::new(), |t: &str| Some(t.to_string())),
        SfType::Boolean => build!(BooleanBuilder::new(), pgtext::boolean),
        SfType::Date => build!(Date32Builder::new(), |t| pgtext::date(t)
            .map(pgtext::epoch_days)),
        SfType::Binary => build!(BinaryBuilder::new(), pgtext::bytea),
        SfType::TimestampNtz | SfType::TimestampLtz => timestamp_struct(values),
    }
}

/// TIMESTAMP(9) values as `{epoch, fraction}` structs, NULL as a null struct.
fn timestamp_struct(values: &[Option<&str>]) -> ArrayRef {
    let children: Vec<Box<dyn ArrayBuilder>> =
        vec![Box::new(Int64Builder::new()), Box::new(Int32Builder::new())];
    let mut b = StructBuilder::new(timestamp_fields(), children);
    for v in values {
        let t = v.and_then(pgtext::timestamp).map(|t| t.and_utc());
        let epoch = t.map(|t| t.timestamp());
        let fraction = t.map(|t| t.timestamp_subsec_nanos() as i32);
        if let Some(f) = b.field_builder::<Int64Builder>(0) {
            f.append_option(epoch);
        }
        if let Some(f) = b.field_builder::<Int32Builder>(1) {
            f.append_option(fraction);
        }
        b.append(t.is_some());
    }
    Arc::new(b.finish())
}
