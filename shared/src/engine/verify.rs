//! `retl verify`: compares what the destination holds (its listing) with the sync's key set
//! (what retl last delivered), the check a normal run does not make: a run diffs the model
//! against the key set only. With repair, the key set is made to say what the destination
//! holds, so the next run re-sends what is missing or stale and, in mirror, deletes what is
//! extra; nothing is written to the destination by verify itself.

use futures::StreamExt;
use hashbrown::HashMap;
use serde::Serialize;

use super::{keyset_check, keyset_id, Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeyState};
use crate::record::{key_of, value_hash};

/// Keys shown per kind of difference.
const SAMPLE: usize = 10;

/// What verify found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records the destination listed.
    pub destination_records: u64,
    /// Records the key set holds as delivered.
    pub key_set_records: u64,
    /// Delivered per the key set, absent from the destination.
    pub missing: u64,
    /// In the destination, not in the key set (created or restored outside retl).
    pub extra: u64,
    /// In both, with other values than retl delivered (changed outside retl).
    pub stale: u64,
    /// A few keys of each kind: (kind, key).
    pub sample: Vec<(String, String)>,
    /// Whether the key set was repaired.
    pub repaired: bool,
}

impl VerifyReport {
    /// Whether the destination holds exactly what the key set says.
    pub fn matches(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.stale == 0
    }

    fn note(&mut self, kind: &str, key: &str) {
        let shown = self.sample.iter().filter(|(k, _)| k == kind).count();
        if shown < SAMPLE {
            self.sample.push((kind.to_string(), key.to_string()));
        }
    }
}

/// Compares the destination with the key set; with `repair`, rewrites the key set to match it.
pub async fn verify(
    engine: &Engine,
    sync: &SyncDef,
    repair: bool,
) -> Result<VerifyReport, EngineError> {
    if !engine.capabilities(sync)?.list {
        return Err(EngineError::Invalid(format!(
            "sync `{}`: destination `{}` cannot list its records, so retl cannot compare it with what it delivered",
            sync.name, sync.destination_connection
        )));
    }
    let state = engine.runs.sync_state(&sync.name).await?;
    let keyset = keyset_id(sync);
    let recorded = keyset_check::recorded(engine, &state, &keyset).await?;
    let shards = keyset_check::shards_of(recorded.as_ref(), &state, sync);
    let mut held: HashMap<String, KeyEntry> = HashMap::new();
    for shard in 0..shards {
        for (key, entry) in engine.keysets.load_shard(&keyset, shard, shards).await? {
            if entry.state == KeyState::Present {
                held.insert(key, entry);
            }
        }
    }
    let mut report = VerifyReport {
        key_set_records: held.len() as u64,
        ..VerifyReport::default()
    };
    let mut changes = Vec::new();
    let dest = engine.destination(sync).await?;
    dest.prepare(sync).await?;
    let mut listing = dest.list(sync).await?;
    let now = chrono::Utc::now().timestamp();
    while let Some(rec) = listing.next().await {
        let rec = rec?;
        let Ok(key) = key_of(&rec, &sync.key_fields) else {
            continue;
        };
        report.destination_records += 1;
        let hash = value_hash(&rec);
        // A stale record keeps its origin (retl wrote it); an extra one is the destination's.
        let (kind, origin) = match held.remove(&key) {
            Some(e) if e.hash == hash => continue,
            Some(e) => {
                report.stale += 1;
                ("stale", e.origin)
            }
            None => {
                report.extra += 1;
                ("extra", KeyOrigin::Baseline)
            }
        };
        report.note(kind, &key);
        changes.push(KeyChange::Put {
            key,
            entry: KeyEntry {
                hash,
                state: KeyState::Present,
                origin,
                updated_at: now,
            },
        });
    }
    for key in held.into_keys() {
        report.missing += 1;
        report.note("missing", &key);
        changes.push(KeyChange::Remove { key });
    }
    if repair {
        for chunk in changes.chunks(5000) {
            engine.keysets.apply(&keyset, shards, chunk).await?;
        }
        engine.keysets.compact(&keyset, shards).await?;
        report.repaired = !changes.is_empty();
        // The repaired key set is the new record the next plan checks it against.
        let mut state = engine.runs.sync_state(&sync.name).await?;
        state.shards = Some(shards);
        state.keyset_counts = Some(keyset_check::measure(engine, &keyset, shards).await?);
        engine.runs.put_sync_state(&state).await?;
    }
    Ok(report)
}
