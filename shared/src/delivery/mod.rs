//! The delivery framework shared by every destination: batching by records and bytes, a token
//! bucket and adaptive (AIMD) concurrency per destination connection, retries with jittered
//! exponential backoff that honour Retry-After, a retry budget per run, and splitting of
//! rejected batches until the bad record is isolated. Connectors only write one batch.

mod batcher;
mod concurrency;
mod driver;
pub mod http;
mod rate;
mod settings;

pub use batcher::batches;
pub use concurrency::AdaptiveConcurrency;
pub use driver::{Delivered, Deliverer, DeliveryStatsSnapshot};
pub use rate::rate_limiter;
pub use settings::DeliveryConfig;
