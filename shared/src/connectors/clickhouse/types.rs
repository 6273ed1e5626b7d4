//! ClickHouse values as retl values ([`crate::connectors::values`]): a column's type name
//! (`Nullable(Decimal(38, 10))`, `Array(String)`) parsed once, then each field of the
//! `TabSeparated` output read by it. Top-level fields are TSV-escaped; arrays and tuples inside
//! a field are in ClickHouse's `Values` syntax (`[1,'a\'b',NULL]`).

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value as Json;

use crate::connectors::values;

/// A column type, as far as reading it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChType {
    /// `Nullable(T)`.
    Nullable(Box<ChType>),
    /// `Array(T)`.
    Array(Box<ChType>),
    /// `Tuple(T1, T2, ...)`: a JSON array.
    Tuple(Vec<ChType>),
    /// `Int8` ... `UInt256`.
    Int,
    /// `Float32`, `Float64`.
    Float,
    /// `Decimal(P, S)`, `Decimal32(S)` ...
    Decimal,
    /// `Bool` (ClickHouse 21.12 and later).
    Bool,
    /// `String`, `UUID`, enums, IP addresses.
    Text,
    /// `FixedString(N)`: text without its trailing zero bytes.
    FixedString,
    /// `Date`, `Date32`.
    Date,
    /// `DateTime`, `DateTime64`: an instant (the query renders it in UTC).
    DateTime,
    /// Anything else (`Map`, `Nested`, geo types): its text.
    Other,
}

/// Splits `a, b(c, d), e` at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut quoted) = (0i32, 0, false);
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

/// The type of a type name.
pub(crate) fn parse_type(name: &str) -> ChType {
    let name = name.trim();
    let (head, inner) = match name.split_once('(') {
        Some((h, rest)) => (h, rest.strip_suffix(')').unwrap_or(rest)),
        None => (name, ""),
    };
    match head {
        "LowCardinality" => parse_type(inner),
        "Nullable" => ChType::Nullable(Box::new(parse_type(inner))),
        "Array" => ChType::Array(Box::new(parse_type(inner))),
        // Named elements (`Tuple(a UInt8, b String)`) carry the name first.
        "Tuple" => ChType::Tuple(
            split_top(inner)
                .into_iter()
                .map(|e| match e.split_once(' ') {
                    Some((n, t)) if !n.contains('(') => parse_type(t),
                    _ => parse_type(e),
                })
                .collect(),
        ),
        h if h.starts_with("Int") || h.starts_with("UInt") => ChType::Int,
        "Float32" | "Float64" => ChType::Float,
        h if h.starts_with("Decimal") => ChType::Decimal,
        "Bool" | "Boolean" => ChType::Bool,
        "String" | "UUID" | "Enum8" | "Enum16" | "Enum" | "IPv4" | "IPv6" => ChType::Text,
        "FixedString" => ChType::FixedString,
        "Date" | "Date32" => ChType::Date,
        "DateTime" | "DateTime64" => ChType::DateTime,
        _ => ChType::Other,
    }
}

/// Whether values of `ty` are DateTime (at the top or in an array): the query converts
/// those to UTC.
pub(crate) fn date_time_depth(ty: &ChType) -> Option<usize> {
    match ty {
        ChType::DateTime => Some(0),
        ChType::Nullable(t) => date_time_depth(t),
        ChType::Array(t) => date_time_depth(t).map(|d| d + 1),
        _ => None,
    }
}

/// A TSV field without its escapes (`\t`, `\n`, `\\`, `\'`, `\0` ...).
pub(crate) fn unescape_tsv(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'b') => out.push(8),
            Some(b'f') => out.push(12),
            Some(b'0') => out.push(0),
            Some(&other) => out.push(other),
            None => out.push(b'\\'),
        }
    }
    out
}

/// Bytes as text, or as binary when they are not UTF-8 (ClickHouse strings hold any bytes).
fn text_or_binary(bytes: Vec<u8>) -> Json {
    match String::from_utf8(bytes) {
        Ok(s) => Json::String(s),
        Err(e) => values::binary(e.as_bytes()),
    }
}

/// A float's text: `nan`, `inf`, `-inf` or a number.
fn float(text: &str) -> Result<Json, String> {
    match text {
        "nan" | "-nan" => Ok(values::float(f64::NAN)),
        "inf" | "+inf" => Ok(values::float(f64::INFINITY)),
        "-inf" => Ok(values::float(f64::NEG_INFINITY)),
        t => t
            .parse::<f64>()
            .map(values::float)
            .map_err(|_| format!("`{t}` is not a float")),
    }
}

