//! Protocol fakes of SaaS destination APIs and warehouse query APIs, written from the
//! vendors' public API references.
//!
//! Each fake is a real HTTP server on `127.0.0.1:0` that follows one vendor's documented
//! contract closely enough to test a connector against it: authentication, batch limits,
//! per-record error shapes, rate-limit answers and headers. Every fake keeps its records
//! in memory, logs the requests it answered ([`LoggedRequest`]), lets tests add validation
//! rules ([`Rule`]), and applies a shared, runtime-adjustable [`FaultPlan`] (throttling,
//! 5xx, latency, hangs) before handling a request.
//!
//! - [`HubSpotFake`]: HubSpot CRM v3 batch object API
//!   (<https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/objects/batch/create-objects>).
//! - [`SalesforceFake`]: Salesforce OAuth token endpoint (JWT bearer, client credentials),
//!   REST sObject Collections, SOQL query and Bulk API 2.0 ingest
//!   (<https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-create.html>,
//!   <https://developer.salesforce.com/docs/platform/api-asynch/guide/bulk-api-2-0-ingest.html>).
//! - [`BrazeFake`]: Braze REST `/users/track` and `/users/delete`
//!   (<https://www.braze.com/docs/api/endpoints/user_data/post_user_track/>).
//! - [`MetaFake`]: Meta Marketing API customer-file custom audiences, `/{audience}/users`
//!   (<https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users>).
//!
//! - [`RedshiftDataFake`]: Amazon Redshift Data API (AWS JSON 1.1: ExecuteStatement,
//!   DescribeStatement, GetStatementResult, CancelStatement)
//!   (<https://docs.aws.amazon.com/redshift-data/latest/APIReference/Welcome.html>).
//! - [`DatabricksFake`]: Databricks SQL Statement Execution API 2.0 and OAuth M2M
//!   (<https://docs.databricks.com/api/workspace/statementexecution>).
//! - [`SnowflakeFake`]: the Snowflake drivers' REST protocol for chunked results, key-pair
//!   login, session renewal, async queries and abort (what fakesnow does not cover).
//! - [`BigQueryFake`]: BigQuery's REST job API for running jobs (`jobComplete: false`),
//!   `getQueryResults` polling and paging, and `jobs.cancel` (what bqemulator does not do),
//!   over a generated result.
//!
//! The three warehouse fakes run the SQL they receive on a real PostgreSQL whose URL the
//! test passes in, and render PostgreSQL's results in each vendor's types and encodings.
//!
//! Each vendor module's doc lists the contract details it follows with their sources, and
//! the choices made where the vendor's documentation is silent or ambiguous.

pub mod bigquery;
pub mod braze;
pub mod databricks;
pub mod faults;
mod guard;
pub mod hubspot;
mod log;
pub mod meta;
pub mod redshift_data;
mod rules;
pub mod salesforce;
pub mod server;
pub mod snowflake;
mod util;

pub use bigquery::{BigQueryCall, BigQueryConfig, BigQueryFake};
pub use braze::{BrazeConfig, BrazeFake, TrackLimit};
pub use databricks::{DatabricksCall, DatabricksConfig, DatabricksFake};
pub use faults::{FaultPlan, FaultStats, Faults, RateInfo, RateLimit, Throttle, WindowKind};
pub use hubspot::{BatchErrorMode, HubSpotConfig, HubSpotFake};
pub use log::LoggedRequest;
pub use meta::{MetaConfig, MetaFake, MetaThrottle, SessionRecord};
pub use redshift_data::{RedshiftCall, RedshiftDataConfig, RedshiftDataFake};
pub use rules::{Check, Rule};
pub use salesforce::{ClientCredentials, JwtClient, RecordFault, SalesforceConfig, SalesforceFake};
pub use server::FakeServer;
pub use snowflake::{
    ChunkAuth, LoginRecord, QueryRecord, ResultFormat, SnowflakeConfig, SnowflakeFake,
    SnowflakeUser,
};
