//! Braze user profiles (`object: users`) through the REST API
//! (<https://www.braze.com/docs/api/endpoints/user_data/>).
//!
//! - Upsert (upsert, mirror) and Create (append): `POST /users/track` with one `attributes`
//!   object per record, `{"external_id": <key>, <mapped fields>...}`, at most 75 objects per
//!   request (the combined attributes/events/purchases limit of the current docs).
//!   Update sends the same with `_update_existing_only: true`, so a missing user is not created.
//! - Delete: `POST /users/delete` with `{"external_ids": [...]}`, at most 50 per request.
//!
//! The key is the user's `external_id`: the sync's single key field, whatever its name (a key
//! field called `user_id` is sent as `external_id` and not also as a `user_id` attribute).
//! Braze cannot list or look users up, so its capabilities have neither listing nor lookups.
//!
//! Outcomes: a 2xx `/users/track` answer may carry non-fatal `errors[]` naming objects by
//! their index in the `attributes` array: those records are rejected with Braze's text, the
//! others delivered. `/users/delete` answers only a count of ids queued, so every id of an
//! accepted request is reported delivered. 429 is rate limited (waiting for `Retry-After`, else
//! `X-RateLimit-Reset`); 5xx and timeouts are retried; 401/403/404 stop the delivery; other 4xx
//! split the batch.

mod config;
mod request;
mod response;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};

use crate::config::SyncDef;
use crate::connectors::OpenContext;
use crate::delivery::http::send;
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError, WriteOp};
pub use config::BrazeConnection;

/// `/users/track` objects per request (Braze API limits: 75 combined).
const TRACK_MAX: usize = 75;
/// External ids per `/users/delete` request.
const DELETE_MAX: usize = 50;
/// `/users/track`: 3,000 requests per 3 seconds per workspace.
const TRACK_RATE_PER_SECOND: f64 = 1_000.0;
/// `/users/delete` (shared with alias, identify and merge): 20,000 requests per minute.
const DELETE_PER_MINUTE: u32 = 20_000;

/// A Braze destination connection.
pub struct BrazeDestination {
    connection: String,
    endpoint: String,
    auth: HeaderValue,
    client: reqwest::Client,
}

/// Opens the connection `name`, reading the REST API key from the secret `api_key_env`.
pub async fn open(
    ctx: &OpenContext<'_>,
    config: &BrazeConnection,
) -> Result<Arc<dyn Destination>, DestinationError> {
    let (name, secrets, _requests) = (ctx.name, ctx.secrets, Arc::clone(&ctx.requests));
    let invalid = |message: String| DestinationError::Invalid {
        connection: name.to_string(),
        message,
    };
    let key = secrets
        .get(&config.api_key_env)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Arc::new(BrazeDestination::new(
        name,
        &config.rest_endpoint,
        key.trim(),
    )?))
}

impl BrazeDestination {
    /// A destination writing to the Braze instance at `rest_endpoint` with `api_key`.
    pub fn new(
        connection: &str,
        rest_endpoint: &str,
        api_key: &str,
    ) -> Result<Self, DestinationError> {
        let invalid = |message: String| DestinationError::Invalid {
            connection: connection.to_string(),
            message,
        };
        let parsed = url::Url::parse(rest_endpoint.trim()).map_err(|e| {
            invalid(format!(
                "rest_endpoint `{rest_endpoint}` is not a URL ({e}); use your instance's REST \
                 endpoint, e.g. https://rest.iad-01.braze.com"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "rest_endpoint `{rest_endpoint}` must be an https:// URL"
            )));
        }
        if api_key.is_empty() {
            return Err(invalid("the REST API key secret is empty".into()));
        }
        // The key only travels in this header, marked sensitive so that it is never printed.
        let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}")).map_err(|_| {
            invalid("the REST API key holds characters an HTTP header cannot carry".into())
        })?;
        auth.set_sensitive(true);
        let client = crate::delivery::http::client_builder()
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(BrazeDestination {
            connection: connection.to_string(),
            endpoint: parsed.as_str().trim_end_matches('/').to_string(),
            auth,
            client,
        })
    }

    fn invalid(&self, message: String) -> DestinationError {
        DestinationError::Invalid {
            connection: self.connection.clone(),
            message,
        }
    }

    fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.endpoint))
            .header(AUTHORIZATION, self.auth.clone())
            .json(body)
    }

    async fn track(
        &self,
        key_field: &str,
        op: WriteOp,
        batch: &Batch,
    ) -> Result<Vec<RecordOutcome>, SendError> {
        let body = request::track_body(key_field, op, &batch.records);
        let resp = send(self.post("/users/track", &body)).await?;
        if !resp.status.is_success() {
            return Err(response::classify(&resp));
        }
        Ok(response::track_outcomes(&resp.body, batch.records.len()))
    }

    async fn delete(&self, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let body = request::delete_body(&batch.records);
        let resp = send(self.post("/users/delete", &body)).await?;
        if !resp.status.is_success() {
            return Err(response::classify(&resp));
        }
        // Braze answers how many ids it queued, not which: an accepted request delivered all.
        if let Some(n) = response::deleted_count(&resp.body) {
            tracing::debug!(
                queued = n,
                sent = batch.records.len(),
                "braze queued users for deletion"
            );
        }
        Ok(vec![RecordOutcome::Delivered; batch.records.len()])
    }
}

#[async_trait]
impl Destination for BrazeDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        request::check_sync(sync).map_err(|m| self.invalid(m))
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        if batch.records.is_empty() {
            return Ok(Vec::new());
        }
        match batch.op {
            WriteOp::Delete => self.delete(batch).await,
            op => {
                let key_field = sync
                    .key_fields
                    .first()
                    .map(String::as_str)
                    .unwrap_or(request::EXTERNAL_ID);
                self.track(key_field, op, batch).await
            }
        }
    }
}
