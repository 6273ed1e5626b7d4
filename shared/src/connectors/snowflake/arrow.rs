//! The Arrow result encoding (`rowsetBase64` and Arrow chunk files): one IPC stream per chunk,
//! in Snowflake's physical layout. FIXED is an integer of the narrowest width the service picks
//! for the batch (Int8 to Int64, scaled by the column's `scale`) or Decimal128; REAL Float64;
//! TEXT and VARIANT Utf8; BOOLEAN Boolean; DATE Date32; TIME a scaled Int64; TIMESTAMP_NTZ/LTZ
//! a struct of `epoch` seconds and `fraction` nanoseconds (or a scaled Int64 for small
//! scales); TIMESTAMP_TZ the same with a `timezone` member; BINARY Binary.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_buffer::Buffer;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::read_record_batch;
use arrow_ipc::MessageHeader;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;

use super::json::time_of_day;
use super::types::{Column, SfType};
use crate::connectors::values;
use crate::record::Values;

/// Every row of an Arrow IPC stream (one chunk) as retl values.
pub(crate) fn rows(columns: &[Column], bytes: &[u8]) -> Result<Vec<Values>, String> {
    let mut out = Vec::new();
    for batch in batches(bytes)? {
        out.extend(batch_rows(columns, &batch)?);
    }
    Ok(out)
}

/// The record batches of an IPC stream, read against its schema with every field made
/// nullable: services write timestamp structs whose members are declared non-nullable yet
/// hold the nulls of null timestamps (pyarrow accepts them, arrow-rs refuses them).
fn batches(bytes: &[u8]) -> Result<Vec<RecordBatch>, String> {
    let truncated = || "an Arrow chunk is truncated".to_string();
    let int_at = |pos: usize| -> Result<i32, String> {
        let b = bytes.get(pos..pos + 4).ok_or_else(truncated)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (mut pos, mut schema, mut out): (usize, Option<SchemaRef>, Vec<RecordBatch>) =
        (0, None, Vec::new());
    while pos + 4 <= bytes.len() {
        let mut len = int_at(pos)?;
        pos += 4;
        if len == -1 {
            len = int_at(pos)?;
            pos += 4;
        }
        let len = usize::try_from(len).map_err(|_| truncated())?;
        if len == 0 {
            break;
        }
        let meta = bytes.get(pos..pos + len).ok_or_else(truncated)?;
        pos += len;
        let message = arrow_ipc::root_as_message(meta)
            .map_err(|e| format!("an Arrow message does not parse: {e}"))?;
        let body_len = usize::try_from(message.bodyLength()).map_err(|_| truncated())?;
        let body = bytes.get(pos..pos + body_len).ok_or_else(truncated)?;
        pos += body_len;
        match message.header_type() {
            MessageHeader::Schema => {
                let fb = message
                    .header_as_schema()
                    .ok_or("an Arrow schema message without a schema")?;
                let s = try_fb_to_schema(fb)
                    .map_err(|e| format!("an Arrow schema does not parse: {e}"))?;
                let fields: Vec<Field> = s.fields().iter().map(|f| relaxed(f)).collect();
                schema = Some(Arc::new(Schema::new(fields)));
            }
            MessageHeader::RecordBatch => {
                let fb = message
                    .header_as_record_batch()
                    .ok_or("an Arrow batch message without a batch")?;
                let s = schema
                    .clone()
                    .ok_or("an Arrow record batch before its schema")?;
                let batch = read_record_batch(
                    &Buffer::from(body.to_vec()),
                    fb,
                    s,
                    &HashMap::new(),
                    None,
                    &message.version(),
                )
                .map_err(|e| format!("an Arrow record batch does not parse: {e}"))?;
                out.push(batch);
            }
            _ => return Err("dictionary-encoded Arrow results are not supported".into()),
        }
    }
    Ok(out)
}

/// `field` and its struct members, nullable.
fn relaxed(field: &Field) -> Field {
    let ty = match field.data_type() {
        DataType::Struct(members) => DataType::Struct(members.iter().map(|m| relaxed(m)).collect()),
        other => other.clone(),
    };
    Field::new(field.name(), ty, true).with_metadata(field.metadata().clone())
}

fn batch_rows(columns: &[Column], batch: &RecordBatch) -> Result<Vec<Values>, String> {
    if batch.num_columns() != columns.len() {
        return Err(format!(
            "an Arrow batch has {} columns where the rowtype has {}",
            batch.num_columns(),
            columns.len()
        ));
    }
    (0..batch.num_rows())
        .map(|row| {
            columns
                .iter()
                .zip(batch.columns())
                .map(|(c, array)| {
                    let v = cell(c.ty, array.as_ref(), row)
                        .map_err(|m| format!("column `{}`: {m}", c.name))?;
                    Ok((c.name.clone(), v))
                })
                .collect()
        })
        .collect()
}

/// The integer at `row` of an integer or Decimal128 array (unscaled for decimals).
fn integer(array: &dyn Array, row: usize) -> Option<i128> {
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Decimal128(..) => array.as_primitive::<Decimal128Type>().value(row),
        _ => return None,
    })
}

fn unexpected(ty: SfType, array: &dyn Array) -> String {
    format!("{ty:?} arrived as Arrow {}", array.data_type())
}

