use std::time::Duration;

use crate::config::DeliverySettings;
use crate::ports::{BatchLimits, DeliveryDefaults};

/// Effective delivery settings: the connector's documented defaults, overridden by the user's
/// `delivery:` block, and never above the API's hard batch limits.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Batch limits.
    pub limits: BatchLimits,
    /// Maximum requests in flight.
    pub concurrency: usize,
    /// Requests per second (`None`: unlimited).
    pub rate_per_second: Option<f64>,
    /// Token-bucket burst.
    pub burst: u32,
    /// Attempts per batch.
    pub max_attempts: u32,
    /// Retries allowed per run.
    pub retry_budget: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// First backoff delay.
    pub base_backoff: Duration,
    /// Longest backoff delay.
    pub max_backoff: Duration,
    /// Longest `Retry-After` a run waits for; a destination asking for more (a daily quota)
    /// gets its records marked failed, to be planned again by a later run.
    pub max_retry_after: Duration,
}

impl DeliveryConfig {
    /// Merges connector defaults and user settings.
    pub fn resolve(defaults: DeliveryDefaults, user: Option<&DeliverySettings>) -> Self {
        let user = user.cloned().unwrap_or_default();
        let max_records = user
            .batch_size
            .map(|n| n.clamp(1, defaults.limits.max_records))
            .unwrap_or(defaults.limits.max_records);
        DeliveryConfig {
            limits: BatchLimits {
                max_records,
                max_bytes: defaults.limits.max_bytes,
            },
            concurrency: user.concurrency.unwrap_or(defaults.concurrency).max(1),
            rate_per_second: user.rate_per_second.or(defaults.rate_per_second),
            burst: defaults.burst.max(1),
            max_attempts: user.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            retry_budget: user.retry_budget.unwrap_or(1000),
            timeout: user
                .timeout_seconds
                .map(Duration::from_secs_f64)
                .unwrap_or(defaults.timeout),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}
