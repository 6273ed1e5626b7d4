//! The statements a model runs as: `DESCRIBE TABLE (<model>)` for its columns, then the model
//! wrapped so DateTime columns render in UTC and filtered by the high watermark.
//!
//! ClickHouse 18.16 has no query parameters (`{name:Type}` came in 19.15), so the watermark is
//! a typed literal (`toDate('2024-01-31')`, `toDecimal128('1.5', 1)`, a quoted string) built
//! here from the typed bound, with quotes and backslashes escaped: the bound stays data.

use super::types::{date_time_depth, ChType};
use crate::connectors::{subquery_sql, values};
use crate::ports::{Bound, ModelQuery};

/// `` `name` `` with backslashes and backticks escaped (ClickHouse's identifier quoting).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `'text'` with backslashes and quotes escaped (ClickHouse's string literal).
pub(crate) fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The statement listing the model's columns and their types.
pub(crate) fn describe_sql(query: &ModelQuery) -> String {
    format!("DESCRIBE TABLE ({})", subquery_sql(&query.sql))
}

/// The bound as a typed literal, or why it cannot be one.
fn literal(bound: &Bound) -> Result<String, String> {
    match bound {
        Bound::Integer(t) => {
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("the watermark `{t}` is not an integer"));
            }
            Ok(t.clone())
        }
        Bound::Decimal(t) => {
            values::decimal(t).ok_or_else(|| format!("the watermark `{t}` is not a decimal"))?;
            let scale = t.split_once('.').map_or(0, |(_, f)| f.len());
            Ok(format!("toDecimal128({}, {scale})", quote_string(t)))
        }
        // DateTime has whole seconds; a bound with a fraction compares the same truncated:
        // a whole-second value v is > s + f (0 < f < 1) exactly when v > s.
        Bound::Instant(t) => Ok(format!(
            "toDateTime({}, 'UTC')",
            quote_string(&t.format("%Y-%m-%d %H:%M:%S").to_string())
        )),
        // ClickHouse has no zoneless timestamps: retl reads DateTime in UTC, so a zoneless
        // bound is a UTC time.
        Bound::Naive(t) => Ok(format!(
            "toDateTime({}, 'UTC')",
            quote_string(&t.format("%Y-%m-%d %H:%M:%S").to_string())
        )),
        Bound::Date(d) => Ok(format!("toDate('{}')", d.format("%Y-%m-%d"))),
        Bound::Text(t) => Ok(quote_string(t)),
    }
}

/// The select list: every column by position, DateTime ones (and arrays of them) in UTC.
fn select_list(columns: &[(String, ChType)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| {
            let col = format!("q.{}", quote_ident(name));
            match date_time_depth(ty) {
                Some(0) => format!("toTimeZone({col}, 'UTC')"),
                Some(1) => format!("arrayMap(x -> toTimeZone(x, 'UTC'), {col})"),
                _ => col,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The model's statement over its described `columns`. The output's column names are the
/// expressions; the reader names values by position from `columns`.
pub(crate) fn model_sql(
    query: &ModelQuery,
    columns: &[(String, ChType)],
) -> Result<String, String> {
    Ok(format!(
        "{} FORMAT TabSeparatedWithNamesAndTypes",
        select_sql(query, columns)?
    ))
}

/// The model's `SELECT` (what [`model_sql`] formats), for statements that wrap it.
pub(crate) fn select_sql(
    query: &ModelQuery,
    columns: &[(String, ChType)],
) -> Result<String, String> {
    let mut sql = format!(
        "SELECT {} FROM ({}) AS q",
        select_list(columns),
        subquery_sql(&query.sql)
    );
    if let Some(f) = &query.filter {
        if !columns.iter().any(|(n, _)| *n == f.column) {
            return Err(format!(
                "the incremental column `{}` is not a column of the model",
                f.column
            ));
        }
        sql.push_str(&format!(
            " WHERE q.{} > {}",
            quote_ident(&f.column),
            literal(&f.after)?
        ));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::RowFilter;

    fn query(filter: Option<(&str, Bound)>) -> ModelQuery {
        let mut q = ModelQuery::new("select * from t;", "s", "r");
        q.filter = filter.map(|(column, after)| RowFilter {
            column: column.into(),
            after,
        });
        q
    }

    fn columns() -> Vec<(String, ChType)> {
        vec![
            ("id".into(), ChType::Int),
            ("at".into(), ChType::Nullable(Box::new(ChType::DateTime))),
            ("label".into(), ChType::Text),
        ]
    }

    #[test]
    fn datetimes_render_in_utc() {
        let sql = model_sql(&query(None), &columns()).expect("a statement");
        assert_eq!(
            sql,
            "SELECT q.`id`, toTimeZone(q.`at`, 'UTC'), q.`label` FROM (select * from t) AS q \
             FORMAT TabSeparatedWithNamesAndTypes"
        );
    }

    #[test]
    fn the_watermark_is_an_escaped_typed_literal() {
        let sql = model_sql(
            &query(Some(("label", Bound::Text("c' OR '1'='1 \\".into())))),
            &columns(),
        )
        .expect("a statement");
        assert!(
            sql.contains(r"WHERE q.`label` > 'c\' OR \'1\'=\'1 \\' FORMAT"),
            "{sql}"
        );
        let naive = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .expect("a time");
        let sql = model_sql(&query(Some(("at", Bound::Naive(naive)))), &columns()).unwrap();
        assert!(sql.contains("WHERE q.`at` > toDateTime('2024-03-01 10:00:00', 'UTC')"));
        let sql = model_sql(
            &query(Some(("id", Bound::Decimal("-1.50".into())))),
            &columns(),
        )
        .unwrap();
        assert!(sql.contains("> toDecimal128('-1.50', 2)"));
        assert!(model_sql(
            &query(Some(("id", Bound::Integer("1 OR 1".into())))),
            &columns()
        )
        .is_err());
        assert!(model_sql(
            &query(Some(("nope", Bound::Integer("1".into())))),
            &columns()
        )
        .is_err());
        assert_eq!(quote_ident("a`b"), "`a\\`b`");
    }
}
