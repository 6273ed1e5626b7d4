//! MySQL and MariaDB values as retl values ([`crate::connectors::values`]): each result
//! column's kind is read once from its metadata (type, length, character set), then every
//! value of the column is converted by it. Values come from the binary protocol: integers as
//! 64-bit integers (signed or unsigned), DECIMAL as its text, dates and times as their fields.

use chrono::{NaiveDate, NaiveDateTime};
use mysql_async::consts::ColumnType as T;
use mysql_async::{Column, Value};
use serde_json::{Number, Value as Json};

use crate::connectors::values;

/// The character set id MySQL gives binary strings (BINARY, VARBINARY, BLOB).
const BINARY_CHARSET: u16 = 63;

/// How one result column's values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TINYINT(1) (BOOL, BOOLEAN) and BIT(1).
    Bool,
    /// Every integer type, YEAR.
    Integer,
    /// BIT(n > 1): an unsigned integer.
    Bits,
    /// DECIMAL / NUMERIC: exact.
    Decimal,
    /// FLOAT, DOUBLE.
    Float,
    /// DATE.
    Date,
    /// DATETIME: wall-clock time, no zone.
    DateTime,
    /// TIMESTAMP: an instant, read in the session's UTC.
    Timestamp,
    /// TIME: a duration of up to ±838 hours.
    Time,
    /// MySQL's JSON type.
    Json,
    /// Character strings, ENUM, SET.
    Text,
    /// Binary strings, BLOB, GEOMETRY, VECTOR.
    Binary,
}

/// The kind of a result column.
pub(crate) fn kind(column: &Column) -> Kind {
    match column.column_type() {
        T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_BIT if column.column_length() == 1 => Kind::Bool,
        T::MYSQL_TYPE_BIT => Kind::Bits,
        T::MYSQL_TYPE_TINY
        | T::MYSQL_TYPE_SHORT
        | T::MYSQL_TYPE_INT24
        | T::MYSQL_TYPE_LONG
        | T::MYSQL_TYPE_LONGLONG
        | T::MYSQL_TYPE_YEAR => Kind::Integer,
        T::MYSQL_TYPE_DECIMAL | T::MYSQL_TYPE_NEWDECIMAL => Kind::Decimal,
        T::MYSQL_TYPE_FLOAT | T::MYSQL_TYPE_DOUBLE => Kind::Float,
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => Kind::Date,
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => Kind::DateTime,
        T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
        T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => Kind::Time,
        T::MYSQL_TYPE_JSON => Kind::Json,
        T::MYSQL_TYPE_GEOMETRY | T::MYSQL_TYPE_VECTOR => Kind::Binary,
        _ if column.character_set() == BINARY_CHARSET => Kind::Binary,
        _ => Kind::Text,
    }
}

/// A date and time from the protocol's fields; `None` for what is not a calendar date: the
/// zero date `0000-00-00` and dates with a zero month or day (which MySQL accepts when
/// `NO_ZERO_DATE` / `NO_ZERO_IN_DATE` are off).
fn calendar(y: u16, m: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Option<NaiveDateTime> {
    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))?.and_hms_micro_opt(
        u32::from(h),
        u32::from(mi),
        u32::from(s),
        us,
    )
}

/// TIME as `[-]HHH:MM:SS[.ffffff]` (hours may exceed 24).
fn time_text(negative: bool, days: u32, h: u8, m: u8, s: u8, us: u32) -> String {
    let hours = u64::from(days) * 24 + u64::from(h);
    let sign = if negative { "-" } else { "" };
    let fraction = if us == 0 {
        String::new()
    } else {
        format!(".{us:06}").trim_end_matches('0').to_string()
    };
    format!("{sign}{hours:02}:{m:02}:{s:02}{fraction}")
}

/// An integer from a BIT(n) value's big-endian bytes (at most 64 bits).
fn bits(bytes: &[u8]) -> Json {
    let n = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Json::Number(Number::from(n))
}

