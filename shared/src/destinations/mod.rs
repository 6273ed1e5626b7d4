//! Destination connectors. Each says what it supports and how to write one batch; the
//! delivery framework does the rest.

pub mod braze;
pub mod hubspot;
pub mod meta;
mod postgres;
pub mod salesforce;
mod sql_ident;
mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
mod webhook;

pub use postgres::PostgresDestination;
pub use sqlite::SqliteDestination;
pub use webhook::{sign as webhook_signature, WebhookDestination};
