//! Amazon SQS: one message per record change (event forwarding, change feeds). See
//! `README.md` in this folder.

#[cfg(feature = "aws")]
mod destination;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::config::DeliverySettings;
use crate::modes::Capabilities;
use crate::ports::{BatchLimits, DeliveryDefaults, Destination, DestinationError};
#[cfg(feature = "aws")]
pub use destination::SqsDestination;

/// An Amazon SQS queue receiving one message per record change (event forwarding).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqsConnection {
    /// The queue URL.
    pub queue_url: String,
    /// For FIFO queues: the message group (default: the record key, so each record's events
    /// stay in order).
    #[serde(default)]
    pub message_group_id: Option<String>,
    /// Largest batch payload in bytes (SQS allows 1 MiB; older limits were 256 KiB).
    #[serde(default)]
    pub max_batch_bytes: Option<usize>,
    /// Delivery tuning.
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for SqsConnection {
    fn check(&self) -> Vec<Problem> {
        check_http_url("queue_url", Some(&self.queue_url))
            .into_iter()
            .collect()
    }

    fn docs(&self) -> &'static str {
        include_str!("README.md")
    }

    fn source(&self) -> Option<&dyn SourceConnector> {
        None
    }

    fn destination(&self) -> Option<&dyn DestinationConnector> {
        Some(self)
    }
}

#[async_trait]
impl DestinationConnector for SqsConnection {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            upsert: true,
            create: true,
            // A message never overwrites anything.
            create_keeps_existing: true,
            delete: true,
            ..Capabilities::default()
        }
    }

    fn delivery_settings(&self) -> &DeliverySettings {
        &self.delivery
    }

    fn delivery_defaults(&self) -> DeliveryDefaults {
        DeliveryDefaults {
            limits: BatchLimits {
                max_records: 10,
                max_bytes: self.max_batch_bytes.unwrap_or(1 << 20),
            },
            concurrency: 8,
            rate_per_second: None,
            burst: 1,
            max_attempts: 5,
            timeout: Duration::from_secs(30),
            op_max_records: &[],
            op_rates: &[],
        }
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        open(self, ctx).await
    }
}

#[cfg(feature = "aws")]
async fn open(
    c: &SqsConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Destination>, DestinationError> {
    destination::open(ctx.name, c).await
}

#[cfg(not(feature = "aws"))]
async fn open(
    _c: &SqsConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Err(ctx.destination_invalid(
        "this retl was built without AWS support (the `aws` feature), which SQS needs",
    ))
}
