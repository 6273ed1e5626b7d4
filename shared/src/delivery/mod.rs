//! The request and delivery framework shared by every connector. Every request a connection
//! makes goes through its [`Requester`]: a token bucket (and per-operation buckets), `Retry-After`
//! pauses shared by the connection, timeouts, and retries with jittered exponential backoff
//! within a retry budget. On top of it, the [`Deliverer`] batches records by count and bytes,
//! adapts concurrency (AIMD), and splits rejected batches until the bad record is isolated.
//! Connectors only build requests, classify answers into `SendError`, and write one batch.

mod batcher;
mod concurrency;
mod driver;
pub mod http;
mod rate;
mod requester;
mod settings;

pub use batcher::batches;
pub use concurrency::AdaptiveConcurrency;
pub use driver::{Delivered, Deliverer, DeliveryStatsSnapshot};
pub use requester::{RequestPolicy, RequestStats, Requester, Retry};
pub use settings::DeliveryConfig;
