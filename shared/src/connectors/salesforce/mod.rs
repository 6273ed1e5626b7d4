//! Salesforce sObjects (Contact, Account, `Custom__c`...) through the REST API.
//!
//! - Auth: OAuth 2.0 JWT bearer flow or client credentials ([`auth`]); the token is cached
//!   for the configured session lifetime and replaced once when Salesforce refuses it.
//! - The sync's `object` is the sObject API name; its key is one field: an external id field
//!   (every mode) or `Id` itself (update, delete_only, delete).
//! - Batches of up to 200 records use sObject Collections ([`collections`]); a run planning
//!   more than `bulk_threshold` writes gets batches of up to 10,000 records, which go out as
//!   Bulk API 2.0 ingest jobs ([`bulk`]).
//! - `list` and `lookup` read with SOQL ([`query`]).
//! - Errors: see [`errors`].

mod api;
mod auth;
mod bulk;
mod collections;
mod config;
mod csv;
mod errors;
mod query;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::config::SyncDef;
use crate::connectors::OpenContext;
use crate::delivery::Requester;
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, Secrets, SendError};
use crate::record::Values;
use api::Api;
use auth::{Credentials, Session};
pub use config::SalesforceConnection;
use errors::destination_error;
use query::PageRequest;

const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
const DEFAULT_API_VERSION: &str = "v62.0";
const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_BULK_THRESHOLD: usize = 10_000;
/// Records per sObject Collections request (documented maximum).
const COLLECTION_LIMIT: usize = 200;
/// Bytes per Collections request: no limit is documented for Collections; well below the
/// 50 MB REST body limit so that one slow request stays short.
const COLLECTION_MAX_BYTES: usize = 8 << 20;
/// Records per ingest job: Bulk API 2.0 processes jobs in internal batches of 10,000.
const BULK_MAX_RECORDS: usize = 10_000;
/// Bytes per ingest job, estimated on JSON: the upload limit is 100 MB of CSV (150 MB
/// base64-encoded); the margin absorbs the estimate's error.
const BULK_MAX_BYTES: usize = 64 << 20;
/// Timeout of a Collections request (REST calls may run up to 10 minutes; a batch of 200
/// that takes over 2 minutes is retried).
const COLLECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed for one ingest job, upload to results.
const BULK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Share of the batch timeout an ingest job may run before it is aborted, leaving time to
/// read its results.
const BULK_DEADLINE_SHARE: f64 = 0.8;

/// The sObject and key field a sync writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// sObject API name.
    pub sobject: &'a str,
    /// The key field's API name.
    pub key_field: &'a str,
}

impl Target<'_> {
    /// Whether the key is the record id itself.
    pub(crate) fn key_is_id(&self) -> bool {
        self.key_field.eq_ignore_ascii_case("Id")
    }
}

/// A Salesforce destination connection.
pub struct SalesforceDestination {
    api: Arc<Api>,
    user_timeout: Option<Duration>,
}

/// Opens the connection `name`.
pub async fn open(
    ctx: &OpenContext<'_>,
    config: &SalesforceConnection,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Ok(Arc::new(
        SalesforceDestination::new(ctx.name, config, ctx.secrets, Arc::clone(&ctx.requests))
            .await?,
    ))
}

fn invalid(connection: &str, message: impl Into<String>) -> DestinationError {
    DestinationError::Invalid {
        connection: connection.to_string(),
        message: message.into(),
    }
}

async fn secret(name: &str, secrets: &dyn Secrets, env: &str) -> Result<String, DestinationError> {
    secrets
        .get(env)
        .await
        .map_err(|e| invalid(name, e.to_string()))
}

/// `v62.0` from `62.0`, `v62.0` or `62`.
fn api_version(v: Option<&str>) -> String {
    let v = v.unwrap_or(DEFAULT_API_VERSION).trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    if v.contains('.') {
        format!("v{v}")
    } else {
        format!("v{v}.0")
    }
}

