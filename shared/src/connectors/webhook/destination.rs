//! A webhook: JSON batches POSTed to a URL, signed with HMAC-SHA256.
//!
//! Request body:
//! `{"sync", "object", "op", "batch_id", "sent_at", "records": [{"key", "fields"}]}`.
//! Headers: `X-Retl-Timestamp` (unix seconds), `X-Retl-Signature: sha256=<hex>` over
//! `"<timestamp>.<body>"`, and `Idempotency-Key` (the batch id: the same records and values
//! always give the same id, so a receiver can drop a retried batch it already processed).
//!
//! Response: any 2xx accepts every record, unless the body is
//! `{"results": [{"key", "status": "ok"|"skipped"|"rejected"|"failed", "code", "error"}]}`,
//! which reports per record. 429 and 5xx are retried (Retry-After honoured); 400/409/413/422
//! split the batch to isolate the bad record; 401/403/404 stop delivery.

use std::collections::BTreeMap;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::config::SyncDef;
use crate::delivery::http::{classify, excerpt, send};
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError};
use crate::record::fingerprint;

/// A webhook destination connection.
pub struct WebhookDestination {
    url: String,
    secret: Option<String>,
    headers: BTreeMap<String, String>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ResultsBody {
    results: Vec<RecordResult>,
}

#[derive(Deserialize)]
struct RecordResult {
    key: String,
    status: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
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
        let records: Vec<_> = batch
            .records
            .iter()
            .map(|r| json!({"key": r.key, "fields": r.values}))
            .collect();
        let batch_id = fingerprint(
            serde_json::to_string(&(&sync.name, batch.op.as_str(), &records))
                .unwrap_or_default()
                .as_bytes(),
        );
        let body = serde_json::to_vec(&json!({
            "sync": sync.name,
            "object": sync.object,
            "op": batch.op.as_str(),
            "batch_id": batch_id,
            "sent_at": chrono::Utc::now().to_rfc3339(),
            "records": records,
        }))
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
        let Ok(parsed) = serde_json::from_str::<ResultsBody>(&resp.body) else {
            return Ok(vec![RecordOutcome::Delivered; batch.records.len()]);
        };
        let by_key: BTreeMap<&str, &RecordResult> =
            parsed.results.iter().map(|r| (r.key.as_str(), r)).collect();
        Ok(batch
            .records
            .iter()
            .map(|r| match by_key.get(r.key.as_str()) {
                None => RecordOutcome::Delivered,
                Some(res) => {
                    let code = res.code.clone().unwrap_or_else(|| res.status.clone());
                    let message = res.error.clone().unwrap_or_default();
                    match res.status.as_str() {
                        "skipped" => RecordOutcome::Skipped { reason: message },
                        "rejected" => RecordOutcome::Rejected { code, message },
                        "failed" => RecordOutcome::Failed { code, message },
                        _ => RecordOutcome::Delivered,
                    }
                }
            })
            .collect())
    }
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
