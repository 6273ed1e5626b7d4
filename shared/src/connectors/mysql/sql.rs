//! The statement a model runs as: the model wrapped as a derived table, tagged with a comment
//! the process list and slow log show, limited by the server's own statement timeout (spelled
//! differently by MariaDB and MySQL), and filtered by the high watermark as a bound parameter.

use mysql_async::Value;

use crate::connectors::subquery_sql;
use crate::ports::{Bound, ModelQuery};

/// Which server answered: the statement timeout is spelled differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// MariaDB: `SET STATEMENT max_statement_time=<seconds> FOR <select>`.
    MariaDb,
    /// MySQL 5.7.8+: the optimizer hint `/*+ MAX_EXECUTION_TIME(<ms>) */`.
    MySql,
}

impl Flavour {
    /// The flavour of a server from its `VERSION()` (`10.11.6-MariaDB-0+deb12u1`, `8.0.36`).
    pub(crate) fn of_version(version: &str) -> Flavour {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        }
    }
}

/// `` `name` `` with embedded backticks doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The query tag as a comment: only characters that cannot end the comment.
fn tag_comment(query: &ModelQuery) -> String {
    let tag: String = query
        .tag()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.:@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/* {tag} */")
}

/// The comparison of the watermark column with the bound: a placeholder (cast from text where
/// the bound is not a plain integer, so the server compares as the column's kind) and its value.
/// Timestamps with time zone compare in UTC: the session's `time_zone` is `+00:00`.
fn bound_param(bound: &Bound) -> (&'static str, Value) {
    let text = |t: String| Value::Bytes(t.into_bytes());
    match bound {
        Bound::Integer(t) => match (t.parse::<i64>(), t.parse::<u64>()) {
            (Ok(i), _) => ("?", Value::Int(i)),
            (_, Ok(u)) => ("?", Value::UInt(u)),
            _ => ("CAST(? AS DECIMAL(65,0))", text(t.clone())),
        },
        // 30 is the largest scale MySQL and MariaDB have, so no column has more digits.
        Bound::Decimal(t) => ("CAST(? AS DECIMAL(65,30))", text(t.clone())),
        Bound::Instant(t) => (
            "CAST(? AS DATETIME(6))",
            text(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        ),
        Bound::Naive(t) => (
            "CAST(? AS DATETIME(6))",
            text(t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
        ),
        Bound::Date(d) => ("CAST(? AS DATE)", text(d.format("%Y-%m-%d").to_string())),
        Bound::Text(t) => ("?", text(t.clone())),
    }
}

/// The statement of `query` and its parameters. With a timeout the server itself stops the
/// statement (MariaDB error 1969, MySQL 3024); the source also kills it from outside.
pub(crate) fn model_sql(
    query: &ModelQuery,
    flavour: Flavour,
    timeout_seconds: Option<u64>,
) -> (String, Vec<Value>) {
    let sql = subquery_sql(&query.sql);
    let hint = match (flavour, timeout_seconds) {
        (Flavour::MySql, Some(s)) => format!("/*+ MAX_EXECUTION_TIME({}) */ ", s * 1000),
        _ => String::new(),
    };
    let mut statement = format!("{} SELECT {hint}q.* FROM ({sql}) AS q", tag_comment(query));
    let mut params = Vec::new();
    if let Some(f) = &query.filter {
        let (placeholder, value) = bound_param(&f.after);
        statement.push_str(&format!(
            " WHERE q.{} > {placeholder}",
            quote_ident(&f.column)
        ));
        params.push(value);
    }
    if let (Flavour::MariaDb, Some(s)) = (flavour, timeout_seconds) {
        statement = format!("SET STATEMENT max_statement_time={s} FOR {statement}");
    }
    (statement, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowFilter;

    fn query(filter: Option<(&str, Bound)>) -> ModelQuery {
        let mut q = ModelQuery::new("select id from t;", "people", "01J*/x");
        q.filter = filter.map(|(column, after)| RowFilter {
            column: column.into(),
            after,
        });
        q
    }

    #[test]
    fn flavours_spell_the_timeout_their_way() {
        let (sql, params) = model_sql(&query(None), Flavour::MariaDb, Some(2));
        assert_eq!(
            sql,
            "SET STATEMENT max_statement_time=2 FOR /* retl:people:01J__x */ \
             SELECT q.* FROM (select id from t) AS q"
        );
        assert!(params.is_empty());
        let (sql, _) = model_sql(&query(None), Flavour::MySql, Some(2));
        assert_eq!(
            sql,
            "/* retl:people:01J__x */ SELECT /*+ MAX_EXECUTION_TIME(2000) */ q.* \
             FROM (select id from t) AS q"
        );
        let (sql, _) = model_sql(&query(None), Flavour::MySql, None);
        assert!(!sql.contains("MAX_EXECUTION_TIME"));
        assert_eq!(
            Flavour::of_version("10.11.6-MariaDB-0+deb12u1"),
            Flavour::MariaDb
        );
        assert_eq!(Flavour::of_version("8.0.36"), Flavour::MySql);
    }

    #[test]
    fn the_watermark_is_a_parameter_of_the_bound_kind() {
        let (sql, params) = model_sql(
            &query(Some((
                "se`q",
                Bound::Integer("18446744073709551615".into()),
            ))),
            Flavour::MySql,
            None,
        );
        assert!(sql.ends_with("WHERE q.`se``q` > ?"), "{sql}");
        assert_eq!(params, vec![Value::UInt(u64::MAX)]);
        let (sql, params) = model_sql(
            &query(Some(("label", Bound::Text("c' OR '1'='1".into())))),
            Flavour::MySql,
            None,
        );
        assert!(sql.ends_with("WHERE q.`label` > ?") && !sql.contains("OR"));
        assert_eq!(params, vec![Value::Bytes(b"c' OR '1'='1".to_vec())]);
        let naive = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .and_then(|d| d.and_hms_milli_opt(10, 0, 0, 500))
            .expect("a time");
        let (sql, params) = model_sql(
            &query(Some(("at", Bound::Naive(naive)))),
            Flavour::MySql,
            None,
        );
        assert!(sql.ends_with("> CAST(? AS DATETIME(6))"));
        assert_eq!(
            params,
            vec![Value::Bytes(b"2024-03-01 10:00:00.500000".to_vec())]
        );
    }
}
