//! Apply: send a plan file through the delivery framework and move the key set only for the
//! records the destination acknowledged.

use std::cmp::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::keys::{keyset_name, plan_file_stem, shard_of_plan_file};
use super::lifecycle::{finish_run, keep_lock};
use super::plan::{read_plan_ops, OpKind, PlanManifest, PlanOp, OPS_PER_FILE};
use super::record_log::{redacted, write_record_log, LoggedOutcome, RecordLogEntry, MAX_LOGGED};
use super::watermark::{advance, bound_of, highest_below, keep, Reach};
use super::{Engine, EngineError};
use crate::config::SyncDef;
use crate::delivery::{Delivered, Deliverer};
use crate::modes;
use crate::ports::{
    Bound, Counts, KeyChange, KeyEntry, OutRecord, RecordOutcome, RunRecord, RunStatus, WriteOp,
};
use crate::record::parse_hash;

/// Result of applying one plan file (or, summed, a whole plan).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Delivered creates/updates/deletes, apply-time skipped, rejected and failed records.
    pub counts: Counts,
    /// The error that stopped delivery, if any.
    pub fatal: Option<(String, String)>,
    /// An incremental model's lowest watermark value among the failed records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest_failed: Option<Bound>,
    /// Whether a failed record had no watermark value (NULL, or a plan made before records
    /// carried one): then how far the rows are final is not known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmarked_failed: bool,
}

impl ApplyOutcome {
    /// Adds another file's outcome.
    pub fn add(&mut self, other: &ApplyOutcome) {
        self.counts.add(&other.counts);
        if self.fatal.is_none() {
            self.fatal.clone_from(&other.fatal);
        }
        if let Some(v) = &other.lowest_failed {
            self.fail_at(v.clone());
        }
        self.unmarked_failed |= other.unmarked_failed;
    }

    /// Takes the watermark value of a failed record.
    fn fail_at(&mut self, v: Bound) {
        keep(&mut self.lowest_failed, v, Ordering::Less);
    }
}

fn count_delivered(counts: &mut Counts, op: OpKind) {
    match op {
        OpKind::Create => counts.creates += 1,
        OpKind::Update => counts.updates += 1,
        OpKind::Delete => counts.deletes += 1,
    }
}

/// Groups plan files into apply units of about [`OPS_PER_FILE`] operations, so that small
/// shards still fill whole batches.
pub fn apply_units(manifest: &PlanManifest) -> Vec<Vec<String>> {
    let mut units: Vec<Vec<String>> = Vec::new();
    let mut current = Vec::new();
    let mut ops = 0usize;
    for (file, n) in manifest.files.iter().zip(&manifest.file_ops) {
        if !current.is_empty() && ops + *n as usize > OPS_PER_FILE {
            units.push(std::mem::take(&mut current));
            ops = 0;
        }
        ops += *n as usize;
        current.push(file.clone());
    }
    if !current.is_empty() {
        units.push(current);
    }
    units
}

/// Reads a unit's plan files. With `resume`, operations the key set already reflects
/// (delivered by an earlier attempt of this step) are counted as delivered and dropped.
async fn load_ops(
    engine: &Engine,
    sync: &SyncDef,
    manifest: &PlanManifest,
    files: &[String],
    resume: bool,
    counts: &mut Counts,
) -> Result<Vec<PlanOp>, EngineError> {
    let mut ops = Vec::new();
    for file in files {
        let mut file_ops = read_plan_ops(engine, file).await?;
        if let (true, Some(shard)) = (resume, shard_of_plan_file(file)) {
            let entries: HashMap<String, KeyEntry> = engine
                .keysets
                .load_shard(&manifest.keyset, shard, manifest.shards)
                .await?
                .into_iter()
                .collect();
            file_ops.retain(|op| {
                let hash = parse_hash(&op.hash).unwrap_or(0);
                let done = modes::already_applied(sync.mode, op.op, hash, entries.get(&op.key));
                if done {
                    count_delivered(counts, op.op);
                }
                !done
            });
        }
        ops.extend(file_ops);
    }
    Ok(ops)
}

/// What settling a record's outcome needs of its plan operation.
struct Planned {
    op: OpKind,
    hash: u128,
    mark: Option<serde_json::Value>,
}

