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
use std::time::Duration;

/// A Meta (Facebook) custom audience: members added and removed with normalised, SHA-256
/// hashed identifiers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetaAudienceConnection {
    /// Secret holding a system-user access token with `ads_management`.
    pub access_token_env: String,
    /// Graph API version. Default `v25.0`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// Graph API base URL. Default `https://graph.facebook.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Delivery tuning.
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for MetaAudienceConnection {
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
impl DestinationConnector for MetaAudienceConnection {
    fn capabilities(&self) -> Capabilities {
        // Audience membership cannot be read back: no listing, no lookups.
        Capabilities {
            upsert: true,
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
                max_records: super::MAX_ROWS,
                // Meta documents a row limit, not a size limit; this bounds a request of
                // 10,000 rows of every key (about 10 MB once hashed).
                max_bytes: 16 << 20,
            },
            concurrency: 4,
            // Standard-tier ad-account score: 9,000 points decaying over 300 s, 3 points per
            // write, so 10 writes per second; Development-tier apps must set far less.
            rate_per_second: Some(10.0),
            burst: 10,
            max_attempts: 6,
            timeout: Duration::from_secs(60),
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
