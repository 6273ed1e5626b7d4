//! Records: model rows mapped to destination fields, their keys, value hashes and shards.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64, Xxh3};

/// A row or record: column (or field) name -> JSON value.
pub type Values = Map<String, Value>;

/// Why a row cannot be synced on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// A key column is null or missing.
    NullKey(String),
    /// A key column holds an object or array.
    NotScalar(String),
    /// The key is empty, or longer than [`MAX_KEY_BYTES`].
    BadLength(usize),
    /// A key column holds a number with no exact plain form within a key's length.
    NotCanonical(String),
}

/// Longest key accepted, in bytes: DynamoDB's sort-key limit, so one key works on every host.
pub const MAX_KEY_BYTES: usize = 1024;

impl KeyProblem {
    /// Stable code for record logs.
    pub fn code(&self) -> &'static str {
        match self {
            KeyProblem::NullKey(_) => "null_key",
            KeyProblem::NotScalar(_) | KeyProblem::BadLength(_) | KeyProblem::NotCanonical(_) => {
                "invalid_key"
            }
        }
    }

    /// Human explanation.
    pub fn message(&self) -> String {
        match self {
            KeyProblem::NullKey(c) => format!("primary key column `{c}` is null"),
            KeyProblem::NotScalar(c) => {
                format!("primary key column `{c}` holds an object or array, not a scalar")
            }
            KeyProblem::NotCanonical(c) => format!(
                "primary key column `{c}` holds a number too large or small to write out exactly \
                 within {MAX_KEY_BYTES} bytes; cast it to text or an integer in the model"
            ),
            KeyProblem::BadLength(0) => "the primary key is empty".to_string(),
            KeyProblem::BadLength(n) => {
                format!("the primary key is {n} bytes long; at most {MAX_KEY_BYTES} are supported")
            }
        }
    }
}

fn key_part(value: Option<&Value>, column: &str) -> Result<String, KeyProblem> {
    match value {
        None | Some(Value::Null) => Err(KeyProblem::NullKey(column.to_string())),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => {
            let text = n.to_string();
            if is_canonical_integer(&text) {
                return Ok(text);
            }
            canonical_number(&text).ok_or_else(|| KeyProblem::NotCanonical(column.to_string()))
        }
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(KeyProblem::NotScalar(column.to_string())),
    }
}

/// Whether `text` is already [`canonical_number`]'s form of an integer (most keys are), so
/// the key needs no rewriting.
fn is_canonical_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0"
        && digits.len() <= MAX_KEY_BYTES
}

/// The canonical text of a number in a key: plain decimal digits, no exponent, no leading
/// zeros, no trailing fractional zeros, no `-0`; so `2`, `2.0`, `2.00` and `2e0` read from
/// different systems (an SQLite REAL, a PostgreSQL `double precision` or `numeric`) are one
/// key. `None` for text that is not a number, or whose plain form exceeds a key's length.
pub fn canonical_number(text: &str) -> Option<String> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the decimal point goes among them.
    let digits = format!("{int}{frac}");
    let point = i64::try_from(int.len()).ok()? + exp;
    if !(-(MAX_KEY_BYTES as i64)..=MAX_KEY_BYTES as i64).contains(&point) {
        return None;
    }
    let (whole, fraction) = if point <= 0 {
        (
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        let (w, f) = digits.split_at(point as usize);
        (w.to_string(), f.to_string())
    };
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let mut out = String::new();
    if negative && !(whole.is_empty() && fraction.is_empty()) {
        out.push('-');
    }
    out.push_str(if whole.is_empty() { "0" } else { whole });
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

/// The key of a row (or of a destination record, with destination field names).
///
/// Key parts compare as text, so a key read as the integer 4 from one system and as the
/// string "4" from another is the same record. A composite key is a JSON array of its parts.
pub fn key_of(values: &Values, columns: &[String]) -> Result<String, KeyProblem> {
    key_of_parts(columns.iter().map(|c| (c.as_str(), values.get(c))))
}

/// [`key_of`] from each key column's name and value, in key order (a row read by position).
pub fn key_of_parts<'a>(
    mut parts: impl ExactSizeIterator<Item = (&'a str, Option<&'a Value>)>,
) -> Result<String, KeyProblem> {
    let key = if parts.len() == 1 {
        let (column, value) = parts.next().expect("one part");
        key_part(value, column)?
    } else {
        let parts = parts
            .map(|(c, v)| key_part(v, c).map(Value::String))
            .collect::<Result<Vec<_>, _>>()?;
        Value::Array(parts).to_string()
    };
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KeyProblem::BadLength(key.len()));
    }
    Ok(key)
}

