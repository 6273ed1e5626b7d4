//! Destination connectors. Each says what it supports and how to write one batch; the
//! delivery framework does the rest.

mod postgres;
mod sqlite;
mod webhook;

pub use postgres::PostgresDestination;
pub use sqlite::SqliteDestination;
pub use webhook::{sign as webhook_signature, WebhookDestination};
