//! The bytes of one result chunk in each format: `JSON_ARRAY` (compact JSON array of rows of
//! strings/nulls), `CSV` (RFC 4180, header row in the first chunk only, NULL as `null`) and
//! `ARROW_STREAM` (an Arrow IPC stream holding one record batch).
//!
//! Arrow types: SHORT Int16, INT Int32, LONG Int64, FLOAT Float32, DOUBLE Float64,
//! DECIMAL(p,s) Decimal128(p,s), BOOLEAN Boolean, DATE Date32, TIMESTAMP
//! Timestamp(µs, "Etc/UTC"), TIMESTAMP_NTZ Timestamp(µs), BINARY Binary, STRING Utf8.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::ArrayRef;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;

use super::types::{value_text, DbxType};
use crate::redshift_data::{ipc, pgtext};

/// A result format of the Statement Execution API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    JsonArray,
    ArrowStream,
    Csv,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "JSON_ARRAY" => Some(Format::JsonArray),
            "ARROW_STREAM" => Some(Format::ArrowStream),
            "CSV" => Some(Format::Csv),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::JsonArray => "JSON_ARRAY",
            Format::ArrowStream => "ARROW_STREAM",
            Format::Csv => "CSV",
        }
    }
}

/// A statement's result columns.
pub(crate) struct Columns {
    pub names: Vec<String>,
    pub types: Vec<DbxType>,
}

/// One row as JSON_ARRAY values.
pub(crate) fn json_row(columns: &Columns, row: &[Option<String>]) -> Value {
    let values = row.iter().zip(&columns.types).map(|(v, ty)| match v {
        Some(text) => Value::String(value_text(*ty, text)),
        None => Value::Null,
    });
    Value::Array(values.collect())
}

/// The body of one chunk served from an external link.
pub(crate) fn chunk_body(
    format: Format,
    columns: &Columns,
    rows: &[Vec<Option<String>>],
    first: bool,
) -> Vec<u8> {
    match format {
        Format::JsonArray => {
            let all: Vec<Value> = rows.iter().map(|r| json_row(columns, r)).collect();
            serde_json::to_vec(&all).unwrap_or_default()
        }
        Format::Csv => csv_body(columns, rows, first),
        Format::ArrowStream => arrow_body(columns, rows),
    }
}

fn csv_body(columns: &Columns, rows: &[Vec<Option<String>>], first: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    if first {
        let _ = w.write_record(&columns.names);
    }
    for row in rows {
        let values = row.iter().zip(&columns.types).map(|(v, ty)| match v {
            Some(text) => value_text(*ty, text),
            None => "null".to_string(),
        });
        let _ = w.write_record(values);
    }
    w.into_inner().unwrap_or_default()
}

/// The Arrow type of a Databricks type.
fn arrow_type(ty: DbxType) -> DataType {
    match ty {
        DbxType::Short => DataType::Int16,
        DbxType::Int => DataType::Int32,
        DbxType::Long => DataType::Int64,
        DbxType::Float => DataType::Float32,
        DbxType::Double => DataType::Float64,
        DbxType::Decimal(p, s) => DataType::Decimal128(p as u8, s as i8),
        DbxType::Boolean => DataType::Boolean,
        DbxType::Date => DataType::Date32,
        DbxType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("Etc/UTC".into())),
        DbxType::TimestampNtz => DataType::Timestamp(TimeUnit::Microsecond, None),
        DbxType::Binary => DataType::Binary,
        DbxType::String => DataType::Utf8,
    }
}

/// One column of `rows` as an Arrow array; values that do not parse become null.
fn column_array(ty: DbxType, values: Vec<Option<&str>>) -> ArrayRef {
    macro_rules! build {
        ($builder:expr, $parse:expr) => {{
            let mut b = $builder;
            for v in &values {
                b.append_option(v.and_then($parse));
            }
            b.finish()
        }};
    }
    let micros = |t: &str| pgtext::timestamp(t).map(pgtext::epoch_micros);
    match ty {
        DbxType::Short => Arc::new(build!(Int16Builder::new(), |t: &str| t.parse().ok())),
        DbxType::Int => Arc::new(build!(Int32Builder::new(), |t: &str| t.parse().ok())),
        DbxType::Long => Arc::new(build!(Int64Builder::new(), |t: &str| t.parse().ok())),
        DbxType::Float => Arc::new(build!(Float32Builder::new(), |t: &str| t.parse().ok())),
        DbxType::Double => Arc::new(build!(Float64Builder::new(), |t: &str| t.parse().ok())),
        DbxType::Decimal(_, s) => Arc::new(build!(
            Decimal128Builder::new().with_data_type(arrow_type(ty)),
            |t| pgtext::scaled_decimal(t, s)
        )),
        DbxType::Boolean => Arc::new(build!(BooleanBuilder::new(), pgtext::boolean)),
        DbxType::Date => Arc::new(build!(Date32Builder::new(), |t| pgtext::date(t)
            .map(pgtext::epoch_days))),
        DbxType::Timestamp => {
            Arc::new(build!(TimestampMicrosecondBuilder::new(), micros).with_timezone("Etc/UTC"))
        }
        DbxType::TimestampNtz => Arc::new(build!(TimestampMicrosecondBuilder::new(), micros)),
        DbxType::Binary => Arc::new(build!(BinaryBuilder::new(), pgtext::bytea)),
        DbxType::String => Arc::new(build!(StringBuilder::new(), |t: &str| Some(t.to_string()))),
    }
}

/// An Arrow IPC stream of `rows` (schema message, one record batch, end marker).
fn arrow_body(columns: &Columns, rows: &[Vec<Option<String>>]) -> Vec<u8> {
    let fields: Vec<Field> = columns
        .names
        .iter()
        .zip(&columns.types)
        .map(|(n, ty)| Field::new(n, arrow_type(*ty), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays: Vec<ArrayRef> = columns
        .types
        .iter()
        .enumerate()
        .map(|(i, ty)| column_array(*ty, rows.iter().map(|r| r[i].as_deref()).collect()))
        .collect();
    ipc::stream(schema, arrays)
}
