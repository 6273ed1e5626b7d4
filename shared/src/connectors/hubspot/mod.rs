//! HubSpot CRM objects (contacts, companies, deals, tickets, custom objects) through the CRM
//! v3 object API, authenticated with a private app's access token.
//!
//! - The sync's destination `object` is the object type (`contacts`, `0-1`, `p123_cars`,
//!   `2-456`); its key is one unique property, used as `idProperty` (`email` for contacts,
//!   or a custom property with unique values), or `hs_object_id` for update and delete.
//! - Upsert -> `batch/upsert`; create -> `batch/create` (an existing record is `Skipped`);
//!   update -> `batch/update` (a missing record is `Skipped`); delete -> `batch/read` to find
//!   the record ids, then `batch/archive` (missing keys are `Skipped`).
//! - `prepare` reads the object's property definitions and checks the key and the mapping;
//!   listing and lookups type the text HubSpot returns by those definitions.
//!
//! Limits: 100 inputs per batch call; private apps on Professional and Enterprise accounts
//! get 190 requests per rolling 10 seconds
//! (<https://developers.hubspot.com/changelog/increasing-our-api-limits>).

mod client;
mod config;
mod delete;
mod errors;
mod read;
mod schema;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::config::SyncDef;
use crate::connectors::OpenContext;
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError, WriteOp};
use crate::record::Values;
use client::Api;
pub use config::HubSpotConnection;
use schema::Schema;

/// HubSpot's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// Requests per second: with a burst of [`BURST`], at most 10 + 18 x 10 = 190 requests fall
/// in any 10 seconds, the Professional/Enterprise private-app limit.
const RATE_PER_SECOND: f64 = 18.0;
/// Token-bucket burst (see [`RATE_PER_SECOND`]).
const BURST: u32 = 10;
/// Inputs per batch call.
const BATCH_RECORDS: usize = 100;
/// Request body budget. HubSpot documents no body limit for batch calls; 100 inputs of
/// ordinary CRM properties stay far below this.
const BATCH_BYTES: usize = 4 << 20;
/// Default request timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A HubSpot destination connection.
pub struct HubSpotDestination {
    api: Arc<Api>,
    /// Property definitions per object type, read once per process.
    schemas: Mutex<HashMap<String, Arc<Schema>>>,
}

/// Opens the connection `name`: reads the access token from the secret `token_env`.
pub async fn open(
    ctx: &OpenContext<'_>,
    config: &HubSpotConnection,
) -> Result<Arc<dyn Destination>, DestinationError> {
    let (name, secrets, requests) = (ctx.name, ctx.secrets, Arc::clone(&ctx.requests));
    let invalid = |message: String| DestinationError::Invalid {
        connection: name.to_string(),
        message,
    };
    let token = secrets
        .get(&config.token_env)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(invalid(format!(
            "the secret `{}` is empty; set it to the private app's access token",
            config.token_env
        )));
    }
    let base_url = config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
    reqwest::Url::parse(base_url)
        .map_err(|e| invalid(format!("base_url `{base_url}` is not a URL: {e}")))?;
    let api = Api::new(name, &config.token_env, base_url, token, requests)?;
    Ok(Arc::new(HubSpotDestination {
        api: Arc::new(api),
        schemas: Mutex::new(HashMap::new()),
    }))
}

/// Whether `object` can be an object type in a URL path (names, `0-1`, `p123_cars`).
fn valid_object(object: &str) -> bool {
    !object.is_empty()
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl HubSpotDestination {
    fn invalid(&self, message: String) -> DestinationError {
        DestinationError::Invalid {
            connection: self.api.connection.clone(),
            message,
        }
    }

    /// The single key property, or why the sync cannot use HubSpot.
    fn key<'a>(&self, sync: &'a SyncDef) -> Result<&'a str, DestinationError> {
        if !valid_object(&sync.object) {
            return Err(self.invalid(format!(
                "`{}` is not a HubSpot object type: use contacts, companies, deals, tickets, \
                 or a custom object's type id (2-1234567) or fully qualified name",
                sync.object
            )));
        }
        match sync.key_fields.as_slice() {
            [key] => Ok(key),
            _ => Err(self.invalid(
                Schema::default()
                    .check(sync)
                    .unwrap_or_else(|| "the key must map to one property".into()),
            )),
        }
    }

    /// The object's property definitions, read once.
    async fn schema(&self, object: &str) -> Result<Arc<Schema>, DestinationError> {
        if let Some(s) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(object)
        {
            return Ok(Arc::clone(s));
        }
        let resp = self
            .api
            .read(&format!("/crm/v3/properties/{object}"), &[], None)
            .await
            .map_err(|e| match e {
                DestinationError::Invalid {
                    connection,
                    message,
                } if message.contains("Unable to infer object type")
                    || message.starts_with("HTTP 404") =>
                {
                    DestinationError::Invalid {
                        connection,
                        message: format!(
                            "HubSpot has no object type `{object}` ({message}); use contacts, \
                             companies, deals, tickets, or a custom object's type id \
                             (2-1234567) or fully qualified name"
                        ),
                    }
                }
                other => other,
            })?;
        let schema = Arc::new(Schema::from_response(&resp));
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(object.to_string(), Arc::clone(&schema));
        Ok(schema)
    }
}

#[async_trait]
impl Destination for HubSpotDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        self.key(sync)?;
        let schema = self.schema(&sync.object).await?;
        match schema.check(sync) {
            Some(problem) => Err(self.invalid(problem)),
            None => Ok(()),
        }
    }

    async fn list(
        &self,
        sync: &SyncDef,
    ) -> Result<BoxStream<'static, Result<Values, DestinationError>>, DestinationError> {
        self.key(sync)?;
        let schema = self.schema(&sync.object).await?;
        let fields: Vec<String> = sync.mapping.keys().cloned().collect();
        Ok(read::list(
            Arc::clone(&self.api),
            schema,
            &sync.object,
            fields,
        ))
    }

    async fn lookup(
        &self,
        sync: &SyncDef,
        keys: &[String],
    ) -> Result<Vec<Values>, DestinationError> {
        let key = self.key(sync)?;
        let schema = self.schema(&sync.object).await?;
        let fields: Vec<String> = sync.mapping.keys().cloned().collect();
        read::lookup(&self.api, &schema, &sync.object, key, &fields, keys).await
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let key = self.key(sync).map_err(|e| SendError::Fatal {
            code: "invalid_sync".into(),
            message: e.to_string(),
        })?;
        if batch.records.is_empty() {
            return Ok(Vec::new());
        }
        match batch.op {
            WriteOp::Delete => delete::delete(&self.api, &sync.object, key, batch).await,
            _ => write::write(&self.api, &sync.object, key, batch).await,
        }
    }
}
