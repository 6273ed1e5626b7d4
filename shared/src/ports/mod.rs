//! Ports: the small traits the engine talks to. Each has a local adapter (files, SQLite,
//! environment, terminal) and an AWS adapter (S3, DynamoDB, Secrets Manager, SNS).

mod destination;
mod keyset;
mod notifier;
mod object_store;
mod runs;
mod secrets;
mod source;

pub use destination::{
    Batch, BatchLimits, DeliveryDefaults, Destination, DestinationError, OutRecord, RecordOutcome,
    SendError, WriteOp,
};
pub use keyset::{KeyChange, KeyEntry, KeyOrigin, KeySetCounts, KeySetStore, KeyState};
pub use notifier::{AlertRule, FiredRule, Notification, Notifier};
pub use object_store::ObjectStore;
pub use runs::{
    Approval, ConfigVersion, Counts, LockInfo, LockOutcome, RunRecord, RunStatus, RunStore,
    RunWatermark, SyncState, Watermark,
};
pub use secrets::{SecretError, Secrets};
pub use source::{
    batches_of, BatchStream, Bound, ExportBatches, ExportReader, ExportTarget, ModelQuery,
    RowBatch, RowFilter, RowStream, Source, SourceError, ROWS_PER_BATCH,
};

/// Errors of the stores (object store, key-set store, run store).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A conditional write lost against another writer.
    #[error("conflicting update: {0}")]
    Conflict(String),
    /// The store could not be reached or throttled us; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: corrupt data, permissions, bugs.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Stable error name for logs and Step Functions `Retry`/`Catch`.
    pub fn error_name(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "Retl.NotFound",
            StoreError::Conflict(_) => "Retl.Conflict",
            StoreError::Unavailable(_) => "Retl.StoreUnavailable",
            StoreError::Other(_) => "Retl.StoreError",
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("row".into()),
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound(e.to_string())
        } else {
            StoreError::Other(e.to_string())
        }
    }
}
