//! The `payload` of `/{audience}/users`: a `schema` (one key, or an array for multi-key
//! matching) and `data` rows in schema order, plus the rules that make an entry invalid.
//! Sources: reference page of `/users` and `/usersreplace`
//! (<https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/usersreplace>),
//! and hashing rules (<https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences>):
//! every key is SHA-256 hashed (lowercase hex) except `EXTERN_ID` and mobile advertiser ids.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::rules::Rule;

/// Keys whose values must be SHA-256 digests.
const HASHED: [&str; 15] = [
    "EMAIL",
    "EMAIL_SHA256",
    "PHONE",
    "PHONE_SHA256",
    "GEN",
    "DOBY",
    "DOBM",
    "DOBD",
    "LN",
    "FN",
    "FI",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
];

/// Keys sent as they are.
const RAW: [&str; 7] = [
    "EXTERN_ID",
    "MADID",
    "MOBILE_ADVERTISER_ID",
    "UID",
    "APPUID",
    "PAGEUID",
    "LOOKALIKE_VALUE",
];

/// A parsed payload.
#[derive(Debug)]
pub(crate) struct Payload {
    pub schema: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The key audience membership is filed under (`EMAIL_SHA256` and `EMAIL` are one kind).
pub(crate) fn canonical_key(key: &str) -> &str {
    match key {
        "EMAIL_SHA256" => "EMAIL",
        "PHONE_SHA256" => "PHONE",
        "MOBILE_ADVERTISER_ID" => "MADID",
        other => other,
    }
}

fn is_sha256_hex(v: &str) -> bool {
    v.len() == 64
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a non-empty `value` is acceptable for `key`.
fn valid(key: &str, value: &str) -> bool {
    if HASHED.contains(&key) {
        is_sha256_hex(value)
    } else {
        !value.trim().is_empty()
    }
}

fn cell(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

const MISMATCH: &str = "(#100) Data is missing or does not match schema";

/// Parses `payload`; `Err` is the `(#100)` message of a malformed one.
pub(crate) fn parse(payload: &Value) -> Result<Payload, String> {
    let schema: Vec<String> = match payload.get("schema") {
        Some(Value::String(s)) => vec![s.to_ascii_uppercase()],
        Some(Value::Array(keys)) if !keys.is_empty() => keys
            .iter()
            .map(|k| k.as_str().map(str::to_ascii_uppercase))
            .collect::<Option<_>>()
            .ok_or("(#100) schema must be a string or an array of strings")?,
        _ => return Err("(#100) The parameter schema is required".into()),
    };
    if let Some(bad) = schema
        .iter()
        .find(|k| !HASHED.contains(&k.as_str()) && !RAW.contains(&k.as_str()))
    {
        return Err(format!("(#100) Invalid schema key: {bad}"));
    }
    let Some(data) = payload.get("data").and_then(Value::as_array) else {
        return Err(MISMATCH.into());
    };
    let mut rows = Vec::with_capacity(data.len());
    for item in data {
        let row: Option<Vec<String>> = match item {
            Value::Array(cells) if cells.len() == schema.len() => cells.iter().map(cell).collect(),
            Value::Array(_) => None,
            scalar if schema.len() == 1 => cell(scalar).map(|c| vec![c]),
            _ => None,
        };
        rows.push(row.ok_or(MISMATCH)?);
    }
    Ok(Payload { schema, rows })
}

/// Outcome of checking every row.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// Valid rows as `(canonical key, value)` pairs, empty cells left out.
    pub valid: Vec<Vec<(String, String)>>,
    pub invalid: usize,
    /// Invalid value → schema key, for `invalid_entry_samples`.
    pub samples: BTreeMap<String, String>,
}

/// Most samples reported in `invalid_entry_samples`.
const MAX_SAMPLES: usize = 10;

/// Whether a test's rule refuses `value` under `key` (rules name canonical keys).
fn refused(rules: &[Rule], key: &str, value: &str) -> bool {
    let key = canonical_key(key);
    let mut cell = Map::new();
    cell.insert(key.to_string(), Value::String(value.to_string()));
    rules
        .iter()
        .any(|r| r.field.eq_ignore_ascii_case(key) && r.violated(&cell, false, true))
}

/// A row is invalid when any non-empty cell is invalid for its key (or refused by a rule),
/// or every cell is empty.
pub(crate) fn check(payload: &Payload, rules: &[Rule]) -> Checked {
    let mut out = Checked::default();
    for row in &payload.rows {
        let mut entries = Vec::new();
        let mut bad = None;
        for (key, value) in payload.schema.iter().zip(row) {
            if value.is_empty() {
                continue;
            }
            if valid(key, value) && !refused(rules, key, value) {
                entries.push((canonical_key(key).to_string(), value.clone()));
            } else if bad.is_none() {
                bad = Some((value.clone(), key.clone()));
            }
        }
        match bad {
            Some((value, key)) => {
                out.invalid += 1;
                if out.samples.len() < MAX_SAMPLES {
                    out.samples.insert(value, key);
                }
            }
            None if entries.is_empty() => out.invalid += 1,
            None => out.valid.push(entries),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn multi_key_rows_are_checked_cell_by_cell() {
        let h = "a".repeat(64);
        let p = parse(&json!({"schema": ["EMAIL", "EXTERN_ID"], "data": [[h, "x1"], ["NOT-HEX", "x2"], ["", ""]]}))
            .unwrap();
        let c = check(&p, &[]);
        assert_eq!((c.valid.len(), c.invalid), (1, 2));
        assert_eq!(c.samples["NOT-HEX"], "EMAIL");
        assert!(parse(&json!({"schema": ["EMAIL", "FN"], "data": [["x"]]})).is_err());
        assert!(parse(&json!({"schema": "BOGUS", "data": []})).is_err());
        let single = parse(&json!({"schema": "EMAIL_SHA256", "data": ["A".repeat(64)]})).unwrap();
        assert_eq!(check(&single, &[]).invalid, 1);
        let ruled = parse(&json!({"schema": ["EXTERN_ID"], "data": [["ok"], ["bad-1"]]})).unwrap();
        let c = check(
            &ruled,
            &[Rule::custom("EXTERN_ID", |v| {
                v.as_str().is_some_and(|s| !s.starts_with("bad"))
            })],
        );
        assert_eq!((c.valid.len(), c.invalid), (1, 1));
        assert_eq!(c.samples["bad-1"], "EXTERN_ID");
    }
}
