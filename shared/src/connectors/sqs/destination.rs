//! Amazon SQS: one message per record change, for event forwarding (append) or change feeds
//! (upsert, mirror). Batches use `SendMessageBatch` (10 entries, 1 MiB by default; set
//! `max_batch_bytes: 262144` for queues or regions still on the older 256 KiB limit).
//!
//! Message body: `{"sync", "object", "op", "key", "event_id", "fields", "sent_at"}`, with
//! message attributes `retl-op`, `retl-sync` and `retl-event-id`. On FIFO queues the group is
//! the record key (or the configured `message_group_id`) and the deduplication id is the
//! change's event id (the same on every replan of the same change), so an entry retried or
//! re-planned within SQS's five-minute window is delivered once; consumers of standard queues
//! de-duplicate with `event_id`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use serde_json::json;

use super::SqsConnection;
use crate::config::SyncDef;
use crate::ports::{Batch, Destination, DestinationError, RecordOutcome, SendError};

/// An SQS destination connection.
pub struct SqsDestination {
    connection: String,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    message_group_id: Option<String>,
}

/// Opens the connection `name` with credentials from the standard AWS chain.
pub async fn open(name: &str, c: &SqsConnection) -> Result<Arc<dyn Destination>, DestinationError> {
    let sdk = crate::aws_http::sdk_defaults().load().await;
    Ok(Arc::new(SqsDestination::new(
        name,
        aws_sdk_sqs::Client::new(&sdk),
        c,
    )))
}

impl SqsDestination {
    /// A destination sending to `c.queue_url` with `client`.
    pub fn new(name: &str, client: aws_sdk_sqs::Client, c: &SqsConnection) -> Self {
        SqsDestination {
            connection: name.to_string(),
            client,
            queue_url: c.queue_url.clone(),
            message_group_id: c.message_group_id.clone(),
        }
    }

    fn fifo(&self) -> bool {
        self.queue_url.ends_with(".fifo")
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> SendError {
    let message = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or("").to_string();
    match (&e, code.as_str()) {
        (
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_),
            _,
        ) => SendError::Transient {
            code: "network".into(),
            message,
            retry_after: None,
        },
        (
            _,
            "RequestThrottled"
            | "ThrottlingException"
            | "KmsThrottled"
            | "AWS.SimpleQueueService.RequestThrottled",
        ) => SendError::RateLimited {
            message,
            retry_after: None,
        },
        (
            _,
            "BatchRequestTooLong"
            | "TooManyEntriesInBatchRequest"
            | "InvalidMessageContents"
            | "BatchEntryIdsNotDistinct",
        ) => SendError::BatchRejected { code, message },
        _ if status.is_some_and(|s| s >= 500) => SendError::Transient {
            code: if code.is_empty() { "5xx".into() } else { code },
            message,
            retry_after: None,
        },
        _ => SendError::Fatal {
            code: if code.is_empty() { "sqs".into() } else { code },
            message,
        },
    }
}

#[async_trait]
impl Destination for SqsDestination {
    async fn prepare(&self, _sync: &SyncDef) -> Result<(), DestinationError> {
        self.client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .send()
            .await
            .map_err(|e| DestinationError::Invalid {
                connection: self.connection.clone(),
                message: format!(
                    "queue {} is not reachable: {}",
                    self.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ),
            })?;
        Ok(())
    }

    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError> {
        let op = batch.op.as_str();
        let sent_at = chrono::Utc::now().to_rfc3339();
        let mut entries = Vec::with_capacity(batch.records.len());
        for (i, r) in batch.records.iter().enumerate() {
            let body = json!({
                "sync": sync.name,
                "object": sync.object,
                "op": op,
                "key": r.key,
                "event_id": r.event_id,
                "fields": r.values,
                "sent_at": sent_at,
            });
            let attr = |v: &str| {
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .expect("data type is set")
            };
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body.to_string())
                .message_attributes("retl-op", attr(op))
                .message_attributes("retl-sync", attr(&sync.name))
                .message_attributes("retl-event-id", attr(&r.event_id));
            if self.fifo() {
                // SQS limits deduplication ids to 128 characters; event ids are 32.
                let dedup = r.event_id.clone();
                entry = entry
                    .message_group_id(
                        self.message_group_id
                            .clone()
                            .unwrap_or_else(|| r.key.clone()),
                    )
                    .message_deduplication_id(dedup);
            }
            entries.push(entry.build().map_err(|e| SendError::BatchRejected {
                code: "encoding".into(),
                message: e.to_string(),
            })?);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        let mut outcomes = vec![RecordOutcome::Delivered; batch.records.len()];
        for failed in out.failed() {
            let Some(i) = failed
                .id()
                .parse::<usize>()
                .ok()
                .filter(|i| *i < outcomes.len())
            else {
                continue;
            };
            let code = failed.code().to_string();
            let message = failed.message().unwrap_or_default().to_string();
            outcomes[i] = if failed.sender_fault() {
                RecordOutcome::Rejected { code, message }
            } else {
                RecordOutcome::Failed { code, message }
            };
        }
        Ok(outcomes)
    }
}