/// The destination key fields of a key, as strings (destinations cast them to column types).
pub fn key_values(key: &str, key_fields: &[String]) -> Values {
    let mut out = Map::new();
    if let [single] = key_fields {
        out.insert(single.clone(), Value::String(key.to_string()));
        return out;
    }
    let parts: Vec<String> = serde_json::from_str(key).unwrap_or_default();
    for (field, part) in key_fields.iter().zip(parts) {
        out.insert(field.clone(), Value::String(part));
    }
    out
}

/// Maps a source row to destination fields. Columns missing from the row map to null.
pub fn map_row(row: &Values, mapping: &std::collections::BTreeMap<String, String>) -> Values {
    let mut out = Map::new();
    for (field, column) in mapping {
        out.insert(
            field.clone(),
            row.get(column).cloned().unwrap_or(Value::Null),
        );
    }
    out
}

/// Hash of the mapped values, independent of field order. 0 is reserved for "unknown".
pub fn value_hash(values: &Values) -> u128 {
    let mut fields: Vec<(&String, &Value)> = values.iter().collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut h = Xxh3::new();
    let mut buf = Vec::with_capacity(128);
    for (k, v) in fields {
        buf.clear();
        write_canonical(&mut buf, v);
        h.update(&(k.len() as u32).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(buf.len() as u32).to_le_bytes());
        h.update(&buf);
    }
    match h.digest128() {
        0 => 1,
        x => x,
    }
}

/// Writes one record's JSON object and its [`value_hash`] from one serialisation: each
/// field's canonical JSON is written once, into the object and into the hash, field by field,
/// so a row read by position is encoded without building a map. Fields must come in sorted
/// name order (nested objects' fields are sorted here).
pub struct RecordEncoder<'a> {
    out: &'a mut Vec<u8>,
    hash: Xxh3,
    first: bool,
}

impl<'a> RecordEncoder<'a> {
    /// Starts the object at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        RecordEncoder {
            out,
            hash: Xxh3::new(),
            first: true,
        }
    }

    /// Appends a field: its name, the name as a JSON string (`quoted`), and its value.
    pub fn field(&mut self, name: &str, quoted: &[u8], value: &Value) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(quoted);
        self.out.push(b':');
        let start = self.out.len();
        write_canonical(self.out, value);
        let canonical = &self.out[start..];
        self.hash.update(&(name.len() as u32).to_le_bytes());
        self.hash.update(name.as_bytes());
        self.hash.update(&(canonical.len() as u32).to_le_bytes());
        self.hash.update(canonical);
    }

    /// Closes the object; returns the value hash.
    pub fn finish(self) -> u128 {
        self.out.push(b'}');
        match self.hash.digest128() {
            0 => 1,
            x => x,
        }
    }
}

/// JSON with object keys sorted at every depth, so equal values hash equally.
fn write_canonical(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(m) => {
            let mut fields: Vec<(&String, &Value)> = m.iter().collect();
            fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
            buf.push(b'{');
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                serde_json::to_writer(&mut *buf, k).expect("writing to a Vec cannot fail");
                buf.push(b':');
                write_canonical(buf, v);
            }
            buf.push(b'}');
        }
        Value::Array(items) => {
            buf.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_canonical(buf, item);
            }
            buf.push(b']');
        }
        other => serde_json::to_writer(&mut *buf, other).expect("writing to a Vec cannot fail"),
    }
}

/// The key-set shard of a key.
pub fn shard_of(key: &str, shards: u32) -> u32 {
    (xxh3_64(key.as_bytes()) % u64::from(shards.max(1))) as u32
}

/// The stable id of one record change: the same on every replan of the same change (a run
/// killed and run again), different for a real new change. It is derived from the key set,
/// the key, the operation, what the key set held before (hash and when it changed, or a
/// tombstone) and the new values' hash, so a record deleted and created again gets new ids.
pub fn event_id(keyset: &str, key: &str, op: &str, before: (u128, i64), after: u128) -> String {
    let mut h = Xxh3::new();
    for part in [keyset.as_bytes(), key.as_bytes(), op.as_bytes()] {
        h.update(&(part.len() as u32).to_le_bytes());
        h.update(part);
    }
    h.update(&before.0.to_le_bytes());
    h.update(&before.1.to_le_bytes());
    h.update(&after.to_le_bytes());
    format!("{:032x}", h.digest128())
}

/// A short stable fingerprint of bytes, for idempotency keys.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

/// Hex form of a value hash, as stored in plans.
pub fn hash_hex(hash: u128) -> String {
    format!("{hash:032x}")
}

