//! The table's rows as decisions: what planning does with one key, which destination write
//! an operation becomes, and how the key set moves once the destination answered.

use serde::{Deserialize, Serialize};

use super::{Creates, Deletes, SyncMode, Updates};
use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeyState, RecordOutcome, WriteOp};

/// Kind of a planned operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// A record the destination lacks.
    Create,
    /// A record whose values changed.
    Update,
    /// A record to remove.
    Delete,
}

/// What the key set knows of a model row's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Nothing: never delivered nor seen in the destination.
    Absent,
    /// The destination holds it; `same` when the row's values hash as last delivered.
    Present {
        /// The values are unchanged.
        same: bool,
    },
    /// retl deleted it in `delete` mode.
    Deleted,
}

impl Known {
    /// What `entry` says about a row whose values hash to `hash`.
    pub fn of(entry: Option<&KeyEntry>, hash: u128) -> Known {
        match entry {
            None => Known::Absent,
            Some(e) if e.state == KeyState::Deleted => Known::Deleted,
            Some(e) => Known::Present {
                same: e.hash == hash,
            },
        }
    }
}

/// What planning does with one model key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Write it.
    Op(OpKind),
    /// The destination already holds these values.
    Unchanged,
    /// The mode does not apply this row (counted as skipped).
    Skipped,
    /// Ask the destination whether it holds the key, then [`decide_after_lookup`].
    NeedsLookup,
}

/// The decision for a model row, from what the key set knows. `resync` re-sends unchanged
/// rows (modes that never update ignore it: they never re-send what they created).
pub fn decide(mode: SyncMode, known: Known, resync: bool, can_lookup: bool) -> Decision {
    let r = mode.rules();
    if r.deletes == Deletes::KeysInTheModel {
        return match known {
            Known::Present { .. } => Decision::Op(OpKind::Delete),
            Known::Deleted => Decision::Unchanged,
            Known::Absent if can_lookup => Decision::NeedsLookup,
            // Deleting a record that is not there is reported skipped by the destination.
            Known::Absent => Decision::Op(OpKind::Delete),
        };
    }
    match known {
        Known::Present { same } => match r.updates {
            Updates::ChangedRows | Updates::ChangedRowsThatExist if same && !resync => {
                Decision::Unchanged
            }
            Updates::ChangedRows | Updates::ChangedRowsThatExist => Decision::Op(OpKind::Update),
            Updates::Never if same || r.creates == Creates::Never => Decision::Unchanged,
            // The record exists and this mode never updates it.
            Updates::Never => Decision::Skipped,
        },
        Known::Absent | Known::Deleted => match r.creates {
            Creates::NewKeys | Creates::KeysNeverSynced => Decision::Op(OpKind::Create),
            Creates::KeysTheDestinationLacks if can_lookup => Decision::NeedsLookup,
            Creates::KeysTheDestinationLacks => Decision::Op(OpKind::Create),
            Creates::Never => match r.updates {
                Updates::ChangedRowsThatExist if can_lookup => Decision::NeedsLookup,
                Updates::ChangedRowsThatExist => Decision::Skipped,
                _ => Decision::Unchanged,
            },
        },
    }
}

/// The decision for a key [`decide`] sent to a lookup: `found` is the hash of the record the
/// destination holds, if it holds one; `hash` the model row's.
pub fn decide_after_lookup(
    mode: SyncMode,
    found: Option<u128>,
    hash: u128,
    resync: bool,
) -> Decision {
    let r = mode.rules();
    if r.deletes == Deletes::KeysInTheModel {
        return match found {
            Some(_) => Decision::Op(OpKind::Delete),
            None => Decision::Skipped,
        };
    }
    match (r.creates, r.updates, found) {
        (Creates::KeysTheDestinationLacks, _, None) => Decision::Op(OpKind::Create),
        (_, Updates::ChangedRowsThatExist, Some(h)) if resync || h != hash => {
            Decision::Op(OpKind::Update)
        }
        (_, Updates::ChangedRowsThatExist, Some(_)) => Decision::Unchanged,
        _ => Decision::Skipped,
    }
}

/// The destination write a planned operation becomes under `mode`.
pub fn write_op(mode: SyncMode, op: OpKind) -> WriteOp {
    let r = mode.rules();
    match op {
        OpKind::Delete => WriteOp::Delete,
        _ if r.updates == Updates::Never => WriteOp::Create,
        _ if r.creates == Creates::Never => WriteOp::Update,
        _ => WriteOp::Upsert,
    }
}

/// The key-set change the destination's answer for one record implies, if any. `hash` is the
/// hash of the values written.
pub fn key_change(
    write: WriteOp,
    key: &str,
    hash: u128,
    outcome: &RecordOutcome,
    now: i64,
) -> Option<KeyChange> {
    let put = |hash, state, origin| KeyChange::Put {
        key: key.to_string(),
        entry: KeyEntry {
            hash,
            state,
            origin,
            updated_at: now,
        },
    };
    // A tombstone, not a removal: `delete` mode must not delete it again, and a record
    // created again later gets new event ids (they derive from what the key set held).
    let gone = || put(0, KeyState::Deleted, KeyOrigin::Synced);
    match (outcome, write) {
        (RecordOutcome::Delivered, WriteOp::Delete) => Some(gone()),
        (RecordOutcome::Delivered, _) => Some(put(hash, KeyState::Present, KeyOrigin::Synced)),
        // It exists already (with values retl does not know): remembered, never re-created.
        (RecordOutcome::Skipped { .. }, WriteOp::Create) => {
            Some(put(0, KeyState::Present, KeyOrigin::Baseline))
        }
        // It does not exist: forgotten, so a later lookup finds it if it appears.
        (RecordOutcome::Skipped { .. }, WriteOp::Update) => Some(KeyChange::Remove {
            key: key.to_string(),
        }),
        (RecordOutcome::Skipped { .. }, WriteOp::Delete) => Some(gone()),
        _ => None,
    }
}

/// Whether the key set already reflects an operation, so a retried apply resumes after it.
/// `hash` is the hash of the values the operation writes.
pub fn already_applied(mode: SyncMode, op: OpKind, hash: u128, entry: Option<&KeyEntry>) -> bool {
    match op {
        OpKind::Delete => match entry {
            // A key set from before tombstones forgot deleted keys.
            None => mode.rules().deletes != Deletes::KeysInTheModel,
            Some(e) => e.state == KeyState::Deleted,
        },
        _ => entry.is_some_and(|e| e.state == KeyState::Present && e.hash == hash),
    }
}
