//! Normalising and hashing identifiers as Meta documents for customer-file audiences
//! ("Hashing and normalizing data" of the Marketing API, and Meta's Business SDK
//! `customaudiencemixin.py`):
//!
//! | key | normalised form | sent |
//! |---|---|---|
//! | EMAIL | trimmed, lowercase | SHA-256 |
//! | PHONE | digits only, leading zeros removed (the country code must be in the value) | SHA-256 |
//! | GEN | `m` or `f` (first letter of the value) | SHA-256 |
//! | DOBY | `YYYY`, 1900 to the current year | SHA-256 |
//! | DOBM / DOBD | `MM` 01-12 / `DD` 01-31 | SHA-256 |
//! | FN, LN | lowercase letters only (accented letters kept, UTF-8) | SHA-256 |
//! | FI | first letter of the above | SHA-256 |
//! | CT, ST | lowercase `a-z` only, no spaces or punctuation | SHA-256 |
//! | ZIP | lowercase, no spaces; a US zip+4 keeps its first 5 digits | SHA-256 |
//! | COUNTRY | two-letter ISO 3166-1 alpha-2, lowercase | SHA-256 |
//! | MADID | trimmed, lowercase, hyphens kept | as is |
//! | EXTERN_ID | trimmed | as is |
//!
//! A value of a hashed key that already is a SHA-256 digest (64 hex digits) is taken as
//! pre-hashed and only lowercased, as the SDK's `pre_hashed` option does.
//! Hash: lowercase hex of SHA-256 over the UTF-8 bytes of the normalised value.

use chrono::Datelike;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::schema::Key;

/// Lowercase hex SHA-256 of `text`.
pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn letters(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect()
}

fn ascii_letters(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A number within `range`, written with `width` digits.
fn padded(text: &str, range: std::ops::RangeInclusive<u32>, width: usize) -> Option<String> {
    let d = digits(text);
    if d.is_empty() || d.len() > width {
        return None;
    }
    let n: u32 = d.parse().ok()?;
    range.contains(&n).then(|| format!("{n:0width$}"))
}

/// The normalised form of `text` for `key`; `Err` says why there is none (never quoting the
/// value, which may be personal data).
pub(super) fn normalise(key: Key, text: &str) -> Result<String, String> {
    let t = text.trim();
    let empty = |what: &str| Err(format!("normalises to an empty value ({what})"));
    let out = match key {
        Key::Email => t.to_lowercase(),
        Key::Phone => {
            let d = digits(t);
            d.trim_start_matches('0').to_string()
        }
        Key::Gen => match letters(t).chars().next() {
            Some(c @ ('m' | 'f')) => c.to_string(),
            Some(_) => return Err("must be m or f (male or female)".into()),
            None => return empty("no letters"),
        },
        Key::Doby => {
            let year = u32::try_from(chrono::Utc::now().year()).unwrap_or(9999);
            match padded(t, 1900..=year, 4).filter(|y| y.len() == 4) {
                Some(y) => y,
                None if digits(t).is_empty() => return empty("no digits"),
                None => return Err(format!("must be a year YYYY from 1900 to {year}")),
            }
        }
        Key::Dobm => match padded(t, 1..=12, 2) {
            Some(m) => m,
            None if digits(t).is_empty() => return empty("no digits"),
            None => return Err("must be a month from 01 to 12".into()),
        },
        Key::Dobd => match padded(t, 1..=31, 2) {
            Some(d) => d,
            None if digits(t).is_empty() => return empty("no digits"),
            None => return Err("must be a day from 01 to 31".into()),
        },
        Key::Fn | Key::Ln => letters(t),
        Key::Fi => letters(t)
            .chars()
            .next()
            .map(String::from)
            .unwrap_or_default(),
        Key::Ct | Key::St => ascii_letters(t),
        Key::Zip => {
            let z: String = t
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect();
            us_zip5(&z).unwrap_or(z)
        }
        Key::Country => {
            let c = ascii_letters(t);
            if !c.is_empty() && c.len() != 2 {
                return Err("must be a two-letter ISO 3166-1 alpha-2 country code".into());
            }
            c
        }
        Key::Madid => t.to_lowercase(),
        Key::ExternId => t.to_string(),
    };
    if out.is_empty() {
        let what = match key {
            Key::Phone => "no digits",
            Key::Fn | Key::Ln | Key::Fi | Key::Ct | Key::St | Key::Country => "no letters",
            _ => "blank",
        };
        return empty(what);
    }
    Ok(out)
}

/// The first five digits of a US zip or zip+4 (`94103`, `94103-1234`, `941031234`).
fn us_zip5(z: &str) -> Option<String> {
    let (head, rest) = z.split_at_checked(5)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let plus4 = rest.strip_prefix('-').unwrap_or(rest);
    let is_plus4 = plus4.len() == 4 && plus4.bytes().all(|b| b.is_ascii_digit());
    (rest.is_empty() || is_plus4).then(|| head.to_string())
}

/// The text of a model value (numbers as written; `None` for null).
fn text_of(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(_) => Err("is a boolean, not text".into()),
        Value::Array(_) | Value::Object(_) => Err("is a list or an object, not text".into()),
    }
}