/// Parses [`hash_hex`] output.
pub fn parse_hash(hex: &str) -> Option<u128> {
    u128::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Values {
        v.as_object().unwrap().clone()
    }

    fn encode_values(values: &Values, out: &mut Vec<u8>) -> u128 {
        let mut record = RecordEncoder::new(out);
        for (k, v) in values {
            record.field(k, &serde_json::to_vec(k).unwrap(), v);
        }
        record.finish()
    }

    #[test]
    fn integer_keys_skip_rewriting_only_when_already_canonical() {
        for text in [
            "0", "7", "-7", "120", "007", "-0", "00", "-", "", "1.0", "1e3", "+5",
        ] {
            let fast = is_canonical_integer(text);
            let canonical = canonical_number(text);
            assert_eq!(fast, canonical.as_deref() == Some(text), "{text}");
        }
    }

    #[test]
    fn record_encoder_writes_the_object_and_its_value_hash_at_once() {
        let cases = [
            json!({}),
            json!({"b": 1, "a": "x\"y", "c": null}),
            json!({"n": 12345678901234567890u64, "f": 1.5, "t": true}),
            json!({"nested": {"z": [1, {"y": 2, "x": 3}], "a": "é"}, "list": []}),
        ];
        for case in cases {
            let values = obj(case);
            let mut out = Vec::new();
            let hash = encode_values(&values, &mut out);
            assert_eq!(hash, value_hash(&values), "{values:?}");
            let back: Values = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, values);
        }
    }

    #[test]
    fn keys_compare_as_text() {
        let a = obj(json!({"id": 4}));
        let b = obj(json!({"id": "4"}));
        let cols = vec!["id".to_string()];
        assert_eq!(key_of(&a, &cols), key_of(&b, &cols));
    }

    #[test]
    fn numbers_in_keys_have_one_text_form() {
        for (raw, canonical) in [
            ("2", "2"),
            ("2.0", "2"),
            ("2.50", "2.5"),
            ("123456789.0", "123456789"),
            ("0.0", "0"),
            ("-0.0", "0"),
            ("-12.340", "-12.34"),
            ("1e3", "1000"),
            ("1.5E-3", "0.0015"),
            ("007", "7"),
            ("9007199254740993", "9007199254740993"),
            (
                "12345678901234567890.1234567890",
                "12345678901234567890.123456789",
            ),
        ] {
            assert_eq!(canonical_number(raw).as_deref(), Some(canonical), "{raw}");
        }
        assert_eq!(canonical_number("1e5000"), None);
        assert_eq!(canonical_number("abc"), None);
        let cols = vec!["id".to_string()];
        let real: Value = serde_json::from_str("2.0").unwrap();
        assert_eq!(key_of(&obj(json!({ "id": real })), &cols).unwrap(), "2");
    }

    #[test]
    fn composite_keys_round_trip() {
        let row = obj(json!({"acct": 7, "email": "a@x.io"}));
        let cols = vec!["acct".to_string(), "email".to_string()];
        let key = key_of(&row, &cols).unwrap();
        assert_eq!(key, r#"["7","a@x.io"]"#);
        let back = key_values(&key, &cols);
        assert_eq!(back["email"], json!("a@x.io"));
        assert_eq!(back["acct"], json!("7"));
    }

    #[test]
    fn null_and_object_keys_are_rejected() {
        let cols = vec!["id".to_string()];
        assert_eq!(
            key_of(&obj(json!({"id": null})), &cols),
            Err(KeyProblem::NullKey("id".into()))
        );
        assert_eq!(
            key_of(&obj(json!({"id": {"a": 1}})), &cols),
            Err(KeyProblem::NotScalar("id".into()))
        );
    }

    #[test]
    fn empty_and_oversized_keys_are_rejected() {
        let cols = vec!["id".to_string()];
        assert_eq!(
            key_of(&obj(json!({"id": ""})), &cols),
            Err(KeyProblem::BadLength(0))
        );
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            key_of(&obj(json!({ "id": long })), &cols),
            Err(KeyProblem::BadLength(MAX_KEY_BYTES + 1))
        );
    }

    #[test]
    fn hash_ignores_field_order_but_not_values() {
        let a = obj(json!({"a": 1, "b": {"x": 1, "y": [1, 2]}}));
        let mut b = Map::new();
        b.insert("b".into(), json!({"y": [1, 2], "x": 1}));
        b.insert("a".into(), json!(1));
        assert_eq!(value_hash(&a), value_hash(&b));
        let c = obj(json!({"a": 2, "b": {"x": 1, "y": [1, 2]}}));
        assert_ne!(value_hash(&a), value_hash(&c));
    }

    #[test]
    fn precise_numbers_keep_their_digits() {
        let v: Value = serde_json::from_str("12345678901234567890.123456789").unwrap();
        assert_eq!(v.to_string(), "12345678901234567890.123456789");
    }
}
