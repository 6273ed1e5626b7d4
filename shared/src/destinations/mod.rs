//! Destination connectors. Each says what it supports and how to write one batch; the
//! delivery framework does the rest.

mod postgres;
mod webhook;

pub use postgres::PostgresDestination;
pub use webhook::{sign as webhook_signature, WebhookDestination};