fn cell(ty: SfType, array: &dyn Array, row: usize) -> Result<Value, String> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    // A timestamp struct may mark a null only in its members (fakesnow does).
    if let Some(s) = array.as_struct_opt() {
        if member(s, "epoch").is_some_and(|e| e.is_null(row)) {
            return Ok(Value::Null);
        }
    }
    let bad = || unexpected(ty, array);
    match ty {
        SfType::Fixed { scale } => {
            let v = integer(array, row).ok_or_else(bad)?;
            let scale = match array.data_type() {
                DataType::Decimal128(_, s) => *s,
                _ => i8::try_from(scale).map_err(|_| bad())?,
            };
            Ok(values::decimal_from_unscaled(v, scale))
        }
        SfType::Real => match array.data_type() {
            DataType::Float64 => Ok(values::float(
                array.as_primitive::<Float64Type>().value(row),
            )),
            DataType::Float32 => Ok(values::float(
                array.as_primitive::<Float32Type>().value(row).into(),
            )),
            _ => Err(bad()),
        },
        SfType::Boolean => array
            .as_boolean_opt()
            .map(|b| Value::Bool(b.value(row)))
            .ok_or_else(bad),
        SfType::Date => match array.data_type() {
            DataType::Date32 => {
                values::date_from_days(array.as_primitive::<Date32Type>().value(row).into())
                    .ok_or_else(bad)
            }
            DataType::Date64 => {
                values::date_from_days(array.as_primitive::<Date64Type>().value(row) / 86_400_000)
                    .ok_or_else(bad)
            }
            _ => Err(bad()),
        },
        SfType::Time { scale } => {
            let v = integer(array, row).ok_or_else(bad)?;
            let (s, n) = scaled(v, scale).ok_or_else(bad)?;
            time_of_day(s, n).ok_or_else(bad)
        }
        SfType::TimestampNtz { scale } => {
            let (s, n) = timestamp(array, row, scale).ok_or_else(bad)?;
            values::naive_from_epoch(s, n).ok_or_else(bad)
        }
        SfType::TimestampLtz { scale } | SfType::TimestampTz { scale } => {
            let (s, n) = timestamp(array, row, scale).ok_or_else(bad)?;
            values::instant_from_epoch(s, n).ok_or_else(bad)
        }
        SfType::Variant => {
            let text = text(array, row).ok_or_else(bad)?;
            serde_json::from_str(text).map_err(|e| format!("VARIANT is not JSON: {e}"))
        }
        SfType::Binary => binary(array, row).map(values::binary).ok_or_else(bad),
        SfType::Text => match text(array, row) {
            Some(t) => Ok(Value::String(t.to_string())),
            None => Err(bad()),
        },
    }
}

fn text(array: &dyn Array, row: usize) -> Option<&str> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(array.as_string_view().value(row)),
        _ => None,
    }
}

fn binary(array: &dyn Array, row: usize) -> Option<&[u8]> {
    match array.data_type() {
        DataType::Binary => Some(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(array.as_binary::<i64>().value(row)),
        DataType::FixedSizeBinary(_) => Some(array.as_fixed_size_binary().value(row)),
        _ => None,
    }
}

/// Seconds and nanoseconds of an integer counting `10^-scale` seconds.
fn scaled(v: i128, scale: i32) -> Option<(i64, u32)> {
    let unit = 10i128.checked_pow(u32::try_from(scale).ok()?)?;
    let secs = v.div_euclid(unit);
    let frac = v.rem_euclid(unit);
    let nanos = frac * 10i128.pow(9u32.checked_sub(scale as u32)?);
    Some((i64::try_from(secs).ok()?, u32::try_from(nanos).ok()?))
}

/// Seconds and nanoseconds since the epoch of a timestamp cell: a struct with `epoch` and
/// (for scales above 7 digits) `fraction`, or a scaled integer.
fn timestamp(array: &dyn Array, row: usize, scale: i32) -> Option<(i64, u32)> {
    let Some(s) = array.as_struct_opt() else {
        return scaled(integer(array, row)?, scale);
    };
    let epoch = member(s, "epoch").and_then(|a| integer(a, row))?;
    match member(s, "fraction") {
        Some(f) => Some((
            i64::try_from(epoch).ok()?,
            u32::try_from(integer(f, row)?).ok()?,
        )),
        // TIMESTAMP_TZ of a small scale: `epoch` is scaled, beside `timezone`.
        None => scaled(epoch, scale),
    }
}

fn member<'a>(s: &'a StructArray, name: &str) -> Option<&'a dyn Array> {
    s.column_by_name(name).map(|a| a.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_integers_split_into_seconds_and_nanos() {
        assert_eq!(scaled(15, 1), Some((1, 500_000_000)));
        assert_eq!(scaled(-15, 1), Some((-2, 500_000_000)));
        assert_eq!(scaled(7, 0), Some((7, 0)));
        assert_eq!(scaled(1, 12), None);
    }

    #[test]
    fn an_empty_rowset_has_no_rows() {
        assert!(rows(&[], b"").unwrap().is_empty());
        assert!(rows(&[], b"garbage").is_err());
        assert!(rows(&[], &[0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0, 1]).is_err());
    }
}