/// A scalar of type `ty` from its unescaped text. ClickHouse 18.16 writes the zero date
/// (`0000-00-00`, day 0) where later servers write `1970-01-01`: both read as 1970-01-01.
fn scalar(ty: &ChType, bytes: Vec<u8>) -> Result<Json, String> {
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    match ty {
        ChType::Int | ChType::Decimal => {
            let t = text();
            values::decimal(&t).ok_or_else(|| format!("`{t}` is not a number"))
        }
        ChType::Float => float(&text()),
        ChType::Bool => match text().as_str() {
            "true" | "1" => Ok(Json::Bool(true)),
            "false" | "0" => Ok(Json::Bool(false)),
            t => Err(format!("`{t}` is not a boolean")),
        },
        ChType::Date => {
            let t = text();
            let t = if t == "0000-00-00" { "1970-01-01" } else { &t };
            NaiveDate::parse_from_str(t, "%Y-%m-%d")
                .map(values::date)
                .map_err(|_| format!("`{t}` is not a date"))
        }
        ChType::DateTime => {
            let t = text();
            let t = t.replace("0000-00-00 00:00:00", "1970-01-01 00:00:00");
            NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S%.f")
                .map(|d| values::instant(d.and_utc()))
                .map_err(|_| format!("`{t}` is not a date and time"))
        }
        ChType::FixedString => {
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            Ok(text_or_binary(bytes[..end].to_vec()))
        }
        _ => Ok(text_or_binary(bytes)),
    }
}

/// A reader of the `Values` syntax inside one field.
struct Values<'a> {
    s: &'a [u8],
    i: usize,
}

impl Values<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at {}", b as char, self.i))
        }
    }

    /// A quoted string's bytes (after the opening quote).
    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        let start = self.i;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'\'' => return Ok(unescape_tsv(&self.s[start..self.i - 1])),
                _ => {}
            }
        }
        Err("an unterminated string".into())
    }

    /// A list of `ty`s (or of a tuple's types) up to `close`.
    fn list(
        &mut self,
        types: &mut dyn Iterator<Item = &ChType>,
        close: u8,
    ) -> Result<Json, String> {
        let mut out = Vec::new();
        while self.peek() != Some(close) {
            if !out.is_empty() {
                self.expect(b',')?;
            }
            let ty = types.next().ok_or("more values than the type has")?;
            out.push(self.value(ty)?);
        }
        self.expect(close)?;
        Ok(Json::Array(out))
    }

    fn value(&mut self, ty: &ChType) -> Result<Json, String> {
        match ty {
            ChType::Array(el) => {
                self.expect(b'[')?;
                self.list(&mut std::iter::repeat(el.as_ref()), b']')
            }
            ChType::Tuple(els) => {
                self.expect(b'(')?;
                self.list(&mut els.iter(), b')')
            }
            ChType::Nullable(_) if self.s[self.i..].starts_with(b"NULL") => {
                self.i += 4;
                Ok(Json::Null)
            }
            ChType::Nullable(inner) => self.value(inner),
            _ if self.peek() == Some(b'\'') => {
                self.i += 1;
                let bytes = self.quoted()?;
                scalar(ty, bytes)
            }
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|b| !b",])".contains(&b)) {
                    self.i += 1;
                }
                scalar(ty, self.s[start..self.i].to_vec())
            }
        }
    }
}

/// The types of a `TabSeparatedWithNamesAndTypes` header's type line.
pub(crate) fn type_line(line: &[u8]) -> Vec<ChType> {
    line.split(|b| *b == b'\t')
        .map(|t| parse_type(&String::from_utf8_lossy(&unescape_tsv(t))))
        .collect()
}

