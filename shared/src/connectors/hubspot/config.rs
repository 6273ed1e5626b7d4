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
use crate::ports::{BatchLimits, DeliveryDefaults, Destination, DestinationError};

/// HubSpot CRM objects (contacts, companies, deals, custom objects) through a private app.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConnection {
    /// Secret holding the private app access token.
    pub token_env: String,
    /// API base URL. Default `https://api.hubapi.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Delivery tuning (defaults follow HubSpot's documented limits).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for HubSpotConnection {
    fn check(&self) -> Vec<Problem> {
        check_http_url("base_url", self.base_url.as_deref())
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
impl DestinationConnector for HubSpotConnection {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn delivery_settings(&self) -> &DeliverySettings {
        &self.delivery
    }

    fn delivery_defaults(&self) -> DeliveryDefaults {
        DeliveryDefaults {
            limits: BatchLimits {
                max_records: super::BATCH_RECORDS,
                max_bytes: super::BATCH_BYTES,
            },
            concurrency: 4,
            rate_per_second: Some(super::RATE_PER_SECOND),
            burst: super::BURST,
            max_attempts: 6,
            timeout: super::TIMEOUT,
            op_max_records: &[],
            op_rates: &[],
        }
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        super::open(ctx, self).await
    }
}
