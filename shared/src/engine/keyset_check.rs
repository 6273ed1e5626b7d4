//! The key-set check: every plan compares what the key set holds with what this sync last
//! recorded it held ([`KeySetCounts`], stored in the sync state and on the run that recorded
//! it). A key set that lost entries (rows deleted from `.retl/state.db`, a restored or
//! emptied table, a sync state lost with its shard count) would otherwise be trusted: a
//! mirror would never delete the records whose entries went, an append would create again
//! what it already delivered. The plan re-lists the destination where it can, or refuses.

use super::{Engine, EngineError};
use crate::config::{DeleteScope, SyncDef};
use crate::ports::{KeySetCounts, RunRecord, RunStatus, SyncState};

/// Runs searched for a recorded count when the sync state lost it.
const RUNS_SEARCHED: usize = 50;

/// What this sync last recorded for `keyset`: the sync state's record, or (when the sync
/// state was lost) the newest run's.
pub(crate) async fn recorded(
    engine: &Engine,
    state: &SyncState,
    keyset: &str,
) -> Result<Option<KeySetCounts>, EngineError> {
    if let Some(c) = state.keyset_counts.as_ref().filter(|c| c.keyset == keyset) {
        return Ok(Some(c.clone()));
    }
    let runs = engine
        .runs
        .list_runs(Some(&state.sync), RUNS_SEARCHED)
        .await?;
    Ok(runs
        .into_iter()
        .filter_map(|r| r.keyset_after)
        .find(|c| c.keyset == keyset))
}

/// The shard count to read the key set with: the one its entries were written with (a sync
/// state lost, and its count with it, must not make the key set be read with another one),
/// else the sync state's, else the sync's setting (a new sync).
pub(crate) fn shards_of(recorded: Option<&KeySetCounts>, state: &SyncState, sync: &SyncDef) -> u32 {
    recorded
        .map(|r| r.shards)
        .or(state.shards)
        .unwrap_or(sync.shards)
}

/// What the key set holds now, counted with `shards`.
pub(crate) async fn measure(
    engine: &Engine,
    keyset: &str,
    shards: u32,
) -> Result<KeySetCounts, EngineError> {
    Ok(KeySetCounts {
        keyset: keyset.to_string(),
        shards,
        entries: engine.keysets.counts(keyset, shards).await?,
        pending_removals: 0,
    })
}

/// How the key set `now` falls short of `recorded` (both counted with the recorded shard
/// count), if it does beyond what an unfinished run may have removed. More entries than
/// recorded is never a loss (a killed run's creates).
pub(crate) fn shortfall(recorded: &KeySetCounts, now: &KeySetCounts) -> Option<String> {
    let allowed = recorded.pending_removals;
    let short: Vec<(usize, u64, u64)> = recorded
        .entries
        .iter()
        .zip(&now.entries)
        .enumerate()
        .filter(|(_, (was, is))| is.saturating_add(allowed) < **was)
        .map(|(i, (was, is))| (i, *was, *is))
        .collect();
    if short.is_empty() {
        return None;
    }
    let lost: u64 = short.iter().map(|(_, was, is)| was - is).sum();
    let shards = short
        .iter()
        .take(4)
        .map(|(i, was, is)| format!("shard {i}: {was} -> {is}"))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if short.len() > 4 { ", ..." } else { "" };
    Some(format!(
        "the key set holds {} entries where the last run recorded {} ({lost} gone; {shards}{more})",
        now.total(),
        recorded.total()
    ))
}

/// Whether a plan may rebuild the lost key set by listing the destination. Not when the
/// mode deletes only what retl delivered: a re-listed record cannot tell who wrote it.
pub(crate) fn can_rebaseline(sync: &SyncDef, can_list: bool) -> bool {
    can_list && !(sync.mode.deletes_missing() && sync.delete_scope == DeleteScope::Synced)
}

/// Whether the key set may lack records the destination holds, in a mode that deletes what
/// left the model: the sync's previous run failed (a killed process, a step that failed for
/// good) after planning writes it did not all record, and the destination may hold some of
/// them without the acknowledgement having reached the key set; such records would never be
/// deleted once their rows leave the model. Says why on `run` (`rebaseline_reason`).
pub(crate) async fn unrecorded_writes(
    engine: &Engine,
    sync: &SyncDef,
    run: &mut RunRecord,
) -> Result<bool, EngineError> {
    if !sync.mode.deletes_missing() {
        return Ok(false);
    }
    let runs = engine.runs.list_runs(Some(&sync.name), 3).await?;
    let Some(previous) = runs.iter().find(|r| r.run_id != run.run_id) else {
        return Ok(false);
    };
    let planned = previous.planned.creates + previous.planned.updates;
    let recorded = previous.counts.creates + previous.counts.updates;
    if previous.status != RunStatus::Failed || previous.plan.is_none() || planned <= recorded {
        return Ok(false);
    }
    run.rebaseline_reason = Some(format!(
        "the previous run {} failed with {} planned writes not recorded, some of which the \
         destination may hold; the destination was listed again",
        previous.run_id,
        planned - recorded
    ));
    Ok(true)
}

/// The refusal when the key set cannot be rebuilt here: what happened and the fixes.
pub(crate) fn refusal(sync: &SyncDef, what: String, can_list: bool) -> EngineError {
    let name = &sync.name;
    let fix = if can_list {
        format!(
            "run `retl verify {name} --repair` to rebuild it from the destination's records, \
             or `retl run {name} --full-resync` to list the destination again and re-send every row"
        )
    } else {
        format!(
            "destination `{}` cannot list its records to rebuild it; `retl run {name} --full-resync` \
             re-sends every row (a receiver that cannot de-duplicate by event id may get some twice)",
            sync.destination_connection
        )
    };
    EngineError::KeySetMismatch {
        sync: name.clone(),
        what,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(shards: u32, entries: &[u64], pending: u64) -> KeySetCounts {
        KeySetCounts {
            keyset: "s@f".into(),
            shards,
            entries: entries.to_vec(),
            pending_removals: pending,
        }
    }

    #[test]
    fn fewer_entries_than_recorded_is_a_loss() {
        assert_eq!(
            shortfall(&counts(2, &[5, 5], 0), &counts(2, &[5, 5], 0)),
            None
        );
        assert_eq!(
            shortfall(&counts(2, &[5, 5], 0), &counts(2, &[6, 9], 0)),
            None
        );
        let lost = shortfall(&counts(2, &[5, 5], 0), &counts(2, &[0, 5], 0)).unwrap();
        assert!(
            lost.contains("holds 5 entries where the last run recorded 10"),
            "{lost}"
        );
        assert!(lost.contains("shard 0: 5 -> 0"), "{lost}");
    }

    #[test]
    fn an_unfinished_runs_deletes_are_not_a_loss() {
        assert_eq!(
            shortfall(&counts(2, &[5, 5], 3), &counts(2, &[2, 4], 0)),
            None
        );
        assert!(shortfall(&counts(2, &[5, 5], 3), &counts(2, &[1, 5], 0)).is_some());
    }
}
