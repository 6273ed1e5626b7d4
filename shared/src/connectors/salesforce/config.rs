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

/// Salesforce sObjects, with OAuth 2.0 (JWT bearer or client credentials).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConnection {
    /// Where tokens are requested: `https://login.salesforce.com` (JWT bearer, the default),
    /// `https://test.salesforce.com` for sandboxes, or your My Domain URL (client credentials).
    #[serde(default)]
    pub login_url: Option<String>,
    /// REST API version, e.g. `v62.0`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// The connected app's consumer key.
    pub client_id: String,
    /// JWT bearer flow: the Salesforce username the token is issued for.
    #[serde(default)]
    pub username: Option<String>,
    /// JWT bearer flow: secret holding the PEM private key whose certificate the app has.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// Client credentials flow: secret holding the consumer secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// JWT bearer flow: the `aud` claim. Default: `https://test.salesforce.com` for a sandbox
    /// My Domain login URL, `https://login.salesforce.com` for another My Domain, otherwise the
    /// login URL's scheme and host.
    #[serde(default)]
    pub jwt_audience: Option<String>,
    /// How long an access token is used before a new one is requested, in seconds: set it to
    /// the org's session timeout (Salesforce does not say when a token expires). Default 3600.
    /// A token refused as expired is replaced at once whatever this says.
    #[serde(default)]
    pub session_lifetime_seconds: Option<u64>,
    /// Records in one run above which Bulk API 2.0 ingest jobs are used instead of sObject
    /// Collections. Default 10,000.
    #[serde(default)]
    pub bulk_threshold: Option<usize>,
    /// Delivery tuning.
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for SalesforceConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = check_http_url("login_url", self.login_url.as_deref())
            .into_iter()
            .collect();
        let jwt = self.username.is_some() && self.private_key_env.is_some();
        if !jwt && self.client_secret_env.is_none() {
            problems.push(Problem::new("needs credentials").hint(
                "set `username` and `private_key_env` (JWT bearer flow) or `client_secret_env` \
                 (client credentials flow)",
            ));
        }
        problems
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
impl DestinationConnector for SalesforceConnection {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn delivery_settings(&self) -> &DeliverySettings {
        &self.delivery
    }

    fn delivery_defaults(&self) -> DeliveryDefaults {
        DeliveryDefaults {
            limits: BatchLimits {
                max_records: super::COLLECTION_LIMIT,
                max_bytes: super::COLLECTION_MAX_BYTES,
            },
            // No per-second limit is documented (the allocation is per 24 h); a few requests
            // in flight keep record-lock contention (UNABLE_TO_LOCK_ROW) low.
            concurrency: 4,
            rate_per_second: None,
            burst: 1,
            max_attempts: 6,
            timeout: super::COLLECTION_TIMEOUT,
            op_max_records: &[],
            op_rates: &[],
        }
    }

    fn delivery_defaults_for(&self, planned: u64) -> DeliveryDefaults {
        if planned <= self.bulk_threshold.unwrap_or(super::DEFAULT_BULK_THRESHOLD) as u64 {
            return self.delivery_defaults();
        }
        DeliveryDefaults {
            limits: BatchLimits {
                max_records: super::BULK_MAX_RECORDS,
                max_bytes: super::BULK_MAX_BYTES,
            },
            // Salesforce processes each job's internal batches in parallel already.
            concurrency: 2,
            rate_per_second: None,
            burst: 1,
            max_attempts: 4,
            timeout: super::BULK_TIMEOUT,
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