/// The records of each destination write, in a fixed order.
type Writes = Vec<(WriteOp, Vec<OutRecord>)>;

/// The records of each destination write and each key's operation. The operations' values
/// move into the records: nothing is copied.
fn group(sync: &SyncDef, ops: Vec<PlanOp>) -> (Writes, HashMap<String, Planned>) {
    const ORDER: [WriteOp; 4] = [
        WriteOp::Upsert,
        WriteOp::Create,
        WriteOp::Update,
        WriteOp::Delete,
    ];
    let mut groups: Writes = ORDER.into_iter().map(|w| (w, Vec::new())).collect();
    let mut by_key = HashMap::with_capacity(ops.len());
    for op in ops {
        let write = op.write_op(sync.mode);
        let at = ORDER
            .iter()
            .position(|w| *w == write)
            .expect("every write has a place");
        by_key.insert(
            op.key.clone(),
            Planned {
                op: op.op,
                hash: parse_hash(&op.hash).unwrap_or(0),
                mark: op.mark,
            },
        );
        groups[at].1.push(OutRecord {
            key: op.key,
            values: op.values,
            event_id: op.event,
        });
    }
    groups.retain(|(_, records)| !records.is_empty());
    (groups, by_key)
}

/// What one apply unit has done so far.
struct Applied<'a> {
    sync: &'a SyncDef,
    deliverer: &'a Deliverer,
    by_key: HashMap<String, Planned>,
    counts: Counts,
    logged: Vec<RecordLogEntry>,
    /// The watermark values of failed records, as far as apply needs them.
    marks: ApplyOutcome,
}

impl Applied<'_> {
    /// Counts one delivered batch and returns the key-set changes it implies.
    fn settle(&mut self, write: WriteOp, done: &Delivered) -> Vec<KeyChange> {
        let now = chrono::Utc::now().timestamp();
        let mut changes = Vec::with_capacity(done.results.len());
        for (rec, outcome) in &done.results {
            let Some(op) = self.by_key.get(&rec.key) else {
                continue;
            };
            changes.extend(modes::key_change(write, &rec.key, op.hash, outcome, now));
            let (code, message, logged) = match outcome {
                RecordOutcome::Delivered => {
                    count_delivered(&mut self.counts, op.op);
                    continue;
                }
                RecordOutcome::Skipped { .. } => {
                    self.counts.skipped += 1;
                    continue;
                }
                RecordOutcome::Rejected { code, message } => {
                    self.counts.rejected += 1;
                    (code, message, LoggedOutcome::Rejected)
                }
                RecordOutcome::Failed { code, message } => {
                    self.counts.failed += 1;
                    match op.mark.as_ref().and_then(bound_of) {
                        Some(v) => self.marks.fail_at(v),
                        None => self.marks.unmarked_failed = true,
                    }
                    (code, message, LoggedOutcome::Failed)
                }
            };
            if self.logged.len() < MAX_LOGGED {
                let entry = RecordLogEntry {
                    key: Some(rec.key.clone()),
                    stage: write.as_str().into(),
                    code: code.clone(),
                    message: message.clone(),
                    values: rec.values.clone(),
                    outcome: logged,
                };
                let dest = Some(self.deliverer.destination());
                self.logged.push(redacted(dest, self.sync, entry));
            }
        }
        changes
    }
}

