//! `ARROW_STREAM` result chunks (Arrow IPC streams) as rows: integers exact, Decimal128 by
//! its scale, Date32 days, timestamps by unit (with a time zone: an instant in UTC; without:
//! TIMESTAMP_NTZ wall-clock time), binary as hex, strings (JSON text for complex types).

use std::io::Cursor;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_schema::{DataType, TimeUnit};
use serde_json::{Number, Value};

use super::text::{Column, Kind};
use crate::connectors::values;
use crate::record::Values;

/// The rows of one Arrow IPC stream; `Err` says what could not be read (never a value).
pub(super) fn rows(body: bytes::Bytes, columns: &[Column]) -> Result<Vec<Values>, String> {
    let reader = StreamReader::try_new(Cursor::new(body), None)
        .map_err(|e| format!("a result chunk is not an Arrow stream: {e}"))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch =
            batch.map_err(|e| format!("a result chunk's Arrow batch is unreadable: {e}"))?;
        read_batch(&batch, columns, &mut out)?;
    }
    Ok(out)
}

fn read_batch(
    batch: &RecordBatch,
    columns: &[Column],
    out: &mut Vec<Values>,
) -> Result<(), String> {
    let schema = batch.schema();
    let names: Vec<String> = (0..batch.num_columns())
        .map(|i| {
            columns
                .get(i)
                .map_or_else(|| schema.field(i).name().clone(), |c| c.name.clone())
        })
        .collect();
    for row in 0..batch.num_rows() {
        let mut values = Values::new();
        for (i, array) in batch.columns().iter().enumerate() {
            let kind = columns.get(i).map_or(Kind::Text, |c| c.kind);
            let v = cell(array, row, kind).ok_or_else(|| {
                format!(
                    "column `{}` has Arrow type {} that retl cannot read",
                    names[i],
                    array.data_type()
                )
            })?;
            values.insert(names[i].clone(), v);
        }
        out.push(values);
    }
    Ok(())
}

fn int<T: Into<Number>>(v: T) -> Value {
    Value::Number(v.into())
}

/// The value at `row` of `array`; `None` for a type retl does not read.
fn cell(array: &ArrayRef, row: usize, kind: Kind) -> Option<Value> {
    if array.is_null(row) {
        return Some(Value::Null);
    }
    let v = match array.data_type() {
        DataType::Int8 => int(array.as_primitive_opt::<Int8Type>()?.value(row)),
        DataType::Int16 => int(array.as_primitive_opt::<Int16Type>()?.value(row)),
        DataType::Int32 => int(array.as_primitive_opt::<Int32Type>()?.value(row)),
        DataType::Int64 => int(array.as_primitive_opt::<Int64Type>()?.value(row)),
        DataType::UInt8 => int(array.as_primitive_opt::<UInt8Type>()?.value(row)),
        DataType::UInt16 => int(array.as_primitive_opt::<UInt16Type>()?.value(row)),
        DataType::UInt32 => int(array.as_primitive_opt::<UInt32Type>()?.value(row)),
        DataType::UInt64 => int(array.as_primitive_opt::<UInt64Type>()?.value(row)),
        DataType::Float32 => values::float(f64::from(
            array.as_primitive_opt::<Float32Type>()?.value(row),
        )),
        DataType::Float64 => values::float(array.as_primitive_opt::<Float64Type>()?.value(row)),
        DataType::Decimal128(_, scale) => values::decimal_from_unscaled(
            array.as_primitive_opt::<Decimal128Type>()?.value(row),
            *scale,
        ),
        DataType::Boolean => Value::Bool(array.as_boolean_opt()?.value(row)),
        DataType::Date32 => values::date_from_days(i64::from(
            array.as_primitive_opt::<Date32Type>()?.value(row),
        ))?,
        DataType::Timestamp(unit, tz) => timestamp(array, row, *unit, tz.is_some())?,
        DataType::Binary => values::binary(array.as_binary_opt::<i32>()?.value(row)),
        DataType::LargeBinary => values::binary(array.as_binary_opt::<i64>()?.value(row)),
        DataType::Utf8 => text(array.as_string_opt::<i32>()?.value(row), kind),
        DataType::LargeUtf8 => text(array.as_string_opt::<i64>()?.value(row), kind),
        _ => return None,
    };
    Some(v)
}

/// A string cell: JSON text for complex types, text otherwise.
fn text(s: &str, kind: Kind) -> Value {
    match kind {
        Kind::Json => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into())),
        _ => Value::String(s.to_string()),
    }
}

/// A timestamp cell in any unit.
fn timestamp(array: &ArrayRef, row: usize, unit: TimeUnit, zoned: bool) -> Option<Value> {
    let (raw, per_second): (i64, i64) = match unit {
        TimeUnit::Second => (
            array.as_primitive_opt::<TimestampSecondType>()?.value(row),
            1,
        ),
        TimeUnit::Millisecond => (
            array
                .as_primitive_opt::<TimestampMillisecondType>()?
                .value(row),
            1_000,
        ),
        TimeUnit::Microsecond => (
            array
                .as_primitive_opt::<TimestampMicrosecondType>()?
                .value(row),
            1_000_000,
        ),
        TimeUnit::Nanosecond => (
            array
                .as_primitive_opt::<TimestampNanosecondType>()?
                .value(row),
            1_000_000_000,
        ),
    };
    let secs = raw.div_euclid(per_second);
    let nanos = (raw.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32;
    if zoned {
        values::instant_from_epoch(secs, nanos)
    } else {
        values::naive_from_epoch(secs, nanos)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Decimal128Array, Int64Array, TimestampMicrosecondArray};
    use arrow_ipc::writer::StreamWriter;
    use arrow_schema::{Field, Schema};

    use super::*;

    #[test]
    fn an_arrow_stream_reads_exactly() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Decimal128(38, 10), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Etc/UTC".into())),
                true,
            ),
        ]));
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), None])),
            Arc::new(
                Decimal128Array::from(vec![
                    Some(123_456_789_012_345_678_901_234_567_890i128),
                    None,
                ])
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(1_709_280_000_500_000), None])
                    .with_timezone("Etc/UTC"),
            ),
        ];
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        let mut buf = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut buf, &schema).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        let got = rows(bytes::Bytes::from(buf), &[]).unwrap();
        assert_eq!(got[0]["id"].to_string(), "9007199254740993");
        assert_eq!(
            got[0]["amount"].to_string(),
            "12345678901234567890.1234567890"
        );
        assert_eq!(got[0]["at"], "2024-03-01T08:00:00.5+00:00");
        assert_eq!(got[1]["id"], Value::Null);
        assert!(rows(bytes::Bytes::from_static(b"nope"), &[]).is_err());
    }
}
