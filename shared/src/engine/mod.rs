//! The sync engine: the steps of a run (start, extract, plan, approve, apply, finish), written
//! once against the ports and driven either in one process (`retl`) or one Lambda per step.

pub mod alerts;
mod apply;
mod approval_message;
mod connections;
mod extract;
pub mod keys;
mod keyset_check;
mod lifecycle;
mod local;
mod parts;
mod plan;
mod preview;
mod record_log;
mod retention;
mod retries;
mod safety;
pub mod steps;
mod verify;
mod watermark;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use apply::{apply_files, apply_units, finish_apply, ApplyOutcome};
pub use approval_message::{approval_message, ApprovalSubject, MESSAGE_LIMIT};
pub use connections::{OpenedConnections, OpenedDestination};
pub use extract::{extract, ExtractOptions};
pub use lifecycle::{
    approve, expire_if_due, finish_run, keep_lock, local_owner, plan_is_stale, reject,
    request_approval, start_run, StartOptions,
};
pub use local::{decide_local, discard_dry_run, run_local, LocalRunOptions};
pub use parts::{ExtractManifest, PartInfo, Segment};
pub use plan::{
    plan_shard, prepare_plan, read_manifest, read_plan_ops, summarize_plan, OpKind, PlanContext,
    PlanManifest, PlanOp, ShardPlan,
};
pub use preview::{deletion_preview, preview, DeletePreviewEntry, DeletionPreview, Preview};
pub use record_log::{read_record_log, LoggedOutcome, RecordLogEntry};
pub use retention::{prune_artifacts, Pruned};
pub use safety::{evaluate as evaluate_safety, SafetyVerdict};
pub use verify::{verify, VerifyReport};

use crate::config::{ConfigError, ConnectionConfig, SyncDef};
use crate::ports::{
    DestinationError, KeySetStore, LockInfo, Notifier, ObjectStore, RunStatus, RunStore,
    SecretError, Secrets, SourceError, StoreError,
};

