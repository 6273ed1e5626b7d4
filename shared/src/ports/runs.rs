use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Bound, KeySetCounts, StoreError};
use crate::config::SyncDef;

/// Where a run is in its life. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Extracting, planning or applying.
    Running,
    /// A dry run (`retl plan`) that stopped after planning.
    Planned,
    /// Stopped by a safety rule; waits for `approve` or `reject`.
    AwaitingApproval,
    /// Every planned record was delivered (or skipped as the mode says).
    Succeeded,
    /// Some records were rejected or failed; the rest were delivered.
    PartiallyFailed,
    /// The run could not complete (source, destination or store failure, interruption).
    Failed,
    /// Stopped by a safety rule before any write, with no way to approve (empty model).
    Aborted,
    /// The approver refused the plan; nothing was written.
    Rejected,
    /// The approval request timed out; nothing was written.
    Expired,
}

impl RunStatus {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Planned => "planned",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartiallyFailed => "partially_failed",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
            RunStatus::Rejected => "rejected",
            RunStatus::Expired => "expired",
        }
    }

    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::AwaitingApproval)
    }
}

/// Record counts of a run. Planned counts and delivered counts use the same shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Counts {
    /// Rows the model returned.
    pub rows: u64,
    /// Records created.
    pub creates: u64,
    /// Records updated.
    pub updates: u64,
    /// Records deleted.
    pub deletes: u64,
    /// Rows identical to what the destination holds.
    pub unchanged: u64,
    /// Rows the mode does not apply (e.g. update-only on a missing record).
    pub skipped: u64,
    /// Rows refused permanently (bad key, duplicate key, destination validation).
    pub rejected: u64,
    /// Records that hit a transient failure; planned again next run.
    pub failed: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.rows += other.rows;
        self.creates += other.creates;
        self.updates += other.updates;
        self.deletes += other.deletes;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
        self.failed += other.failed;
    }

    /// Records that would be written.
    pub fn changes(&self) -> u64 {
        self.creates + self.updates + self.deletes
    }
}

/// An approval request and its decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Why the run needs approval.
    pub reason: String,
    /// When it was requested.
    pub requested_at: Option<DateTime<Utc>>,
    /// When the request expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The Systems Manager Automation execution that asks the approvers (AWS only). The
    /// execution's task token is never here: only the approval function can read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automation_execution_id: Option<String>,
    /// `approve` or `reject`, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The decider's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<DateTime<Utc>>,
}

/// One run of one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Sortable unique id.
    pub run_id: String,
    /// The sync.
    pub sync: String,
    /// Current state.
    pub status: RunStatus,
    /// What started it: manual, schedule, event, retry.
    pub trigger: String,
    /// Config version the run used.
    pub config_version: u32,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// End time, once terminal.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// What the plan intends.
    #[serde(default)]
    pub planned: Counts,
    /// What happened.
    #[serde(default)]
    pub counts: Counts,
    /// Records the key set held when planned (base of the delete threshold).
    #[serde(default)]
    pub existing: u64,
    /// Milliseconds per phase (extract, plan, apply).
    #[serde(default)]
    pub timings: BTreeMap<String, u64>,
    /// Object key of the plan manifest.
    #[serde(default)]
    pub plan: Option<String>,
    /// Key-set generation the plan was computed against (stale-plan check).
    #[serde(default)]
    pub generation_at_plan: u64,
    /// Why every row is re-sent, if it is.
    #[serde(default)]
    pub resync_reason: Option<String>,
    /// Approval request and decision.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// Error message of a failed or aborted run.
    #[serde(default)]
    pub error: Option<String>,
    /// Stable error name of a failed run.
    #[serde(default)]
    pub error_name: Option<String>,
    /// An incremental model's watermark: what the run read from and where it left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<RunWatermark>,
    /// What the key set held after the run planned (and, once applied, after it applied):
    /// the record the next plan checks the key set against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyset_after: Option<KeySetCounts>,
    /// Why the run re-listed the destination to rebuild its key set, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebaseline_reason: Option<String>,
}

/// A sync's high watermark: rows whose `column` is above `value` have not been read yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The incremental column it belongs to (another column starts over).
    pub column: String,
    /// The highest value whose rows all reached a final state.
    pub value: Bound,
}

/// What one run did with its sync's watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunWatermark {
    /// The incremental column.
    pub column: String,
    /// The stored watermark when the run started.
    pub before: Option<Bound>,
    /// The filter's bound (the watermark minus the lookback); `None` when the run read the
    /// whole model.
    pub read_after: Option<Bound>,
    /// Why the whole model was read, when it was.
    pub full_read: Option<String>,
    /// The highest value the model returned.
    pub seen: Option<Bound>,
    /// The watermark the run stored; `None` until the run finishes.
    pub after: Option<Bound>,
}

