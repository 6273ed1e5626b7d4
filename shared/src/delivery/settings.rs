use std::time::Duration;

use super::requester::RequestPolicy;
use crate::config::DeliverySettings;
use crate::ports::{BatchLimits, DeliveryDefaults};

/// Effective delivery settings: the connector's documented defaults, overridden by the user's
/// `delivery:` block, and never above the API's hard batch limits.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Batch limits.
    pub limits: BatchLimits,
    /// How requests are paced, bounded and retried.
    pub policy: RequestPolicy,
}

impl DeliveryConfig {
    /// Merges connector defaults and user settings.
    pub fn resolve(defaults: &DeliveryDefaults, user: &DeliverySettings) -> Self {
        let max_records = user
            .batch_size
            .map(|n| n.clamp(1, defaults.limits.max_records))
            .unwrap_or(defaults.limits.max_records);
        DeliveryConfig {
            limits: BatchLimits {
                max_records,
                max_bytes: defaults.limits.max_bytes,
            },
            policy: RequestPolicy {
                rate_per_second: user.rate_per_second.or(defaults.rate_per_second),
                burst: defaults.burst.max(1),
                op_rates: defaults.op_rates.to_vec(),
                concurrency: user.concurrency.unwrap_or(defaults.concurrency).max(1),
                max_attempts: user.max_attempts.unwrap_or(defaults.max_attempts).max(1),
                retry_budget: user.retry_budget.unwrap_or(1000),
                timeout: user
                    .timeout_seconds
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .unwrap_or(defaults.timeout),
                base_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(30),
                max_retry_after: Duration::from_secs(300),
            },
        }
    }
}
