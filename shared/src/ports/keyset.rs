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
    /// Forgets the whole key set (after a key or destination change).
    async fn clear(&self, sync: &str, shards: u32) -> Result<(), StoreError>;
}