impl RunRecord {
    /// A new running run.
    pub fn new(run_id: String, sync: &str, trigger: &str, config_version: u32) -> Self {
        let now = Utc::now();
        RunRecord {
            run_id,
            sync: sync.to_string(),
            status: RunStatus::Running,
            trigger: trigger.to_string(),
            config_version,
            created_at: now,
            updated_at: now,
            finished_at: None,
            planned: Counts::default(),
            counts: Counts::default(),
            existing: 0,
            timings: BTreeMap::new(),
            plan: None,
            generation_at_plan: 0,
            resync_reason: None,
            approval: None,
            error: None,
            error_name: None,
            watermark: None,
            keyset_after: None,
            rebaseline_reason: None,
        }
    }

    /// Moves the run to a terminal state.
    pub fn finish(&mut self, status: RunStatus) {
        let now = Utc::now();
        self.status = status;
        self.updated_at = now;
        self.finished_at = Some(now);
    }
}

/// Who holds a sync's run lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The sync.
    pub sync: String,
    /// The run holding it.
    pub run_id: String,
    /// `host:pid` of the process, or `aws:<execution>`.
    pub owner: String,
    /// When taken.
    pub acquired_at: DateTime<Utc>,
    /// Last sign of life.
    pub heartbeat_at: DateTime<Utc>,
}

/// Result of trying to take a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// Taken.
    Acquired,
    /// Someone else holds it.
    Held(LockInfo),
}

/// Per-sync state that outlives runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The sync.
    pub sync: String,
    /// Paused syncs do not run.
    pub paused: bool,
    /// Shard count of the key set, fixed at the first run.
    pub shards: Option<u32>,
    /// Identity fingerprint whose key set was seeded from the destination's contents.
    pub baseline_identity: Option<String>,
    /// Identity fingerprint (key columns + destination) the key set belongs to.
    pub identity_fingerprint: Option<String>,
    /// Mapping fingerprint the stored hashes were computed with.
    pub mapping_fingerprint: Option<String>,
    /// Incremented by every apply; a plan made at another generation is stale.
    pub generation: u64,
    /// The last run.
    pub last_run_id: Option<String>,
    /// An incremental model's high watermark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Watermark>,
    /// What the key set held when last recorded (checked by every plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyset_counts: Option<KeySetCounts>,
}

/// A saved version of a sync definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// The sync.
    pub sync: String,
    /// 1, 2, 3...
    pub version: u32,
    /// Fingerprint of the definition.
    pub config_hash: String,
    /// The definition.
    pub definition: SyncDef,
    /// The note given when saved.
    pub note: Option<String>,
    /// Who deployed it: the IAM ARN of `retl deploy --aws` (STS GetCallerIdentity); none
    /// locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_by: Option<String>,
    /// When saved.
    pub created_at: DateTime<Utc>,
}

/// Runs, locks, sync state and config versions. Local: SQLite. AWS: DynamoDB.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Starts `run`: takes its sync's lock for it and records the run, in one atomic write,
    /// if nobody holds the lock (or `run` itself does: a retried start rewrites its record).
    /// Otherwise writes nothing and returns the holder. A lock is never seen without its
    /// run's record, so a missing record never means the holder is gone.
    async fn lock_and_start(&self, run: &RunRecord, owner: &str)
        -> Result<LockOutcome, StoreError>;
    /// Moves the lock of `run`'s sync from `from_run` (a holder found gone) to `run` and
    /// records `run`, in one atomic write; false, with nothing written, if `from_run` no
    /// longer holds it.
    async fn take_over_and_start(
        &self,
        from_run: &str,
        run: &RunRecord,
        owner: &str,
    ) -> Result<bool, StoreError>;
    /// Records a sign of life of the holder; false (nothing written) when `run_id` no longer
    /// holds the lock: that run must stop writing.
    async fn heartbeat(&self, sync: &str, run_id: &str) -> Result<bool, StoreError>;
    /// Releases the lock if `run_id` holds it.
    async fn unlock(&self, sync: &str, run_id: &str) -> Result<(), StoreError>;
    /// The current holder, if any.
    async fn lock_holder(&self, sync: &str) -> Result<Option<LockInfo>, StoreError>;

    /// Inserts or replaces a run record.
    async fn put_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    /// One run.
    async fn get_run(&self, run_id: &str) -> Result<RunRecord, StoreError>;
    /// Recent runs, newest first, optionally of one sync.
    async fn list_runs(
        &self,
        sync: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// A sync's state (default when never run).
    async fn sync_state(&self, sync: &str) -> Result<SyncState, StoreError>;
    /// Saves a sync's state.
    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError>;

    /// Records `def`, deployed by `deployed_by` (an IAM ARN on AWS), as a new version unless
    /// it equals the latest; returns the current version.
    async fn record_version(
        &self,
        def: &SyncDef,
        note: Option<&str>,
        deployed_by: Option<&str>,
    ) -> Result<ConfigVersion, StoreError>;
    /// All versions of a sync, oldest first.
    async fn versions(&self, sync: &str) -> Result<Vec<ConfigVersion>, StoreError>;
}