/// Reports progress of long phases (a progress bar on a terminal; nothing on Lambda).
pub trait Progress: Send + Sync {
    /// A phase starts; `total` when known.
    fn start(&self, phase: &str, total: Option<u64>);
    /// `n` more units done.
    fn advance(&self, n: u64);
    /// The phase ended.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _phase: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// The adapters and settings one host gives the engine.
#[derive(Clone)]
pub struct Engine {
    /// Parts, plans, record logs.
    pub objects: Arc<dyn ObjectStore>,
    /// Key sets.
    pub keysets: Arc<dyn KeySetStore>,
    /// Runs, locks, sync state, versions.
    pub runs: Arc<dyn RunStore>,
    /// Connection secrets.
    pub secrets: Arc<dyn Secrets>,
    /// Alerts and approval requests.
    pub notifier: Arc<dyn Notifier>,
    /// Connections by name.
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Folder that relative SQLite paths are resolved against.
    pub root: PathBuf,
    /// Who runs: `host:pid` locally, the execution name on AWS.
    pub owner: String,
    /// Progress display.
    pub progress: Arc<dyn Progress>,
    /// Connections opened so far (each once per engine, with its request framework).
    pub opened: OpenedConnections,
    /// How many processes write to the same destination at once (parallel apply units on
    /// AWS); they divide its rate limit.
    pub rate_share: usize,
}

/// Why a step of a run failed. `error_name` is stable: Step Functions `Retry`/`Catch` match it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Configuration files are wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The sync cannot run as defined (a column the model lacks, a bad object).
    #[error("{0}")]
    Invalid(String),
    /// The warehouse failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The destination failed outside batch delivery.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret is missing.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Another run holds the sync's lock.
    #[error("sync `{sync}` is already running: run {} ({}) holds the lock since {}; wait for it, or approve/reject it if it awaits approval", .holder.run_id, .status, .holder.acquired_at.format("%Y-%m-%d %H:%M:%S UTC"))]
    Locked {
        /// The sync.
        sync: String,
        /// The holder.
        holder: Box<LockInfo>,
        /// The holder run's status.
        status: String,
    },
    /// The run found, at a heartbeat, that another run holds its sync's lock (it was taken
    /// over as stale); it stopped before writing more.
    #[error("run {run_id} lost the lock of sync `{sync}` to run {holder} and stopped before writing more; that run carries on (see `retl runs {sync}`)")]
    LockLost {
        /// The sync.
        sync: String,
        /// The run that stopped.
        run_id: String,
        /// Who holds the lock now (`none` when nobody does).
        holder: String,
    },
    /// The sync is paused.
    #[error("sync `{0}` is paused; `retl resume {0}` lets it run again")]
    Paused(String),
    /// The plan no longer matches the key set or the config.
    #[error("the plan of run {run_id} is stale: {reason}; start a new run to plan again")]
    StalePlan {
        /// The run.
        run_id: String,
        /// What changed.
        reason: String,
    },
    /// A decision was given for a run that does not wait for one.
    #[error("run {run_id} is {} and does not await approval", .status.as_str())]
    NotAwaitingApproval {
        /// The run.
        run_id: String,
        /// Its status.
        status: RunStatus,
    },
    /// The destination refused every write (auth, missing object).
    #[error("the destination stopped the delivery: {code}: {message}")]
    DeliveryFatal {
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Apply was asked to write a plan that needed approval and holds none.
    #[error("run {run_id} writes nothing: its plan needs an approval and {reason}; approve it with `retl approve {run_id}` (or in the console), or start a new run")]
    NotApproved {
        /// The run.
        run_id: String,
        /// What the run record holds instead of a valid approval.
        reason: String,
    },
    /// A decision could not be traced to the approvers AWS authenticated for this run.
    #[error("the decision on run {run_id} is not taken: {reason}; decide from the run's own request (Systems Manager > Automation > Executions, or `retl approve {run_id} --aws`)")]
    ApprovalUnverified {
        /// The run.
        run_id: String,
        /// What did not match.
        reason: String,
    },
    /// A sync whose mode deletes records, deployed without a safety grant that covers its
    /// mode and thresholds (AWS: the safety-grants table only safety deployers can write).
    #[error("sync `{sync}` is refused: {what}; a deployer with the stack's safety deployer policy deploys it with `retl deploy --aws`, which grants its mode and thresholds, or set a mode that deletes nothing")]
    SafetyNotGranted {
        /// The sync.
        sync: String,
        /// What is not covered.
        what: String,
    },
    /// Stored run data is unreadable.
    #[error("corrupt run data: {0}")]
    Corrupt(String),
    /// The key set no longer holds what this sync last recorded, and cannot be rebuilt by
    /// listing the destination: a run would trust a key set that forgot what it delivered.
    #[error("sync `{sync}`: not run: {what}; the sync's state was lost or edited, so retl no longer knows what it delivered; {fix}")]
    KeySetMismatch {
        /// The sync.
        sync: String,
        /// How the key set differs from the record.
        what: String,
        /// What to do.
        fix: String,
    },
}

impl EngineError {
    /// Stable error name for logs, Lambda `errorType` and Step Functions.
    pub fn error_name(&self) -> &'static str {
        match self {
            EngineError::Config(e) => e.error_name(),
            EngineError::Invalid(_) => "Retl.InvalidSync",
            EngineError::Source(e) => e.error_name(),
            EngineError::Destination(e) => e.error_name(),
            EngineError::Store(e) => e.error_name(),
            EngineError::Secret(e) => e.error_name(),
            EngineError::Locked { .. } => "Retl.Locked",
            EngineError::LockLost { .. } => "Retl.LockLost",
            EngineError::Paused(_) => "Retl.Paused",
            EngineError::StalePlan { .. } => "Retl.StalePlan",
            EngineError::NotAwaitingApproval { .. } => "Retl.NotAwaitingApproval",
            EngineError::NotApproved { .. } => "Retl.NotApproved",
            EngineError::ApprovalUnverified { .. } => "Retl.ApprovalUnverified",
            EngineError::DeliveryFatal { .. } => "Retl.DestinationFatal",
            EngineError::SafetyNotGranted { .. } => "Retl.SafetyNotGranted",
            EngineError::Corrupt(_) => "Retl.CorruptData",
            EngineError::KeySetMismatch { .. } => "Retl.KeySetMismatch",
        }
    }

    /// Whether retrying the same step may succeed: its name is one of [`RETRYABLE`].
    pub fn is_retryable(&self) -> bool {
        RETRYABLE.contains(&self.error_name())
    }
}

/// The errors a step is retried on (a store, source, destination or secret store that could
/// not be reached, or a conditional write that lost a race), by both hosts: the state
/// machine's `Retry` lists (checked against `infra/statemachine/sync.asl.json` by a test) and
/// the local host.
pub const RETRYABLE: &[&str] = &[
    "Retl.SourceUnavailable",
    "Retl.DestinationUnavailable",
    "Retl.StoreUnavailable",
    "Retl.SecretUnavailable",
    "Retl.Conflict",
];

/// Attempts of a step that fails with a [`RETRYABLE`] error (the ASL's `MaxAttempts` of
/// those retriers, plus the first attempt).
pub const STEP_ATTEMPTS: u32 = 5;

/// A new sortable run id.
pub fn new_run_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// Key-set namespace of a sync: its name plus the identity fingerprint, so that a change of
/// key columns or destination starts a fresh key set without destroying the old one.
pub fn keyset_id(sync: &SyncDef) -> String {
    keys::keyset_name(&sync.name, &sync.identity_fingerprint())
}
