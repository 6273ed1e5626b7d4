//! Statements the fake answers itself instead of sending them to PostgreSQL:
//! `ALTER SESSION SET NAME = value [, ...]` and `ALTER SESSION UNSET NAME [, ...]`, which
//! change the session parameters (`QUERY_TAG` among them) and answer
//! "Statement executed successfully.". Also Snowflake bind values (`bindings`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::redshift_data::sqltext::{literal, substitute, Marker};

/// A parsed `ALTER SESSION`.
#[derive(Debug, PartialEq)]
pub(crate) enum AlterSession {
    Set(Vec<(String, Value)>),
    Unset(Vec<String>),
}

/// Recognises `ALTER SESSION SET/UNSET`; `None` for any other statement.
pub(crate) fn parse_alter_session(sql: &str) -> Option<AlterSession> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let mut words = trimmed.splitn(3, char::is_whitespace);
    let (alter, session) = (words.next()?, words.next()?);
    if !alter.eq_ignore_ascii_case("ALTER") || !session.eq_ignore_ascii_case("SESSION") {
        return None;
    }
    let rest = words.next()?.trim_start();
    let (verb, body) = rest.split_once(char::is_whitespace)?;
    if verb.eq_ignore_ascii_case("UNSET") {
        return Some(AlterSession::Unset(
            body.split(',')
                .map(|n| n.trim().to_ascii_uppercase())
                .collect(),
        ));
    }
    if !verb.eq_ignore_ascii_case("SET") {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = match after.strip_prefix('\'') {
            Some(q) => quoted(q)?,
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (
                    Value::String(after[..end].trim().to_string()),
                    &after[end..],
                )
            }
        };
        out.push((name.trim().to_ascii_uppercase(), value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(AlterSession::Set(out))
}

/// A single-quoted literal's value (after the opening quote) and the text after it.
fn quoted(s: &str) -> Option<(Value, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Some((Value::String(value), &s[i + 1..]));
        }
        value.push(c);
    }
    None
}

/// Applies an `ALTER SESSION` to the session parameters.
pub(crate) fn apply(params: &mut BTreeMap<String, Value>, alter: AlterSession) {
    match alter {
        AlterSession::Set(pairs) => params.extend(pairs),
        AlterSession::Unset(names) => names.iter().for_each(|n| {
            params.remove(n);
        }),
    }
}

/// Binds `bindings` (`{"1": {"type": "TEXT", "value": "x"}, ...}`) to `?` and `:1` markers;
/// `Err` names a marker without a binding.
pub(crate) fn bind(sql: &str, bindings: Option<&Map<String, Value>>) -> Result<String, String> {
    let value_of = |n: usize| -> Option<String> {
        let b = bindings?.get(&n.to_string())?;
        Some(match &b["value"] {
            Value::Null => "NULL".to_string(),
            Value::String(v) => literal(v),
            other => literal(&other.to_string()),
        })
    };
    substitute(sql, |m| match m {
        Marker::Positional(i) => value_of(i + 1),
        Marker::Named(n) => n
            .parse::<usize>()
            .ok()
            .and_then(value_of)
            .or_else(|| Some(format!(":{n}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alter_session_forms() {
        assert_eq!(
            parse_alter_session("alter session set QUERY_TAG = 'retl:sync ''a''', TIMEZONE = UTC;"),
            Some(AlterSession::Set(vec![
                ("QUERY_TAG".into(), json!("retl:sync 'a'")),
                ("TIMEZONE".into(), json!("UTC"))
            ]))
        );
        assert_eq!(
            parse_alter_session("ALTER SESSION UNSET query_tag"),
            Some(AlterSession::Unset(vec!["QUERY_TAG".into()]))
        );
        assert_eq!(parse_alter_session("ALTER TABLE t ADD c int"), None);
        let b = json!({"1": {"type": "FIXED", "value": "5"}, "2": {"type": "TEXT", "value": null}});
        assert_eq!(
            bind("select ?, :2", b.as_object()).unwrap(),
            "select '5', NULL"
        );
        assert_eq!(bind("select ?", None).unwrap_err(), "1");
    }
}
