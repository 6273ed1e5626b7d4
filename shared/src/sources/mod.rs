//! Warehouse connectors: SQLite (embedded) and PostgreSQL.

mod postgres;
mod sqlite;

pub use postgres::PostgresSource;
pub(crate) use sqlite::to_json as sqlite_to_json;
pub use sqlite::SqliteSource;

/// The model SQL without trailing semicolons, so it can be wrapped as a subquery.
pub(crate) fn subquery_sql(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}
