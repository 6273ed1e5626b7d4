//! Meta (Facebook) customer-file custom audiences through the Marketing API
//! (<https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users>).
//!
//! The sync's `object` is the audience id; its destination fields are Meta schema keys
//! (`EMAIL`, `PHONE`, `FN`, ..., `EXTERN_ID`). Every value is normalised as Meta documents and
//! SHA-256 hashed (except `MADID` and `EXTERN_ID`, which Meta takes as they are) before it
//! leaves retl; a value that cannot be normalised rejects its record locally.
//!
//! - Upsert (upsert, mirror), Create (append) and Update: `POST /{version}/{audience}/users`
//!   with `{"payload": {"schema": [...], "is_raw": true, "data": [[...]]}, "session": {...}}`.
//! - Delete: `DELETE` on the same edge with the same shape; its rows carry only the key
//!   fields, which is why the key must be an identifying field (checked by `prepare`).
//!
//! At most 10,000 rows per request. Each request is its own upload session (`batch_seq` 1,
//! `last_batch_flag` true), its id derived from the content so a retry reuses it. Meta
//! reports invalid rows only as a count and a few samples: rows the samples name are
//! rejected; if the count exceeds what the samples explain, the batch is refused so that the
//! framework splits it (re-sending identifiers is harmless) until each invalid row is alone.
//! Audience membership cannot be read back, so its capabilities have neither listing nor lookups.

mod config;
mod errors;
mod normalize;
mod rows;
mod schema;

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde_json::{json, Value};

use crate::config::SyncDef;
use crate::connectors::OpenContext;
use crate::delivery::http::send;
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError, WriteOp};
use crate::record::Values;
pub use config::MetaAudienceConnection;
use schema::Key;

/// Graph API host.
const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// Graph API version used unless the connection names one (current reference pages).
const DEFAULT_VERSION: &str = "v25.0";
/// Rows per request.
const MAX_ROWS: usize = 10_000;

/// A Meta custom audience destination connection.
pub struct MetaAudienceDestination {
    connection: String,
    base_url: String,
    version: String,
    auth: HeaderValue,
    client: reqwest::Client,
}

/// Opens the connection `name`, reading the access token from the secret `access_token_env`.
pub async fn open(
    ctx: &OpenContext<'_>,
    config: &MetaAudienceConnection,
) -> Result<Arc<dyn Destination>, DestinationError> {
    let (name, secrets, _requests) = (ctx.name, ctx.secrets, Arc::clone(&ctx.requests));
    let token =
        secrets
            .get(&config.access_token_env)
            .await
            .map_err(|e| DestinationError::Invalid {
                connection: name.to_string(),
                message: e.to_string(),
            })?;
    Ok(Arc::new(MetaAudienceDestination::new(
        name,
        config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        config.api_version.as_deref().unwrap_or(DEFAULT_VERSION),
        token.trim(),
    )?))
}

/// Whether `v` looks like a Graph API version (`v21.0`).
fn version_ok(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        })
}

impl MetaAudienceDestination {
    /// A destination writing through the Graph API at `base_url`, version `version`.
    pub fn new(
        connection: &str,
        base_url: &str,
        version: &str,
        access_token: &str,
    ) -> Result<Self, DestinationError> {
        let invalid = |message: String| DestinationError::Invalid {
            connection: connection.to_string(),
            message,
        };
        let parsed = url::Url::parse(base_url.trim())
            .map_err(|e| invalid(format!("base_url `{base_url}` is not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "base_url `{base_url}` must be an https:// URL"
            )));
        }
        if !version_ok(version) {
            return Err(invalid(format!(
                "api_version `{version}` is not a Graph API version such as `{DEFAULT_VERSION}`"
            )));
        }
        if access_token.is_empty() {
            return Err(invalid("the access token secret is empty".into()));
        }
        // The token travels only in this header (never in a URL that an error message could
        // print), marked sensitive.
        let mut auth = HeaderValue::from_str(&format!("Bearer {access_token}")).map_err(|_| {
            invalid("the access token holds characters an HTTP header cannot carry".into())
        })?;
        auth.set_sensitive(true);
        let client = crate::delivery::http::client_builder()
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(MetaAudienceDestination {
            connection: connection.to_string(),
            base_url: parsed.as_str().trim_end_matches('/').to_string(),
            version: version.to_string(),
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

    /// Uploads `rows` to the audience; the answer's invalid-entry count and samples.
    async fn upload(
        &self,
        audience: &str,
        method: Method,
        schema: &[&str],
        rows: &[Vec<String>],
    ) -> Result<(u64, Option<Value>), SendError> {
        let body = json!({
            "payload": {"schema": schema, "is_raw": true, "data": rows},
            "session": rows::session(audience, method.as_str(), schema, rows),
        });
        let url = format!("{}/{}/{audience}/users", self.base_url, self.version);
        let req = self
            .client
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone())
            .json(&body);
        let resp = send(req).await?;
        if !resp.status.is_success() {
            return Err(errors::classify(&resp));
        }
        let Ok(answer) = serde_json::from_str::<Value>(&resp.body) else {
            // Accepted but unreadable: sending the same identifiers again is harmless.
            return Err(SendError::Transient {
                code: "bad_response".into(),
                message: format!("HTTP {} with a body that is not JSON", resp.status.as_u16()),
                retry_after: None,
            });
        };
        let invalid = match answer.get("num_invalid_entries") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            _ => 0,
        };
        Ok((invalid, answer.get("invalid_entry_samples").cloned()))
    }
}

