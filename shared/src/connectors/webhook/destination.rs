//! A webhook: JSON batches POSTed to a URL, signed with HMAC-SHA256. The receiver contract
//! (request body, headers, event ids, what each answer means) is in this folder's README.md.

use std::collections::BTreeMap;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::config::SyncDef;
use crate::delivery::http::{classify, excerpt, send};
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError};
use crate::record::{fingerprint, Values};

/// A webhook destination connection.
pub struct WebhookDestination {
    url: String,
    secret: Option<String>,
    headers: BTreeMap<String, String>,
    client: reqwest::Client,
}

/// A request's body (README.md, "Requests"); fields in the order they have always been sent.
#[derive(Serialize)]
struct RequestBody<'a> {
    batch_id: &'a str,
    object: &'a str,
    op: &'a str,
    records: Vec<RecordBody<'a>>,
    sent_at: String,
    sync: &'a str,
}

/// One record of a request.
#[derive(Serialize)]
struct RecordBody<'a> {
    event_id: &'a str,
    fields: &'a Values,
    key: &'a str,
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookDestination {
    /// A webhook posting to `url`, signing with `secret` when given.
    pub fn new(
        connection: &str,
        url: String,
        secret: Option<String>,
        headers: BTreeMap<String, String>,
    ) -> Result<Self, DestinationError> {
        let client = crate::delivery::http::client_builder()
            .build()
            .map_err(|e| DestinationError::Invalid {
                connection: connection.to_string(),
                message: e.to_string(),
            })?;
        Ok(WebhookDestination {
            url,
            secret,
            headers,
            client,
        })
    }
}

#[async_trait]
impl Destination for WebhookDestination {
    async fn prepare(&self, _sync: &SyncDef) -> Result<(), DestinationError> {
        Ok(())
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let batch_id = request_id(sync, batch);
        // Serialised once, straight from the records (no JSON value built per record).
        let body = serde_json::to_vec(&RequestBody {
            batch_id: &batch_id,
            object: &sync.object,
            op: batch.op.as_str(),
            records: batch
                .records
                .iter()
                .map(|r| RecordBody {
                    event_id: &r.event_id,
                    fields: &r.values,
                    key: &r.key,
                })
                .collect(),
            sent_at: chrono::Utc::now().to_rfc3339(),
            sync: &sync.name,
        })
        .map_err(|e| SendError::BatchRejected {
            code: "encoding".into(),
            message: e.to_string(),
        })?;
        let ts = chrono::Utc::now().timestamp();
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &batch_id)
            .header("x-retl-timestamp", ts.to_string());
        if let Some(secret) = &self.secret {
            req = req.header("x-retl-signature", sign(secret, ts, &body));
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = send(req.body(body)).await?;
        if !resp.status.is_success() {
            return Err(classify(
                &resp,
                format!("HTTP {}: {}", resp.status.as_u16(), excerpt(&resp.body)),
            ));
        }
        Ok(super::results::outcomes(&batch.records, &resp.body))
    }
}

/// The request's identity (`batch_id`, `Idempotency-Key`): its records' event ids, its
/// operation and its re-send count. A transport retry of the same request repeats it; records
/// sent again after the receiver answered `failed` are a new request with a new id.
fn request_id(sync: &SyncDef, batch: &Batch) -> String {
    let mut ids: Vec<&str> = batch.records.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort_unstable();
    let text = format!(
        "{}\n{}\n{}\n{}",
        sync.name,
        batch.op.as_str(),
        batch.resend,
        ids.join("\n")
    );
    fingerprint(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        // Reference: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            sign("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
