//! The JSON result encoding (`rowset` and JSON chunk files): every value a string in the form
//! the drivers' converters parse, NULL as `null`. FIXED as digits with `scale` places, REAL as
//! text, BOOLEAN `1`/`0` (or `true`/`false`), DATE days since the epoch, TIME and
//! TIMESTAMP_NTZ/LTZ `seconds.fraction` since the epoch, TIMESTAMP_TZ the same and the offset
//! in minutes + 1440, BINARY hex, VARIANT JSON text.

use serde_json::Value;

use super::types::{Column, SfType};
use crate::connectors::values;
use crate::record::Values;

/// Rows of a JSON rowset (an array of arrays of strings) as retl values.
pub(crate) fn rows(columns: &[Column], rowset: &Value) -> Result<Vec<Values>, String> {
    let rows = rowset.as_array().ok_or("the rowset is not an array")?;
    rows.iter()
        .map(|row| {
            let cells = row
                .as_array()
                .ok_or("a row of the rowset is not an array")?;
            if cells.len() != columns.len() {
                return Err(format!(
                    "a row has {} values for {} columns",
                    cells.len(),
                    columns.len()
                ));
            }
            columns
                .iter()
                .zip(cells)
                .map(|(c, v)| Ok((c.name.clone(), cell(c, v)?)))
                .collect()
        })
        .collect()
}

/// A JSON chunk file: the rows without the enclosing brackets.
pub(crate) fn chunk_rows(columns: &[Column], bytes: &[u8]) -> Result<Vec<Values>, String> {
    let mut text = Vec::with_capacity(bytes.len() + 2);
    text.push(b'[');
    text.extend_from_slice(bytes);
    text.push(b']');
    let rowset: Value =
        serde_json::from_slice(&text).map_err(|e| format!("a JSON chunk does not parse: {e}"))?;
    rows(columns, &rowset)
}

fn cell(column: &Column, v: &Value) -> Result<Value, String> {
    let text = match v {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s.as_str(),
        // Not what Snowflake sends, but unambiguous.
        other => return Ok(other.clone()),
    };
    let bad = || {
        format!(
            "column `{}`: `{text}` is not a {:?} value",
            column.name, column.ty
        )
    };
    match column.ty {
        SfType::Fixed { .. } => values::decimal(text).ok_or_else(bad),
        SfType::Real => real(text).ok_or_else(bad),
        SfType::Boolean => match text {
            "1" | "true" | "TRUE" => Ok(Value::Bool(true)),
            "0" | "false" | "FALSE" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        SfType::Date => text
            .parse::<i64>()
            .ok()
            .and_then(values::date_from_days)
            .ok_or_else(bad),
        SfType::Time { .. } => epoch(text)
            .and_then(|(s, n)| time_of_day(s, n))
            .ok_or_else(bad),
        SfType::TimestampNtz { .. } => epoch(text)
            .and_then(|(s, n)| values::naive_from_epoch(s, n))
            .ok_or_else(bad),
        SfType::TimestampLtz { .. } | SfType::TimestampTz { .. } => {
            let instant = text.split_whitespace().next().unwrap_or("");
            epoch(instant)
                .and_then(|(s, n)| values::instant_from_epoch(s, n))
                .ok_or_else(bad)
        }
        SfType::Variant => serde_json::from_str(text).map_err(|_| bad()),
        SfType::Binary => hex::decode(text)
            .map(|b| values::binary(&b))
            .map_err(|_| bad()),
        SfType::Text => Ok(Value::String(text.to_string())),
    }
}

/// A float from its text, `inf` and `NaN` included.
fn real(text: &str) -> Option<Value> {
    match text.to_ascii_lowercase().as_str() {
        "nan" => Some(values::float(f64::NAN)),
        "inf" | "infinity" => Some(values::float(f64::INFINITY)),
        "-inf" | "-infinity" => Some(values::float(f64::NEG_INFINITY)),
        _ => text.parse::<f64>().ok().map(values::float),
    }
}

/// `seconds.fraction` since the epoch as whole seconds (rounded down) and nanoseconds.
pub(crate) fn epoch(text: &str) -> Option<(i64, u32)> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    if !negative {
        return Some((whole, nanos));
    }
    if nanos == 0 {
        return Some((-whole, 0));
    }
    Some((-whole - 1, 1_000_000_000 - nanos))
}

/// A time of day `10:00:00.5` from seconds and nanoseconds since midnight.
pub(crate) fn time_of_day(secs: i64, nanos: u32) -> Option<Value> {
    let t =
        chrono::NaiveTime::from_num_seconds_from_midnight_opt(u32::try_from(secs).ok()?, nanos)?;
    let text = values::naive_timestamp(chrono::NaiveDate::MIN.and_time(t));
    Some(Value::String(text.as_str()?.split_once('T')?.1.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(ty: SfType) -> Column {
        Column {
            name: "c".into(),
            ty,
        }
    }

    #[test]
    fn every_type_reads_in_the_value_forms() {
        let cases = [
            (
                SfType::Fixed { scale: 0 },
                "9007199254740993",
                "9007199254740993",
            ),
            (
                SfType::Fixed { scale: 10 },
                "12345678901234567890.1234567890",
                "12345678901234567890.1234567890",
            ),
            (SfType::Real, "0.5", "0.5"),
            (SfType::Real, "inf", "\"Infinity\""),
            (SfType::Boolean, "1", "true"),
            (SfType::Date, "19782", "\"2024-02-29\""),
            (
                SfType::Time { scale: 9 },
                "36000.500000000",
                "\"10:00:00.5\"",
            ),
            (
                SfType::TimestampNtz { scale: 9 },
                "1709287200.500000000",
                "\"2024-03-01T10:00:00.5\"",
            ),
            (
                SfType::TimestampTz { scale: 9 },
                "1709280000.000000000 1560",
                "\"2024-03-01T08:00:00+00:00\"",
            ),
            (SfType::Variant, "{\"seats\": 3}", "{\"seats\":3}"),
            (SfType::Binary, "DEADBEEF", "\"\\\\xdeadbeef\""),
            (SfType::Text, "Zoë", "\"Zoë\""),
        ];
        for (ty, text, expected) in cases {
            assert_eq!(
                cell(&col(ty), &json!(text)).unwrap().to_string(),
                expected,
                "{ty:?}"
            );
        }
        assert_eq!(cell(&col(SfType::Date), &Value::Null).unwrap(), Value::Null);
        assert!(cell(&col(SfType::Fixed { scale: 0 }), &json!("x")).is_err());
    }

    #[test]
    fn negative_epochs_round_down() {
        assert_eq!(epoch("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(epoch("-3"), Some((-3, 0)));
        assert_eq!(epoch("1.0000000001"), None);
    }

    #[test]
    fn chunks_are_rows_without_brackets() {
        let cols = vec![col(SfType::Fixed { scale: 0 })];
        let rows = chunk_rows(&cols, b"[\"1\"],[\"2\"]").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1]["c"], json!(2));
        assert!(chunk_rows(&cols, b"[\"1\",\"2\"]").is_err());
    }
}
