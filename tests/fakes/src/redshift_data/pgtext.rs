//! Reading PostgreSQL's text output (in the session settings of [`super::pg`]) back into
//! values, so each fake can re-render them in its vendor's forms.

use chrono::{NaiveDate, NaiveDateTime};

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => unreachable!(),
};

/// `t` / `f`.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    }
}

/// `\x0102` (hex `bytea` output).
pub(crate) fn bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `2024-01-31` as a date.
pub(crate) fn date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Days since 1970-01-01.
pub(crate) fn epoch_days(d: NaiveDate) -> i32 {
    (d - EPOCH).num_days() as i32
}

/// `2024-01-31 12:00:00.123456` (`timestamp`), or the same with a `+00` offset
/// (`timestamptz` in a UTC session), as a UTC date-time.
pub(crate) fn timestamp(text: &str) -> Option<NaiveDateTime> {
    let local = match text.get(19..).and_then(|tail| tail.find(['+', '-'])) {
        Some(at) => {
            let (local, offset) = text.split_at(19 + at);
            // Sessions run in UTC, so any offset other than zero means foreign input.
            offset
                .trim_start_matches(['+', '-'])
                .chars()
                .all(|c| c == '0' || c == ':')
                .then_some(local)?
        }
        None => text,
    };
    NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()
}

/// Microseconds since the epoch.
pub(crate) fn epoch_micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// A decimal's digits scaled to `scale` places (`12.5` at scale 2 is `1250`), rounding half
/// away from zero when the text has more places.
pub(crate) fn scaled_decimal(text: &str, scale: u32) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let keep = frac.len().min(scale as usize);
    let mut all = format!("{int}{}", &frac[..keep]);
    all.extend(std::iter::repeat_n('0', scale as usize - keep));
    let mut value: i128 = if all.is_empty() { 0 } else { all.parse().ok()? };
    if frac.as_bytes().get(keep).is_some_and(|d| *d >= b'5') {
        value += 1;
    }
    Some(if negative { -value } else { value })
}

/// `value` (an unscaled decimal) written with `scale` places: `1250` at 2 is `12.50`.
pub(crate) fn format_scaled(value: i128, scale: u32) -> String {
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let width = scale as usize + 1;
    let padded = format!("{digits:0>width$}");
    let (int, frac) = padded.split_at(padded.len() - scale as usize);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse() {
        assert_eq!(bytea("\\x00ff"), Some(vec![0, 255]));
        assert_eq!(epoch_days(date("1970-01-02").unwrap()), 1);
        let t = timestamp("2024-01-31 12:00:00.5+00").unwrap();
        assert_eq!(epoch_micros(t), 1_706_702_400_500_000);
        assert_eq!(
            timestamp("2024-01-31 12:00:00"),
            Some(t - chrono::Duration::milliseconds(500))
        );
        assert_eq!(timestamp("2024-01-31 12:00:00+02"), None);
        assert_eq!(scaled_decimal("-12.345", 2), Some(-1235));
        assert_eq!(scaled_decimal("7", 3), Some(7000));
        assert_eq!(format_scaled(-1235, 2), "-12.35");
        assert_eq!(format_scaled(5, 3), "0.005");
    }
}
