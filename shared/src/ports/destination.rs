use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::config::SyncDef;
use crate::record::Values;

/// The write a destination performs for a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// Create or update by key (upsert, mirror).
    Upsert,
    /// Create only; a record that already exists is reported `Skipped` (insert, append).
    Create,
    /// Update only; a missing record is reported `Skipped` (update).
    Update,
    /// Delete by key; a missing record is reported `Skipped`.
    Delete,
}

impl WriteOp {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOp::Upsert => "upsert",
            WriteOp::Create => "create",
            WriteOp::Update => "update",
            WriteOp::Delete => "delete",
        }
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutRecord {
    /// The record key (text form; composite keys are a JSON array).
    pub key: String,
    /// Destination fields. For deletes: only the key fields.
    pub values: Values,
    /// The change's stable event id: the same on every replan of the same change, so a
    /// receiver can de-duplicate with it.
    #[serde(default)]
    pub event_id: String,
}

/// Records of one write operation, within the destination's batch limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// What to do.
    pub op: WriteOp,
    /// The records.
    pub records: Vec<OutRecord>,
    /// How many times records the destination answered `failed` were sent again as a new
    /// request (0 for a first send; a transport retry of the same request keeps it): a
    /// request's identity (`Idempotency-Key`) includes it, so a re-send is not mistaken for
    /// a duplicate of the failed request.
    pub resend: u32,
}

/// How one record ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Written as asked.
    Delivered,
    /// Not written, as the mode says (already exists, missing for update, absent for delete).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Refused permanently; goes to the record log and is retried only after a change or
    /// `retl retry`.
    Rejected {
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// Hit a transient failure; the key set is not moved, so the next run plans it again.
    Failed {
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
}

/// A request failed as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Try again later (5xx, timeout, connection reset, lock contention).
    #[error("transient error {code}: {message}")]
    Transient {
        /// Status or error code.
        code: String,
        /// Message.
        message: String,
        /// Server-requested wait.
        retry_after: Option<Duration>,
    },
    /// Rate limited (HTTP 429 or a vendor's equivalent).
    #[error("rate limited: {message}")]
    RateLimited {
        /// Message.
        message: String,
        /// Server-requested wait.
        retry_after: Option<Duration>,
    },
    /// The whole batch was refused because of its content; split it to find the bad record.
    #[error("batch rejected {code}: {message}")]
    BatchRejected {
        /// Status or error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Nothing will work until someone fixes the configuration (auth, missing object).
    #[error("destination error {code}: {message}")]
    Fatal {
        /// Status or error code.
        code: String,
        /// Message.
        message: String,
    },
}

/// Record-count and byte limits of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most records per request.
    pub max_records: usize,
    /// Most encoded bytes per request (an estimate of the record payloads).
    pub max_bytes: usize,
}

/// Default delivery behaviour a connector documents for its API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryDefaults {
    /// Batch limits.
    pub limits: BatchLimits,
    /// Requests in flight.
    pub concurrency: usize,
    /// Requests per second (`None`: unlimited).
    pub rate_per_second: Option<f64>,
    /// Burst of the rate limiter.
    pub burst: u32,
    /// Attempts per batch.
    pub max_attempts: u32,
    /// Request timeout.
    pub timeout: Duration,
    /// Lower record limits for one kind of write, when the API has one (Braze deletes 50
    /// users per request but tracks 75).
    pub op_max_records: &'static [(WriteOp, usize)],
    /// Lower rates for one kind of write, in requests per minute.
    pub op_rates: &'static [(WriteOp, u32)],
}

/// The destination failed outside a batch (connecting, checking the object, listing).
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Could not reach it; retrying may succeed.
    #[error("cannot reach the destination `{connection}`: {message}")]
    Unavailable {
        /// Connection name.
        connection: String,
        /// The cause.
        message: String,
    },
    /// The object or its fields do not fit the sync.
    #[error("destination `{connection}` does not fit the sync: {message}")]
    Invalid {
        /// Connection name.
        connection: String,
        /// What to fix.
        message: String,
    },
    /// The destination has no API for this (only called when its connector's capabilities say it has).
    #[error("this destination cannot {0}")]
    Unsupported(&'static str),
    /// A write failed as a whole in a way that will not heal by retrying.
    #[error("destination `{connection}` refused the write: {message}")]
    Fatal {
        /// Connection name.
        connection: String,
        /// The cause.
        message: String,
    },
}

impl DestinationError {
    /// Stable error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            DestinationError::Unavailable { .. } => "Retl.DestinationUnavailable",
            DestinationError::Invalid { .. } | DestinationError::Unsupported(_) => {
                "Retl.DestinationInvalid"
            }
            DestinationError::Fatal { .. } => "Retl.DestinationFatal",
        }
    }
}

/// A destination object: what it can do, how it reads its records, how it writes a batch.
///
/// Batching, retries, rate limits and concurrency are not the connector's business: the
/// request framework does them ([`crate::delivery::Requester`], handed to the connector when it
/// opens); a connector only writes one batch and reports per record.
#[async_trait]
pub trait Destination: Send + Sync {
    /// Checks that the object exists and fits the sync (fields, key constraint).
    async fn prepare(&self, sync: &SyncDef) -> Result<(), DestinationError>;
    /// Every record of the object, as destination fields of the mapping.
    async fn list(
        &self,
        sync: &SyncDef,
    ) -> Result<BoxStream<'static, Result<Values, DestinationError>>, DestinationError> {
        let _ = sync;
        Err(DestinationError::Unsupported("list its records"))
    }
    /// The records with these keys that exist, as destination fields of the mapping.
    async fn lookup(
        &self,
        sync: &SyncDef,
        keys: &[String],
    ) -> Result<Vec<Values>, DestinationError> {
        let _ = (sync, keys);
        Err(DestinationError::Unsupported("look records up"))
    }
    /// Writes one batch; returns one outcome per record, in order.
    async fn send(&self, sync: &SyncDef, batch: &Batch) -> Result<Vec<RecordOutcome>, SendError>;
    /// The payload as it may be shown in the record log: connectors that hash identifiers
    /// before sending (ad audiences) return the hashed form, so nothing travels in clear.
    fn redact(&self, values: &Values) -> Values {
        values.clone()
    }
}
