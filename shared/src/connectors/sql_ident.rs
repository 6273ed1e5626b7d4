//! SQL identifier quoting shared by the PostgreSQL and SQLite destinations (both follow the
//! SQL standard: double quotes, with embedded quotes doubled).

/// `"name"`.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `"schema"."table"` (or `"table"`).
pub(crate) fn quote_table(object: &str) -> String {
    object
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_table("public.t"), r#""public"."t""#);
    }
}
