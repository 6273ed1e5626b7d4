//! The value forms every source produces, whatever its warehouse: what a model row's values
//! look like to mappings, hashes and destinations. A record read from two warehouses has the
//! same values, and so the same key and hash.
//!
//! | warehouse value | retl value |
//! |---|---|
//! | integers of any width (signed, unsigned 64-bit) | JSON number, every digit |
//! | exact decimals | JSON number with the warehouse's digits and scale (never a float) |
//! | floats | JSON number; `NaN`, `Infinity`, `-Infinity` as strings |
//! | booleans | `true` / `false` |
//! | text | string |
//! | date | `"2024-01-31"` |
//! | timestamp without time zone | `"2024-01-31T10:00:00"` (fraction: up to 9 digits, trailing zeros trimmed) |
//! | timestamp with time zone, instants | `"2024-01-31T08:00:00+00:00"` (normalised to UTC) |
//! | JSON, variant, struct | the JSON value |
//! | arrays | JSON arrays |
//! | binary | `"\x<hex>"` |
//! | NULL | null |

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde_json::{Number, Value};

/// An exact number from its decimal text (`"-12.50"`, `"9007199254740993"`, `"1e3"` is
/// refused: warehouses give plain digits). `None` when the text is not a plain decimal.
pub fn decimal(text: &str) -> Option<Value> {
    let t = text.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !plain {
        return None;
    }
    serde_json::from_str::<Number>(t).ok().map(Value::Number)
}

/// An exact decimal from an unscaled integer and a scale (Arrow decimal128, Parquet).
pub fn decimal_from_unscaled(unscaled: i128, scale: i8) -> Value {
    if scale <= 0 {
        let mut text = unscaled.to_string();
        if unscaled != 0 {
            text.extend(std::iter::repeat_n('0', (-scale) as usize));
        }
        return decimal(&text).unwrap_or(Value::Null);
    }
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let text = format!("{}{int}.{frac}", if negative { "-" } else { "" });
    decimal(&text).unwrap_or(Value::Null)
}

/// A float, with the non-finite values as strings.
pub fn float(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Seconds fraction: `.5`, `.123456`, nothing for whole seconds.
fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let s = format!(".{nanos:09}");
    s.trim_end_matches('0').to_string()
}

/// A date.
pub fn date(d: NaiveDate) -> Value {
    Value::String(d.format("%Y-%m-%d").to_string())
}

/// A date from days since 1970-01-01.
pub fn date_from_days(days: i64) -> Option<Value> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    epoch
        .checked_add_signed(chrono::Duration::days(days))
        .map(date)
}

/// A timestamp without time zone.
pub fn naive_timestamp(t: NaiveDateTime) -> Value {
    Value::String(format!(
        "{}{}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        fraction(t.nanosecond())
    ))
}

/// An instant, in UTC.
pub fn instant(t: DateTime<Utc>) -> Value {
    Value::String(format!(
        "{}{}+00:00",
        t.format("%Y-%m-%dT%H:%M:%S"),
        fraction(t.nanosecond())
    ))
}

/// An instant from seconds and nanoseconds since the Unix epoch.
pub fn instant_from_epoch(secs: i64, nanos: u32) -> Option<Value> {
    DateTime::<Utc>::from_timestamp(secs, nanos).map(instant)
}

/// A timestamp without time zone from seconds and nanoseconds since the Unix epoch (how
/// Arrow and Parquet carry wall-clock times).
pub fn naive_from_epoch(secs: i64, nanos: u32) -> Option<Value> {
    DateTime::<Utc>::from_timestamp(secs, nanos).map(|t| naive_timestamp(t.naive_utc()))
}

/// Binary data.
pub fn binary(bytes: &[u8]) -> Value {
    Value::String(format!("\\x{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit_and_their_scale() {
        assert_eq!(
            decimal("12345678901234567890.1234567890")
                .unwrap()
                .to_string(),
            "12345678901234567890.1234567890"
        );
        assert_eq!(decimal("-0.50").unwrap().to_string(), "-0.50");
        assert_eq!(decimal("1e3"), None);
        assert_eq!(decimal("abc"), None);
        assert_eq!(decimal_from_unscaled(125, 2).to_string(), "1.25");
        assert_eq!(decimal_from_unscaled(-5, 3).to_string(), "-0.005");
        assert_eq!(decimal_from_unscaled(12, -2).to_string(), "1200");
        assert_eq!(decimal_from_unscaled(0, 2).to_string(), "0.00");
    }

    #[test]
    fn floats_and_their_non_finite_values() {
        assert_eq!(float(0.5).to_string(), "0.5");
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
        assert_eq!(float(f64::NEG_INFINITY), Value::String("-Infinity".into()));
    }

    #[test]
    fn times_are_iso_with_trimmed_fractions_and_utc_instants() {
        assert_eq!(date_from_days(19753).unwrap(), "2024-01-31");
        assert_eq!(
            instant_from_epoch(1_706_688_000, 500_000_000).unwrap(),
            "2024-01-31T08:00:00.5+00:00"
        );
        assert_eq!(
            naive_from_epoch(1_706_695_200, 0).unwrap(),
            "2024-01-31T10:00:00"
        );
        assert_eq!(binary(&[0xde, 0xad]), "\\xdead");
    }
}