/// The cell sent for `value` under `key`: normalised, then hashed when Meta wants it hashed.
/// `Ok(None)` for null (an empty cell); `Err` explains a value that cannot be sent.
pub(super) fn encode(key: Key, value: &Value) -> Result<Option<String>, String> {
    let Some(text) = text_of(value)? else {
        return Ok(None);
    };
    if key.hashed() && is_digest(text.trim()) {
        return Ok(Some(text.trim().to_ascii_lowercase()));
    }
    let normal = normalise(key, &text)?;
    Ok(Some(if key.hashed() {
        sha256_hex(&normal)
    } else {
        normal
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(key: Key, text: &str) -> Result<String, String> {
        normalise(key, text)
    }

    #[test]
    fn normalises_each_key_as_documented() {
        assert_eq!(
            n(Key::Email, "  Jane.Doe@Example.COM ").unwrap(),
            "jane.doe@example.com"
        );
        assert_eq!(n(Key::Phone, "+1 (650) 555-1212").unwrap(), "16505551212");
        assert_eq!(n(Key::Phone, "0044 20 7946 0958").unwrap(), "442079460958");
        assert_eq!(n(Key::Gen, " Female").unwrap(), "f");
        assert_eq!(n(Key::Gen, "M").unwrap(), "m");
        assert!(n(Key::Gen, "x").is_err());
        assert_eq!(n(Key::Doby, "1987").unwrap(), "1987");
        assert!(n(Key::Doby, "1850").is_err());
        assert!(n(Key::Doby, "87").is_err());
        assert_eq!(n(Key::Dobm, "3").unwrap(), "03");
        assert_eq!(n(Key::Dobd, "09").unwrap(), "09");
        assert!(n(Key::Dobm, "13").is_err());
        assert!(n(Key::Dobd, "32").is_err());
        assert_eq!(n(Key::Fn, "Mary-Ann").unwrap(), "maryann");
        assert_eq!(n(Key::Ln, "Müller").unwrap(), "müller");
        assert_eq!(n(Key::Fi, " j.").unwrap(), "j");
        assert_eq!(n(Key::Ct, "San Francisco").unwrap(), "sanfrancisco");
        assert_eq!(n(Key::St, "CA").unwrap(), "ca");
        assert_eq!(n(Key::Zip, "94103-1234").unwrap(), "94103");
        assert_eq!(n(Key::Zip, "SW1A 1AA").unwrap(), "sw1a1aa");
        assert_eq!(n(Key::Country, "US").unwrap(), "us");
        assert!(n(Key::Country, "USA").is_err());
        assert_eq!(
            n(Key::Madid, " AECE52E7-03EE-455A-B3C4-E57283966239 ").unwrap(),
            "aece52e7-03ee-455a-b3c4-e57283966239"
        );
        assert_eq!(n(Key::ExternId, " CRM-42 ").unwrap(), "CRM-42");
    }

    #[test]
    fn values_without_content_are_refused_without_quoting_them() {
        let err = n(Key::Phone, "n/a").unwrap_err();
        assert!(err.contains("empty") && !err.contains("n/a"), "{err}");
        assert!(n(Key::Email, "   ").is_err());
        assert!(n(Key::Fn, "--").is_err());
    }

    #[test]
    fn encodes_hashes_and_passes_raw_keys_through() {
        // printf '%s' 'jane.doe@example.com' | sha256sum
        let expected = sha256_hex("jane.doe@example.com");
        assert_eq!(
            encode(Key::Email, &json!(" Jane.Doe@example.com")).unwrap(),
            Some(expected.clone())
        );
        assert_eq!(
            encode(Key::Email, &json!(expected.to_uppercase())).unwrap(),
            Some(expected),
            "a digest is taken as pre-hashed"
        );
        assert_eq!(
            encode(Key::Doby, &json!(1990)).unwrap(),
            Some(sha256_hex("1990"))
        );
        assert_eq!(
            encode(Key::ExternId, &json!(42)).unwrap(),
            Some("42".into())
        );
        assert_eq!(encode(Key::Fn, &Value::Null).unwrap(), None);
        assert!(encode(Key::Fn, &json!(true)).is_err());
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
