//! BatchWriteItem in chunks of 25, retrying the items DynamoDB hands back unprocessed.

use std::time::Duration;

use aws_sdk_dynamodb::types::WriteRequest;
use futures::{StreamExt, TryStreamExt};
use rand::Rng;

use super::error::store_error;
use crate::ports::StoreError;

/// DynamoDB's limit on requests per BatchWriteItem.
const BATCH_SIZE: usize = 25;
/// Batches in flight at once; more mostly buys throttling.
const BATCHES_IN_FLIGHT: usize = 8;
/// Attempts per batch before giving up on its unprocessed items (at most 11 s of back-off).
const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Writes `requests` to `table`. Each key must appear at most once: DynamoDB refuses a batch
/// naming a key twice, and batches run concurrently so their order is not kept.
pub(crate) async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<WriteRequest>,
    what: &str,
) -> Result<(), StoreError> {
    let chunks: Vec<Vec<WriteRequest>> = requests.chunks(BATCH_SIZE).map(<[_]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|chunk| write_chunk(client, table, chunk, what))
        .buffer_unordered(BATCHES_IN_FLIGHT)
        .try_collect()
        .await
}

async fn write_chunk(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
    what: &str,
) -> Result<(), StoreError> {
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(|e| store_error(what, e))?;
        // Partial success is how DynamoDB throttles a batch: the rest comes back unprocessed.
        pending = out
            .unprocessed_items
            .and_then(|mut m| m.remove(table))
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
    }
    Err(StoreError::Unavailable(format!(
        "{what}: {} items still unprocessed after {MAX_ATTEMPTS} attempts (throttled)",
        pending.len()
    )))
}

/// Exponential back-off with jitter, so throttled writers do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let exp = FIRST_BACKOFF
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_BACKOFF);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}
