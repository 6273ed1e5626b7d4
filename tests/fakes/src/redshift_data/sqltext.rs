//! Parameter markers in SQL text: `:name` (Redshift Data, Databricks, Snowflake `:1`) and `?`
//! (Snowflake). The fakes bind by substituting SQL literals, which PostgreSQL then coerces
//! to the column's type, much as the vendors do with their string-typed parameter values.
//! Markers inside string literals, quoted identifiers, comments and `::` casts are left alone.

/// A marker found in SQL text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker<'a> {
    /// `:name` (the name without the colon).
    Named(&'a str),
    /// `?`, the n-th (0-based) of its kind.
    Positional(usize),
}

/// Replaces every marker by what `bind` returns; `bind` fails with the name of a marker it
/// has no value for, and that name is returned.
pub(crate) fn substitute(
    sql: &str,
    mut bind: impl FnMut(Marker<'_>) -> Option<String>,
) -> Result<String, String> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut copied, mut positional) = (0, 0, 0);
    while i < b.len() {
        let skip_to = match b[i] {
            b'\'' => closing(b, i + 1, b'\''),
            b'"' => closing(b, i + 1, b'"'),
            b'-' if b.get(i + 1) == Some(&b'-') => find(b, i, b"\n").map_or(b.len(), |e| e + 1),
            b'/' if b.get(i + 1) == Some(&b'*') => find(b, i + 2, b"*/").map_or(b.len(), |e| e + 2),
            b':' if b.get(i + 1) == Some(&b':') => i + 2,
            b':' if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
            {
                let end = (i + 1..b.len())
                    .find(|&j| !(b[j].is_ascii_alphanumeric() || b[j] == b'_'))
                    .unwrap_or(b.len());
                let name = &sql[i + 1..end];
                out.push_str(&sql[copied..i]);
                out.push_str(&bind(Marker::Named(name)).ok_or_else(|| name.to_string())?);
                copied = end;
                end
            }
            b'?' => {
                out.push_str(&sql[copied..i]);
                let value = bind(Marker::Positional(positional));
                out.push_str(&value.ok_or_else(|| (positional + 1).to_string())?);
                positional += 1;
                copied = i + 1;
                i + 1
            }
            _ => i + 1,
        };
        i = skip_to;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Index just past the quote closing a literal that opened before `from` (doubled quotes
/// are escapes).
fn closing(b: &[u8], mut from: usize, quote: u8) -> usize {
    while from < b.len() {
        if b[from] == quote {
            if b.get(from + 1) == Some(&quote) {
                from += 2;
                continue;
            }
            return from + 1;
        }
        from += 1;
    }
    b.len()
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A SQL string literal of `value` (standard-conforming strings: quotes doubled).
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(sql: &str) -> Result<String, String> {
        substitute(sql, |m| match m {
            Marker::Named("id") => Some("'7'".into()),
            Marker::Named("n") => Some("'it''s'".into()),
            Marker::Positional(i) => Some(format!("'p{i}'")),
            Marker::Named(_) => None,
        })
    }

    #[test]
    fn markers_outside_literals_and_casts_are_bound() {
        assert_eq!(
            named("select :id::int, ':id', \":id\" -- :id\n, :n").unwrap(),
            "select '7'::int, ':id', \":id\" -- :id\n, 'it''s'"
        );
        assert_eq!(named("a = ? and b = ?").unwrap(), "a = 'p0' and b = 'p1'");
        assert_eq!(named("select :missing").unwrap_err(), "missing");
        assert_eq!(literal("o'k"), "'o''k'");
    }
}