/// A float: a FLOAT (f32) by its shortest decimal text, so `0.1` stays `0.1`.
fn float32(f: f32) -> Json {
    values::float(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
}

/// Text that the server did not give as plain digits (never expected: MySQL writes DECIMAL
/// and integers in plain digits).
fn number_text(bytes: &[u8]) -> Result<Json, String> {
    let text = String::from_utf8_lossy(bytes);
    values::decimal(&text).ok_or_else(|| format!("`{text}` is not a number"))
}

/// The retl value of one MySQL value of a column of kind `kind`. The error says what could
/// not be read (no record value beyond the offending one is in it).
pub(crate) fn value(kind: Kind, v: Value) -> Result<Json, String> {
    Ok(match (kind, v) {
        (_, Value::NULL) => Json::Null,
        (Kind::Bool, Value::Int(i)) => Json::Bool(i != 0),
        (Kind::Bool, Value::UInt(u)) => Json::Bool(u != 0),
        (Kind::Bool, Value::Bytes(b)) => Json::Bool(b.iter().any(|x| *x != 0 && *x != b'0')),
        (Kind::Bits, Value::Bytes(b)) => bits(&b),
        (Kind::Json, Value::Bytes(b)) => {
            serde_json::from_slice(&b).map_err(|e| format!("the JSON value does not parse: {e}"))?
        }
        (Kind::Binary, Value::Bytes(b)) => values::binary(&b),
        (Kind::Integer | Kind::Decimal | Kind::Float, Value::Bytes(b)) => number_text(&b)?,
        (Kind::Date, Value::Date(y, m, d, ..)) => {
            calendar(y, m, d, 0, 0, 0, 0).map_or(Json::Null, |t| values::date(t.date()))
        }
        (Kind::Timestamp, Value::Date(y, m, d, h, mi, s, us)) => {
            calendar(y, m, d, h, mi, s, us).map_or(Json::Null, |t| values::instant(t.and_utc()))
        }
        (_, Value::Date(y, m, d, h, mi, s, us)) => {
            calendar(y, m, d, h, mi, s, us).map_or(Json::Null, values::naive_timestamp)
        }
        (_, Value::Time(neg, days, h, m, s, us)) => Json::String(time_text(neg, days, h, m, s, us)),
        (_, Value::Int(i)) => Json::Number(Number::from(i)),
        (_, Value::UInt(u)) => Json::Number(Number::from(u)),
        (_, Value::Float(f)) => float32(f),
        (_, Value::Double(f)) => values::float(f),
        (_, Value::Bytes(b)) => match String::from_utf8(b) {
            Ok(s) => Json::String(s),
            Err(e) => Json::String(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::consts::ColumnFlags;

    fn column(ty: T, length: u32, charset: u16) -> Column {
        Column::new(ty)
            .with_column_length(length)
            .with_character_set(charset)
            .with_flags(ColumnFlags::empty())
    }

    #[test]
    fn kinds_follow_the_metadata() {
        assert_eq!(kind(&column(T::MYSQL_TYPE_TINY, 1, 63)), Kind::Bool);
        assert_eq!(kind(&column(T::MYSQL_TYPE_TINY, 4, 63)), Kind::Integer);
        assert_eq!(kind(&column(T::MYSQL_TYPE_BIT, 1, 63)), Kind::Bool);
        assert_eq!(kind(&column(T::MYSQL_TYPE_BIT, 12, 63)), Kind::Bits);
        assert_eq!(kind(&column(T::MYSQL_TYPE_BLOB, 65535, 63)), Kind::Binary);
        assert_eq!(kind(&column(T::MYSQL_TYPE_BLOB, 65535, 45)), Kind::Text);
        assert_eq!(kind(&column(T::MYSQL_TYPE_JSON, 0, 63)), Kind::Json);
        assert_eq!(
            kind(&column(T::MYSQL_TYPE_TIMESTAMP, 19, 63)),
            Kind::Timestamp
        );
    }

    #[test]
    fn values_keep_their_exact_form() {
        let v = |k, x| value(k, x).expect("a value").to_string();
        assert_eq!(
            v(Kind::Integer, Value::UInt(u64::MAX)),
            "18446744073709551615"
        );
        assert_eq!(
            v(
                Kind::Decimal,
                Value::Bytes(b"12345678901234567890.1234567890".to_vec())
            ),
            "12345678901234567890.1234567890"
        );
        assert_eq!(v(Kind::Float, Value::Float(0.1)), "0.1");
        assert_eq!(v(Kind::Bool, Value::Int(1)), "true");
        assert_eq!(v(Kind::Bits, Value::Bytes(vec![1, 2])), "258");
        assert_eq!(
            v(Kind::Timestamp, Value::Date(2024, 3, 1, 8, 0, 0, 500_000)),
            "\"2024-03-01T08:00:00.5+00:00\""
        );
        assert_eq!(
            v(Kind::DateTime, Value::Date(2024, 3, 1, 10, 0, 0, 0)),
            "\"2024-03-01T10:00:00\""
        );
        assert_eq!(
            v(Kind::Date, Value::Date(2024, 2, 29, 0, 0, 0, 0)),
            "\"2024-02-29\""
        );
        assert_eq!(
            v(Kind::Time, Value::Time(true, 1, 2, 3, 4, 500_000)),
            "\"-26:03:04.5\""
        );
        assert_eq!(
            v(Kind::Binary, Value::Bytes(vec![0xde, 0xad])),
            "\"\\\\xdead\""
        );
        assert_eq!(
            v(
                Kind::Json,
                Value::Bytes(br#"{"n": 9007199254740993}"#.to_vec())
            ),
            r#"{"n":9007199254740993}"#
        );
    }

    #[test]
    fn zero_and_partial_dates_are_null_and_bad_input_is_an_error() {
        assert_eq!(
            value(Kind::Date, Value::Date(0, 0, 0, 0, 0, 0, 0)),
            Ok(Json::Null)
        );
        assert_eq!(
            value(Kind::DateTime, Value::Date(2024, 0, 10, 1, 0, 0, 0)),
            Ok(Json::Null)
        );
        assert_eq!(
            value(Kind::Timestamp, Value::Date(0, 0, 0, 0, 0, 0, 0)),
            Ok(Json::Null)
        );
        assert!(value(Kind::Json, Value::Bytes(b"{".to_vec())).is_err());
        assert!(value(Kind::Decimal, Value::Bytes(b"1e3".to_vec())).is_err());
    }
}
