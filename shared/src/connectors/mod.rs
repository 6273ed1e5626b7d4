//! Connectors: sources (warehouses) and destinations, one folder each, and the registry of
//! them. Adding a connector is its folder plus one line in [`registry!`] below; the traits in
//! [`connector`] list what the folder must provide (see `docs/architecture.md`).

pub mod athena;
#[cfg(feature = "aws-sources")]
mod aws_sdk;
pub mod bigquery;
pub mod braze;
pub mod clickhouse;
mod connector;
pub mod databricks;
pub mod hubspot;
pub mod meta_audience;
pub mod mysql;
pub mod postgres;
pub mod redshift;
mod registry;
use registry::registry;
pub mod salesforce;
pub mod snowflake;
mod sql_ident;
pub mod sqlite;
pub mod sqs;
#[cfg(test)]
mod tests;
pub mod values;
pub mod webhook;

pub use connector::{
    check_http_url, Connector, DeployCheck, DestinationConnector, OpenContext, Problem,
    SourceConnector,
};

registry! {
    "sqlite" => Sqlite(sqlite::SqliteConnection),
    "postgres" => Postgres(postgres::PostgresConnection),
    "snowflake" => Snowflake(snowflake::SnowflakeConnection),
    "bigquery" => BigQuery(bigquery::BigQueryConnection),
    "mysql" => Mysql(mysql::MySqlConnection),
    "clickhouse" => Clickhouse(clickhouse::ClickHouseConnection),
    "redshift" => Redshift(redshift::RedshiftConnection),
    "databricks" => Databricks(databricks::DatabricksConnection),
    "athena" => Athena(athena::AthenaConnection),
    "webhook" => Webhook(webhook::WebhookConnection),
    "hubspot" => Hubspot(hubspot::HubSpotConnection),
    "salesforce" => Salesforce(salesforce::SalesforceConnection),
    "braze" => Braze(braze::BrazeConnection),
    "meta_audience" => MetaAudience(meta_audience::MetaAudienceConnection),
    "sqs" => Sqs(sqs::SqsConnection),
}

/// The model SQL without trailing semicolons, so it can be wrapped as a subquery.
pub(crate) fn subquery_sql(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}
