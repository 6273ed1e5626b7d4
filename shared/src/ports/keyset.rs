use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Whether the destination holds the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// The destination holds the record (as far as retl knows).
    Present,
    /// retl deleted it in `delete` mode; remembered so it is not deleted again.
    Deleted,
}

/// How retl learned of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOrigin {
    /// Seen in the destination (baseline listing or lookup), not written by retl.
    Baseline,
    /// Delivered by retl.
    Synced,
}

/// What the key set remembers per key: what retl believes the destination holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    /// Hash of the mapped values last delivered (or seen); 0 when unknown.
    pub hash: u128,
    /// Present or deleted.
    pub state: KeyState,
    /// Baseline or synced.
    pub origin: KeyOrigin,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// A change to one key, committed only after the destination acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Insert or replace the entry.
    Put {
        /// The key.
        key: String,
        /// The new entry.
        entry: KeyEntry,
    },
    /// Forget the key.
    Remove {
        /// The key.
        key: String,
    },
}

impl KeyChange {
    /// The key changed.
    pub fn key(&self) -> &str {
        match self {
            KeyChange::Put { key, .. } | KeyChange::Remove { key } => key,
        }
    }
}

/// What a sync's key set held when last recorded (after a run applied, after a baseline
/// listing, after `retl verify --repair`). Every plan compares the key set with it, so a key
/// set that lost entries (state deleted or edited, shard count changed) is noticed before a
/// run trusts it. Stored in [`super::SyncState`] and on the run that recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySetCounts {
    /// The key-set namespace counted.
    pub keyset: String,
    /// The shard count its entries were written with.
    pub shards: u32,
    /// Entries (present or deleted) per shard, `shards` long.
    pub entries: Vec<u64>,
    /// Entries a run may have removed since (its planned updates and deletes, while it
    /// applies): a run killed mid-apply leaves up to this many fewer entries without any
    /// state loss.
    #[serde(default)]
    pub pending_removals: u64,
}

impl KeySetCounts {
    /// Entries in every shard.
    pub fn total(&self) -> u64 {
        self.entries.iter().sum()
    }
}

/// Per-sync key sets, split in shards by key hash so planning can fan out.
/// Local: SQLite. AWS: DynamoDB.
#[async_trait]
pub trait KeySetStore: Send + Sync {
    /// Every entry of one shard.
    async fn load_shard(
        &self,
        sync: &str,
        shard: u32,
        shards: u32,
    ) -> Result<Vec<(String, KeyEntry)>, StoreError>;
    /// Applies acknowledged changes.
    async fn apply(&self, sync: &str, shards: u32, changes: &[KeyChange])
        -> Result<(), StoreError>;
    /// Entries (present or deleted) in each shard `0..shards`, as written with `shards`.
    async fn counts(&self, sync: &str, shards: u32) -> Result<Vec<u64>, StoreError>;
    /// Forgets the whole key set (after a key or destination change).
    async fn clear(&self, sync: &str, shards: u32) -> Result<(), StoreError>;
    /// Folds what `apply` appended into the key set's compact form, once a run's changes are
    /// all in (packed stores journal each apply). Loads are the same before and after; a fold
    /// stopped midway loses nothing. Stores that write each key in place have nothing to do.
    async fn compact(&self, _sync: &str, _shards: u32) -> Result<(), StoreError> {
        Ok(())
    }
}
