//! Connection settings of the SaaS and AWS destinations. Credentials are never written here:
//! each `*_env` field names a secret (an environment variable locally, a Secrets Manager
//! secret `<prefix><name>` on AWS).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::DeliverySettings;

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
