//! The connection settings and the connector's registry entry: checks, capabilities and
//! opening. Credentials are never written here: each `*_env` field names a secret.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::DeliverySettings;
use crate::connectors::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::modes::Capabilities;
use crate::ports::{BatchLimits, DeliveryDefaults, Destination, DestinationError, WriteOp};
use std::time::Duration;

/// Braze user profiles (`/users/track` attributes, `/users/delete`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrazeConnection {
    /// The REST endpoint of your Braze instance, e.g. `https://rest.iad-01.braze.com`.
    pub rest_endpoint: String,
    /// Secret holding the REST API key.
    pub api_key_env: String,
    /// Delivery tuning.
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for BrazeConnection {
    fn check(&self) -> Vec<Problem> {
        check_http_url("rest_endpoint", Some(&self.rest_endpoint))
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
impl DestinationConnector for BrazeConnection {
    fn capabilities(&self) -> Capabilities {
        // Braze has no way to read users back: no listing, no lookups, and a create overwrites.
        Capabilities {
            upsert: true,
            // `/users/track` creates a user or overwrites its attributes.
            create: true,
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
                max_records: super::TRACK_MAX,
                // Braze documents no body size limit; this only keeps huge custom attributes
                // from building enormous requests.
                max_bytes: 4 << 20,
            },
            concurrency: 8,
            rate_per_second: Some(super::TRACK_RATE_PER_SECOND),
            burst: 100,
            max_attempts: 6,
            timeout: Duration::from_secs(30),
            op_max_records: &[(WriteOp::Delete, super::DELETE_MAX)],
            op_rates: &[(WriteOp::Delete, super::DELETE_PER_MINUTE)],
        }
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        super::open(ctx, self).await
    }
}