/// Applies a unit of plan files (see [`apply_units`]); `resume` skips what an earlier
/// attempt delivered.
pub async fn apply_files(
    engine: &Engine,
    run_id: &str,
    sync: &SyncDef,
    manifest: &PlanManifest,
    deliverer: &Arc<Deliverer>,
    files: &[String],
    resume: bool,
) -> Result<ApplyOutcome, EngineError> {
    let mut counts = Counts::default();
    let ops = load_ops(engine, sync, manifest, files, resume, &mut counts).await?;
    let (groups, by_key) = group(sync, ops);
    let mut applied = Applied {
        sync,
        deliverer,
        by_key,
        counts,
        logged: Vec::new(),
        marks: ApplyOutcome::default(),
    };
    engine
        .progress
        .start("apply", Some(applied.by_key.len() as u64));
    for (write, records) in groups {
        // Delivery runs on its own task, so the destination keeps writing while a batch's
        // acknowledgements are committed to the key set (a stream polled only between
        // commits would leave it idle meanwhile). A batch holds its slot until `done` is
        // dropped after its commit, so a crash resends at most `concurrency + 1` batches;
        // dropping the set (an error below) stops delivery.
        let (tx, mut delivered) = tokio::sync::mpsc::channel(1);
        let mut delivery = tokio::task::JoinSet::new();
        let stream = deliverer.deliver(write, records);
        delivery.spawn(async move {
            let mut stream = Box::pin(stream);
            while let Some(done) = stream.next().await {
                if tx.send(done).await.is_err() {
                    return;
                }
            }
        });
        while let Some(done) = delivered.recv().await {
            let changes = applied.settle(write, &done);
            // The acknowledgement is durable before the next batch is counted as done.
            engine
                .keysets
                .apply(&manifest.keyset, manifest.shards, &changes)
                .await?;
            // A run that lost its lock stops: delivery is dropped with the batch under way.
            keep_lock(engine, &sync.name, run_id).await?;
            engine.progress.advance(done.results.len() as u64);
        }
    }
    engine.progress.finish();
    let stem = plan_file_stem(files.first().map(String::as_str).unwrap_or("none"));
    write_record_log(
        engine.objects.as_ref(),
        run_id,
        &format!("apply-{stem}"),
        &applied.logged,
    )
    .await?;
    Ok(ApplyOutcome {
        counts: applied.counts,
        fatal: deliverer.fatal_error(),
        ..applied.marks
    })
}

/// Ends an applied run: final counts and status, key-set generation and fingerprints.
/// `failure` (a step that failed for good after some records were delivered) makes the run
/// failed while keeping what was delivered.
pub async fn finish_apply(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    manifest: &PlanManifest,
    applied: &ApplyOutcome,
    failure: Option<(String, String)>,
) -> Result<(), EngineError> {
    let planned = &manifest.counts;
    run.counts = Counts {
        rows: planned.rows,
        creates: applied.counts.creates,
        updates: applied.counts.updates,
        deletes: applied.counts.deletes,
        unchanged: planned.unchanged,
        skipped: planned.skipped + applied.counts.skipped,
        rejected: planned.rejected + applied.counts.rejected,
        failed: applied.counts.failed,
    };
    let mut state = engine.runs.sync_state(&sync.name).await?;
    let identity = sync.identity_fingerprint();
    if let Some(old) = state
        .identity_fingerprint
        .as_ref()
        .filter(|f| **f != identity)
    {
        let old_keyset = keyset_name(&sync.name, old);
        engine.keysets.clear(&old_keyset, manifest.shards).await?;
    }
    state.generation += 1;
    engine
        .keysets
        .compact(&manifest.keyset, manifest.shards)
        .await?;
    let counts = super::keyset_check::measure(engine, &manifest.keyset, manifest.shards).await?;
    state.keyset_counts = Some(counts.clone());
    run.keyset_after = Some(counts);
    state.identity_fingerprint = Some(identity);
    state.mapping_fingerprint = Some(sync.mapping_fingerprint());
    if let Some(w) = run.watermark.as_mut() {
        // Every record has an outcome unless a step or the destination stopped the run.
        let stopped = failure.is_some() || applied.fatal.is_some();
        let reach = match (&applied.lowest_failed, applied.unmarked_failed) {
            _ if stopped => Reach::Nothing,
            _ if applied.counts.failed == 0 => Reach::All,
            (Some(low), false) => {
                Reach::UpTo(highest_below(engine, &run.run_id, manifest, low).await?)
            }
            _ => Reach::Nothing,
        };
        advance(&mut state, w, reach);
    }
    engine.runs.put_sync_state(&state).await?;
    let status = if let Some((name, message)) = failure {
        run.error = Some(message);
        run.error_name = Some(name);
        RunStatus::Failed
    } else if let Some((code, message)) = &applied.fatal {
        run.error = Some(format!(
            "the destination stopped the delivery: {code}: {message}"
        ));
        run.error_name = Some("Retl.DestinationFatal".into());
        RunStatus::Failed
    } else if run.counts.failed > 0 || run.counts.rejected > 0 {
        RunStatus::PartiallyFailed
    } else {
        RunStatus::Succeeded
    };
    finish_run(engine, run, status).await
}