#[async_trait]
impl Destination for MetaAudienceDestination {
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError> {
        schema::check_sync(sync).map_err(|m| self.invalid(m))
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        // A delete's records hold only the key fields; every other write carries the mapping.
        let (method, fields): (Method, Vec<&String>) = match batch.op {
            WriteOp::Delete => (Method::DELETE, sync.key_fields.iter().collect()),
            _ => (Method::POST, sync.mapping.keys().collect()),
        };
        let columns = schema::columns(fields).map_err(|message| SendError::Fatal {
            code: "config".into(),
            message,
        })?;
        let up = rows::build(&columns, &batch.records);
        let mut outcomes: Vec<RecordOutcome> = up
            .local
            .iter()
            .map(|o| o.clone().unwrap_or(RecordOutcome::Delivered))
            .collect();
        if up.rows.is_empty() {
            return Ok(outcomes);
        }
        let names: Vec<&str> = columns.iter().map(|(_, k)| k.name()).collect();
        let (invalid, samples) = self.upload(&sync.object, method, &names, &up.rows).await?;
        if invalid == 0 {
            return Ok(outcomes);
        }
        let named = rows::invalid_rows(&columns, &up.rows, samples.as_ref());
        let explained = named.iter().flatten().count() as u64;
        if explained < invalid {
            // Meta counted invalid rows it did not name: let the framework split the batch
            // until each one is alone (a lone row's refusal becomes its rejection).
            let message = if up.rows.len() == 1 {
                "Meta counted this entry in num_invalid_entries".to_string()
            } else {
                format!(
                    "Meta counted {invalid} of {} entries invalid and named {explained}; \
                     splitting the batch to find the others",
                    up.rows.len()
                )
            };
            return Err(SendError::BatchRejected {
                code: rows::INVALID_ENTRY.into(),
                message,
            });
        }
        for (row, key) in named.iter().enumerate() {
            if let (Some(key), Some(&i)) = (key, up.sent.get(row)) {
                outcomes[i] = RecordOutcome::Rejected {
                    code: rows::INVALID_ENTRY.into(),
                    message: format!(
                        "Meta reported this entry invalid (invalid_entry_samples names its {} \
                         value)",
                        key.name()
                    ),
                };
            }
        }
        Ok(outcomes)
    }

    /// The values as sent: hashed (or, for MADID and EXTERN_ID, normalised) identifiers;
    /// a value that cannot be normalised, or a field that is no schema key, is masked.
    fn redact(&self, values: &Values) -> Values {
        values
            .iter()
            .map(|(field, value)| {
                let shown = match Key::parse(field).map(|k| normalize::encode(k, value)) {
                    Some(Ok(Some(sent))) => Value::String(sent),
                    Some(Ok(None)) => Value::Null,
                    _ => Value::String("<redacted>".into()),
                };
                (field.clone(), shown)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_shows_what_is_sent_and_never_the_clear_value() {
        let d = MetaAudienceDestination::new("m", "http://127.0.0.1:1", "v21.0", "t").unwrap();
        let values: Values = serde_json::from_value(json!({
            "EMAIL": " Jane@Example.com", "EXTERN_ID": "crm-1", "FN": null,
            "PHONE": "n/a", "NOTES": "secret"
        }))
        .unwrap();
        let shown = d.redact(&values);
        assert_eq!(shown["EMAIL"], normalize::sha256_hex("jane@example.com"));
        assert_eq!(shown["EXTERN_ID"], "crm-1");
        assert_eq!(shown["FN"], Value::Null);
        assert_eq!(shown["PHONE"], "<redacted>");
        assert_eq!(shown["NOTES"], "<redacted>");
    }

    #[test]
    fn versions_and_urls_are_checked() {
        assert!(version_ok("v21.0") && version_ok("v25.0"));
        assert!(!version_ok("21.0") && !version_ok("v21") && !version_ok("vX.0"));
        assert!(MetaAudienceDestination::new("m", "ftp://x", "v21.0", "t").is_err());
        assert!(
            MetaAudienceDestination::new("m", "https://graph.facebook.com", "v21", "t").is_err()
        );
        assert!(
            MetaAudienceDestination::new("m", "https://graph.facebook.com", "v21.0", "").is_err()
        );
    }
}
