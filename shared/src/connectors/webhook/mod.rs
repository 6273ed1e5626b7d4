//! Webhook: JSON batches POSTed to an HTTP endpoint, signed with HMAC-SHA256. The receiver
//! contract is in `README.md` in this folder.

mod destination;
mod results;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Connector, DestinationConnector, OpenContext, Problem, SourceConnector};
use crate::config::DeliverySettings;
use crate::modes::Capabilities;
use crate::ports::{BatchLimits, DeliveryDefaults, Destination, DestinationError};
pub use destination::{sign, WebhookDestination};

/// An HTTP endpoint that receives JSON batches signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConnection {
    /// Endpoint URL that receives POSTed batches.
    pub url: String,
    /// Name of the secret used to sign each body (`X-Retl-Signature: sha256=<hex>`).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Delivery tuning (batch size, concurrency, rate, retries).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for WebhookConnection {
    fn check(&self) -> Vec<Problem> {
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Vec::new(),
            _ => vec![
                Problem::new(format!("`{}` is not an http(s) URL", self.url))
                    .hint("write https://example.com/path"),
            ],
        }
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
impl DestinationConnector for WebhookConnection {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            upsert: true,
            create: true,
            // The receiver contract: a create of a record it already holds is `skipped`.
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
                max_records: 500,
                max_bytes: 5 << 20,
            },
            concurrency: 4,
            rate_per_second: None,
            burst: 1,
            max_attempts: 6,
            timeout: Duration::from_secs(30),
            op_max_records: &[],
            op_rates: &[],
        }
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        let secret = match &self.secret_env {
            Some(s) => Some(
                ctx.secret(s)
                    .await
                    .map_err(|m| ctx.destination_invalid(m))?,
            ),
            None => None,
        };
        Ok(Arc::new(WebhookDestination::new(
            ctx.name,
            self.url.clone(),
            secret,
            self.headers.clone(),
        )?))
    }
}