/// Why a TSV row could not be read.
#[derive(Debug, PartialEq)]
pub(crate) enum RowProblem {
    /// The row has `fields` fields for `columns` columns.
    Width {
        /// Fields in the row.
        fields: usize,
        /// Columns of the result.
        columns: usize,
    },
    /// The field of column `column` (0-based) is not a value of its type.
    Value {
        /// The column's position.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl RowProblem {
    /// The problem in words, the column named by `column_name`.
    pub(crate) fn describe(&self, column_name: impl Fn(usize) -> String) -> String {
        match self {
            RowProblem::Width { fields, columns } => {
                format!("a row has {fields} fields for {columns} columns")
            }
            RowProblem::Value { column, message } => {
                format!("column {}: {message}", column_name(*column))
            }
        }
    }
}

/// The values of one TSV row whose columns have `types`, in column order.
pub(crate) fn row(types: &[ChType], line: &[u8]) -> Result<Vec<Json>, RowProblem> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
    if fields.len() != types.len() {
        return Err(RowProblem::Width {
            fields: fields.len(),
            columns: types.len(),
        });
    }
    types
        .iter()
        .zip(fields)
        .enumerate()
        .map(|(column, (ty, raw))| {
            field(ty, raw).map_err(|message| RowProblem::Value { column, message })
        })
        .collect()
}

/// The retl value of one raw TSV field of a column of type `ty`.
pub(crate) fn field(ty: &ChType, raw: &[u8]) -> Result<Json, String> {
    if raw == b"\\N" {
        return Ok(Json::Null);
    }
    match ty {
        ChType::Nullable(inner) => field(inner, raw),
        // Arrays and tuples are written in the `Values` syntax as they are (their strings
        // quoted and escaped inside), not TSV-escaped again.
        ChType::Array(_) | ChType::Tuple(_) => {
            let mut reader = Values { s: raw, i: 0 };
            let v = reader.value(ty)?;
            if reader.i != raw.len() {
                return Err("trailing text after the value".into());
            }
            Ok(v)
        }
        t => scalar(t, unescape_tsv(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ty: &str, raw: &str) -> String {
        field(&parse_type(ty), raw.as_bytes())
            .unwrap_or_else(|e| panic!("{ty} {raw}: {e}"))
            .to_string()
    }

    #[test]
    fn type_names_parse() {
        assert_eq!(
            parse_type("Nullable(Decimal(38, 10))"),
            ChType::Nullable(Box::new(ChType::Decimal))
        );
        assert_eq!(
            parse_type("Tuple(a UInt8, b Array(String))"),
            ChType::Tuple(vec![ChType::Int, ChType::Array(Box::new(ChType::Text))])
        );
        assert_eq!(parse_type("LowCardinality(String)"), ChType::Text);
        assert_eq!(parse_type("DateTime('UTC')"), ChType::DateTime);
        assert_eq!(
            date_time_depth(&parse_type("Array(Nullable(DateTime))")),
            Some(1)
        );
        assert_eq!(parse_type("Map(String, UInt8)"), ChType::Other);
    }

    #[test]
    fn fields_keep_their_exact_form() {
        assert_eq!(
            read("UInt64", "18446744073709551615"),
            "18446744073709551615"
        );
        assert_eq!(
            read("Decimal(38, 10)", "12345678901234567890.1234567890"),
            "12345678901234567890.1234567890"
        );
        assert_eq!(read("Float32", "0.1"), "0.1");
        assert_eq!(read("Float64", "-inf"), "\"-Infinity\"");
        assert_eq!(read("Nullable(Int64)", "\\N"), "null");
        assert_eq!(read("String", "a\\tb\\\\c\\'d"), r#""a\tb\\c'd""#);
        assert_eq!(read("String", "\u{de}"), "\"\u{de}\"");
        assert_eq!(read("FixedString(4)", "ab\\0\\0"), "\"ab\"");
        assert_eq!(read("Date", "0000-00-00"), "\"1970-01-01\"");
        assert_eq!(
            read("DateTime('UTC')", "2024-03-01 08:00:00"),
            "\"2024-03-01T08:00:00+00:00\""
        );
        assert_eq!(read("Bool", "true"), "true");
        assert_eq!(
            read("Array(Nullable(String))", "['x\\'y\\t',NULL]"),
            r#"["x'y\t",null]"#
        );
        assert_eq!(read("Array(Array(UInt8))", "[[1,2],[]]"), "[[1,2],[]]");
        assert_eq!(
            read("Tuple(UInt8, Date)", "(1,'2024-01-01')"),
            r#"[1,"2024-01-01"]"#
        );
    }

    #[test]
    fn binary_strings_and_bad_fields() {
        let v = field(&ChType::Text, &[0xde, 0xad, 0xbe, 0xef]).expect("a value");
        assert_eq!(v, Json::String("\\xdeadbeef".into()));
        assert!(field(&ChType::Int, b"abc").is_err());
        assert!(field(&parse_type("Array(UInt8)"), b"[1,2").is_err());
        assert!(field(&ChType::Date, b"2024-02-30").is_err());
    }
}