/// An API name: a letter, then letters, digits and underscores (custom names end `__c`).
fn api_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SalesforceDestination {
    /// Reads the credentials and builds the client; no request is sent yet.
    pub async fn new(
        name: &str,
        config: &SalesforceConnection,
        secrets: &dyn Secrets,
        requests: Arc<Requester>,
    ) -> Result<Self, DestinationError> {
        let login_url = config
            .login_url
            .as_deref()
            .unwrap_or(DEFAULT_LOGIN_URL)
            .trim_end_matches('/')
            .to_string();
        let (credentials, secret_text) = match (
            &config.username,
            &config.private_key_env,
            &config.client_secret_env,
        ) {
            (Some(username), Some(key_env), _) => {
                let pem = secret(name, secrets, key_env).await?;
                let key = auth::parse_private_key(&pem).map_err(|e| {
                    invalid(name, format!("the private key in secret `{key_env}`: {e}"))
                })?;
                let credentials = Credentials::Jwt {
                    client_id: config.client_id.clone(),
                    username: username.clone(),
                    audience: config
                        .jwt_audience
                        .clone()
                        .unwrap_or_else(|| auth::audience_for(&login_url)),
                    key,
                };
                (credentials, pem)
            }
            (_, _, Some(secret_env)) => {
                let client_secret = secret(name, secrets, secret_env).await?;
                let credentials = Credentials::ClientCredentials {
                    client_id: config.client_id.clone(),
                    client_secret: client_secret.clone(),
                };
                (credentials, client_secret)
            }
            _ => {
                return Err(invalid(
                    name,
                    "set `username` and `private_key_env` (JWT bearer flow) or `client_secret_env` (client credentials flow)",
                ))
            }
        };
        let http = crate::delivery::http::client_builder()
            .build()
            .map_err(|e| invalid(name, e.to_string()))?;
        let user_timeout = config
            .delivery
            .timeout_seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64);
        let lifetime = config
            .session_lifetime_seconds
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_SESSION_LIFETIME)
            .max(Duration::from_secs(1));
        let session = Session::new(
            http.clone(),
            &login_url,
            credentials,
            &secret_text,
            lifetime,
        );
        let api = Api::new(
            name,
            http,
            session,
            api_version(config.api_version.as_deref()),
            requests,
        );
        Ok(SalesforceDestination {
            api: Arc::new(api),
            user_timeout,
        })
    }

    fn invalid(&self, message: impl Into<String>) -> DestinationError {
        invalid(&self.api.connection, message)
    }

    /// The sync's object and key field, checked against what the API can do.
    fn target<'s>(&self, sync: &'s SyncDef) -> Result<Target<'s>, DestinationError> {
        let [key_field] = sync.key_fields.as_slice() else {
            return Err(self.invalid(format!(
                "a Salesforce sync needs exactly one key field (an external id field or Id), not {}",
                sync.key_fields.len()
            )));
        };
        if !api_name(&sync.object) {
            return Err(self.invalid(format!(
                "`{}` is not an sObject API name (e.g. Contact, Custom__c)",
                sync.object
            )));
        }
        if let Some(bad) = sync.mapping.keys().find(|f| !api_name(f)) {
            return Err(self.invalid(format!(
                "`{bad}` is not a field API name (relationship paths are not supported)"
            )));
        }
        let target = Target {
            sobject: &sync.object,
            key_field,
        };
        if target.key_is_id() && sync.mode.creates_records() {
            return Err(self.invalid(format!(
                "mode {:?} creates records, which Salesforce cannot do by Id: key the sync on an external id field",
                sync.mode
            )));
        }
        if !target.key_is_id() {
            if let Some(id) = sync.mapping.keys().find(|f| f.eq_ignore_ascii_case("id")) {
                return Err(self.invalid(format!(
                    "the mapping writes `{id}`, which only works as the key; remove it or make it the key"
                )));
            }
        }
        Ok(target)
    }

    fn bulk_deadline(&self) -> Duration {
        self.user_timeout
            .unwrap_or(BULK_TIMEOUT)
            .mul_f64(BULK_DEADLINE_SHARE)
    }
}

fn fields(sync: &SyncDef) -> Vec<&str> {
    sync.mapping.keys().map(String::as_str).collect()
}

#[async_trait]
impl Destination for SalesforceDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        let target = self.target(sync)?;
        let mut select = vec!["Id"];
        select.extend(fields(sync));
        // Authenticates, and has Salesforce check the object and every mapped field.
        let soql = format!(
            "SELECT {} FROM {} LIMIT 1",
            query::select_list(&select),
            target.sobject
        );
        query::page(&self.api, &PageRequest::Soql(soql))
            .await
            .map_err(|e| destination_error(&self.api.connection, e))?;
        Ok(())
    }

    async fn list(
        &self,
        sync: &SyncDef,
    ) -> Result<BoxStream<'static, Result<Values, DestinationError>>, DestinationError> {
        let target = self.target(sync)?;
        let names: Vec<String> = sync.mapping.keys().cloned().collect();
        // Records without a key cannot be matched to the model: not worth reading.
        let filter = if target.key_is_id() {
            String::new()
        } else {
            format!(" WHERE {} != null", target.key_field)
        };
        let soql = format!(
            "SELECT {} FROM {}{filter}",
            query::select_list(&fields(sync)),
            target.sobject
        );
        let api = Arc::clone(&self.api);
        let pages = futures::stream::try_unfold(Some(PageRequest::Soql(soql)), move |next| {
            let api = Arc::clone(&api);
            async move {
                let Some(req) = next else {
                    return Ok(None);
                };
                let page = query::page(&api, &req)
                    .await
                    .map_err(|e| destination_error(&api.connection, e))?;
                Ok(Some((page.records, page.next.map(PageRequest::Next))))
            }
        });
        let records = pages
            .map_ok(move |records| {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let projected: Vec<Result<Values, DestinationError>> = records
                    .iter()
                    .map(|r| Ok(query::project(r, &names)))
                    .collect();
                futures::stream::iter(projected)
            })
            .try_flatten();
        Ok(records.boxed())
    }

    async fn lookup(
        &self,
        sync: &SyncDef,
        keys: &[String],
    ) -> Result<Vec<Values>, DestinationError> {
        let target = self.target(sync)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        query::lookup(&self.api, &target, &fields(sync), &keys)
            .await
            .map_err(|e| destination_error(&self.api.connection, e))
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let target = self.target(sync).map_err(|e| SendError::Fatal {
            code: "invalid_sync".into(),
            message: e.to_string(),
        })?;
        if batch.records.is_empty() {
            return Ok(Vec::new());
        }
        if batch.records.len() <= COLLECTION_LIMIT {
            collections::send(&self.api, &target, batch.op, &batch.records).await
        } else {
            bulk::send(
                &self.api,
                &target,
                batch.op,
                &batch.records,
                self.bulk_deadline(),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_normalised() {
        assert_eq!(api_version(None), "v62.0");
        assert_eq!(api_version(Some("60.0")), "v60.0");
        assert_eq!(api_version(Some("v59.0")), "v59.0");
        assert_eq!(api_version(Some("61")), "v61.0");
    }

    #[test]
    fn api_names() {
        assert!(api_name("Contact"));
        assert!(api_name("Ext_Id__c"));
        assert!(!api_name("Account.Ext__c"));
        assert!(!api_name("1x"));
        assert!(!api_name("a b"));
    }
}
