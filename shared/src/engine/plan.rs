//! Plan: diff the extracted rows of each key-set shard against the key set, by the rules of
//! the sync mode, into plan files of create/update/delete operations.

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use futures::StreamExt;
use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use super::keys::RunKeys;
use super::parts::{ExtractManifest, PartReader};
use super::record_log::{redacted, write_record_log, LoggedOutcome, RecordLogEntry, MAX_LOGGED};
use super::safety::{evaluate, SafetyVerdict};
use super::{keyset_check, keyset_id, Engine, EngineError};
use crate::config::{DeleteScope, SyncDef, SyncMode};
pub use crate::modes::OpKind;
use crate::modes::{self, Decision, Known, Updates};
use crate::ports::{
    Counts, Destination, KeyChange, KeyEntry, KeyOrigin, KeyState, RunRecord, WriteOp,
};
use crate::record::{event_id, hash_hex, key_of, key_values, value_hash, Values};

/// Operations per plan file: the unit an apply step (one Lambda invocation) handles.
pub const OPS_PER_FILE: usize = 50_000;

/// What planning needs to know besides the rows; computed once per run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanContext {
    /// Key-set namespace.
    pub keyset: String,
    /// Shard count.
    pub shards: u32,
    /// Why every row is re-sent, if it is.
    pub full_resync: Option<String>,
    /// Whether the destination can look records up.
    pub can_lookup: bool,
    /// Plan only these keys (`retl retry`); every key when `None`.
    #[serde(default)]
    pub only_keys: Option<std::collections::BTreeSet<String>>,
}

/// One planned operation, a line of a plan file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOp {
    /// What to do.
    pub op: OpKind,
    /// Record key.
    pub key: String,
    /// Hex hash of `values` (creates and updates).
    #[serde(default)]
    pub hash: String,
    /// Mapped values; for deletes the key fields.
    pub values: Values,
    /// The change's stable event id ([`crate::record::event_id`]).
    #[serde(default)]
    pub event: String,
    /// An incremental model's watermark column value of the row (for where the watermark
    /// may move if this record fails); absent for other syncs, deletes and NULLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<serde_json::Value>,
}

impl PlanOp {
    /// The destination write for this operation under `mode`.
    pub fn write_op(&self, mode: SyncMode) -> WriteOp {
        modes::write_op(mode, self.op)
    }
}

/// The plan of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// The shard.
    pub shard: u32,
    /// Plan files written.
    pub files: Vec<String>,
    /// Operations in each plan file.
    pub file_ops: Vec<u64>,
    /// Planned counts.
    pub counts: Counts,
    /// Present records of the key set in this shard (within the delete scope).
    pub existing: u64,
    /// A few keys that would be deleted.
    pub delete_sample: Vec<String>,
}

/// The whole plan; stored as [`RunKeys::plan_manifest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanManifest {
    /// The run.
    pub run_id: String,
    /// Key-set namespace the plan was made against.
    pub keyset: String,
    /// Shard count.
    pub shards: u32,
    /// Plan files in apply order.
    pub files: Vec<String>,
    /// Operations in each plan file.
    pub file_ops: Vec<u64>,
    /// Planned counts.
    pub counts: Counts,
    /// Present records before the run (base of the delete threshold).
    pub existing: u64,
    /// What the safety rules decided.
    pub verdict: SafetyVerdict,
    /// A few keys that would be deleted.
    pub delete_sample: Vec<String>,
    /// Why every row is re-sent, if it is.
    pub full_resync: Option<String>,
    /// When the plan was made (the start of applying).
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Prepares planning: checks the destination, detects key/mapping changes, and on a sync's
/// first run seeds the key set from the destination's records (the baseline).
pub async fn prepare_plan(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    force_full_resync: bool,
) -> Result<PlanContext, EngineError> {
    let mut state = engine.runs.sync_state(&sync.name).await?;
    let keyset = keyset_id(sync);
    let recorded = keyset_check::recorded(engine, &state, &keyset).await?;
    let shards = keyset_check::shards_of(recorded.as_ref(), &state, sync);
    state.shards = Some(shards);
    let identity = sync.identity_fingerprint();
    let mapping = sync.mapping_fingerprint();
    let mut reasons = Vec::new();
    if force_full_resync {
        reasons.push("a full resync was requested".to_string());
    }
    if state
        .identity_fingerprint
        .as_ref()
        .is_some_and(|f| *f != identity)
    {
        reasons.push(
            "the primary key or the destination object changed, so a new key set is built".into(),
        );
    } else if state
        .mapping_fingerprint
        .as_ref()
        .is_some_and(|f| *f != mapping)
    {
        reasons.push("the field mapping changed since the last run".into());
    }
    let dest = engine.destination(sync).await?;
    dest.prepare(sync).await?;
    let caps = engine.capabilities(sync)?;
    // What a killed run applied and never folded is folded first (the plan reads less).
    engine.keysets.compact(&keyset, shards).await?;
    let mut counts = keyset_check::measure(engine, &keyset, shards).await?;
    // A full resync accepts whatever the key set holds: it lists again or re-sends all.
    let lost = match &recorded {
        Some(r) if !force_full_resync => keyset_check::shortfall(r, &counts),
        _ => None,
    };
    if let Some(what) = lost.as_ref() {
        if !keyset_check::can_rebaseline(sync, caps.list) {
            return Err(keyset_check::refusal(sync, what.clone(), caps.list));
        }
        tracing::warn!(sync = %sync.name, "the key set lost entries; listing the destination again");
        run.rebaseline_reason = Some(format!(
            "{what}; the destination was listed again to rebuild the key set"
        ));
    }
    // A mode that deletes records missing from the model must also see what a failed run
    // wrote without recording it, or those records stay for good once their rows leave.
    let unrecorded =
        caps.list && lost.is_none() && keyset_check::unrecorded_writes(engine, sync, run).await?;
    // A full resync lists the destination again, so mirror finds (and deletes) records that
    // appeared there after the first run; so does a key set found short of its record, or
    // one that may lack a failed run's writes. Records the key set holds keep their origin.
    let relist =
        (force_full_resync || lost.is_some() || unrecorded) && state.baseline_identity.is_some();
    if caps.list && (relist || state.baseline_identity.as_deref() != Some(identity.as_str())) {
        let held = if counts.total() > 0 {
            present_keys(engine, &keyset, shards).await?
        } else {
            HashSet::new()
        };
        let seeded = seed_baseline(engine, dest.as_ref(), sync, &keyset, shards, &held).await?;
        tracing::info!(sync = %sync.name, records = seeded, "key set seeded from the destination");
        state.baseline_identity = Some(identity);
        if seeded > 0 {
            engine.keysets.compact(&keyset, shards).await?;
            counts = keyset_check::measure(engine, &keyset, shards).await?;
        }
    }
    state.keyset_counts = Some(counts.clone());
    run.keyset_after = Some(counts);
    engine.runs.put_sync_state(&state).await?;
    let full_resync = (!reasons.is_empty()).then(|| reasons.join("; "));
    run.resync_reason = full_resync.clone();
    run.watermark =
        super::watermark::plan_read(sync, &state, full_resync.as_deref())?.map(|(_, w)| w);
    Ok(PlanContext {
        keyset,
        shards,
        full_resync,
        can_lookup: caps.lookup,
        only_keys: None,
    })
}

async fn seed_baseline(
    engine: &Engine,
    dest: &dyn Destination,
    sync: &SyncDef,
    keyset: &str,
    shards: u32,
    held: &HashSet<String>,
) -> Result<u64, EngineError> {
    engine.progress.start("baseline", None);
    let mut stream = dest.list(sync).await?;
    let now = chrono::Utc::now().timestamp();
    let mut batch = Vec::with_capacity(5000);
    let mut n = 0u64;
    while let Some(rec) = stream.next().await {
        let rec = rec?;
        let Ok(key) = key_of(&rec, &sync.key_fields) else {
            continue;
        };
        if held.contains(&key) {
            continue;
        }
        batch.push(KeyChange::Put {
            key,
            entry: KeyEntry {
                hash: value_hash(&rec),
                state: KeyState::Present,
                origin: KeyOrigin::Baseline,
                updated_at: now,
            },
        });
        n += 1;
        if batch.len() == 5000 {
            engine.keysets.apply(keyset, shards, &batch).await?;
            engine.progress.advance(batch.len() as u64);
            batch.clear();
        }
    }
    engine.keysets.apply(keyset, shards, &batch).await?;
    engine.progress.advance(batch.len() as u64);
    engine.progress.finish();
    Ok(n)
}

/// The keys the key set holds as present (what a re-listing must not re-seed).
async fn present_keys(
    engine: &Engine,
    keyset: &str,
    shards: u32,
) -> Result<HashSet<String>, EngineError> {
    let mut keys = HashSet::new();
    for shard in 0..shards {
        for (key, entry) in engine.keysets.load_shard(keyset, shard, shards).await? {
            if entry.state == KeyState::Present {
                keys.insert(key);
            }
        }
    }
    Ok(keys)
}

/// A model row seen in this shard.
struct Seen {
    hash: u128,
    seg: usize,
    start: usize,
    len: usize,
    /// Where its watermark value's JSON is in the segment (`start`, `len`; empty if none).
    mark: (usize, usize),
    /// Where further rows with the same key are (duplicates are rejected, all copies).
    copies: Vec<(usize, usize, usize)>,
    /// What the key set holds for the key.
    known: Option<KeyEntry>,
}

/// Buffers plan lines and writes files of at most [`OPS_PER_FILE`] operations.
struct PlanWriter<'a> {
    engine: &'a Engine,
    run_id: &'a str,
    shard: u32,
    buf: Vec<u8>,
    ops: usize,
    files: Vec<String>,
    file_ops: Vec<u64>,
}

impl PlanWriter<'_> {
    fn push(
        &mut self,
        op: OpKind,
        key: &str,
        hash: u128,
        event: &str,
        values_json: &[u8],
        mark_json: &[u8],
    ) {
        let name = match op {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        };
        let _ = write!(self.buf, "{{\"op\":\"{name}\",\"key\":");
        serde_json::to_writer(&mut self.buf, key).expect("writing to a Vec cannot fail");
        let _ = write!(
            self.buf,
            ",\"hash\":\"{}\",\"event\":\"{event}\",\"values\":",
            hash_hex(hash)
        );
        self.buf.extend_from_slice(values_json);
        if !mark_json.is_empty() {
            self.buf.extend_from_slice(b",\"mark\":");
            self.buf.extend_from_slice(mark_json);
        }
        self.buf.extend_from_slice(b"}\n");
        self.ops += 1;
    }

    async fn maybe_flush(&mut self, force: bool) -> Result<(), EngineError> {
        if self.ops == 0 || (!force && self.ops < OPS_PER_FILE) {
            return Ok(());
        }
        let key = RunKeys::new(self.run_id).plan_file(self.shard, self.files.len());
        self.engine
            .objects
            .put(&key, Bytes::from(std::mem::take(&mut self.buf)))
            .await?;
        self.files.push(key);
        self.file_ops.push(self.ops as u64);
        self.ops = 0;
        Ok(())
    }
}

/// The model rows of one shard: every part's segment for it, read once.
async fn shard_segments(
    engine: &Engine,
    extract: &ExtractManifest,
    shard: u32,
) -> Result<Vec<Bytes>, EngineError> {
    let mut segments = Vec::new();
    for part in &extract.parts {
        let seg = part
            .segments
            .get(shard as usize)
            .copied()
            .unwrap_or_default();
        if seg.len > 0 {
            segments.push(
                engine
                    .objects
                    .get_range(&part.key, seg.offset, seg.len)
                    .await?,
            );
        }
    }
    Ok(segments)
}

/// Every model key of the shard, with where its row (and any duplicate rows) are. `rows` is
/// the extract's count of them: the map is sized once instead of rehashed as it grows (the
/// rehashes and the fresh pages they touch were a tenth of a plan's time).
fn index_rows(segments: &[Bytes], rows: u64) -> Result<HashMap<&str, Seen>, EngineError> {
    // A count beyond what the bytes can hold is no reason to reserve it.
    let bytes: usize = segments.iter().map(Bytes::len).sum();
    let capacity = usize::try_from(rows).unwrap_or(usize::MAX).min(bytes / 8);
    let mut seen: HashMap<&str, Seen> = HashMap::with_capacity(capacity);
    for (i, seg) in segments.iter().enumerate() {
        for rec in PartReader::new(seg) {
            let rec = rec.map_err(EngineError::Corrupt)?;
            let start = rec.values.as_ptr() as usize - seg.as_ptr() as usize;
            let mark = (
                rec.mark.as_ptr() as usize - seg.as_ptr() as usize,
                rec.mark.len(),
            );
            seen.entry(rec.key)
                .and_modify(|s| s.copies.push((i, start, rec.values.len())))
                .or_insert(Seen {
                    hash: rec.hash,
                    seg: i,
                    start,
                    len: rec.values.len(),
                    mark,
                    copies: Vec::new(),
                    known: None,
                });
        }
    }
    Ok(seen)
}

/// Planning one shard: the model rows with what the key set holds for each, the key set's
/// records whose keys left the model, and what is decided so far.
struct ShardPlanner<'a> {
    engine: &'a Engine,
    sync: &'a SyncDef,
    ctx: &'a PlanContext,
    dest: Option<&'a dyn Destination>,
    segments: &'a [Bytes],
    seen: HashMap<&'a str, Seen>,
    /// The key set's records (within the delete scope) whose keys left the model, by key.
    departed: Vec<(&'a str, KeyEntry)>,
    /// Present records of the key set within the delete scope.
    existing: u64,
    counts: Counts,
    rejected: Vec<RecordLogEntry>,
}

impl<'a> ShardPlanner<'a> {
    /// Walks the key set's records once: each one either belongs to a model row (what the
    /// key set holds for it) or has left the model; no map of the key set is built.
    fn match_keyset(&mut self, entries: &'a [(String, KeyEntry)]) {
        for (key, entry) in entries {
            let in_scope = self.in_scope(entry);
            self.existing += u64::from(in_scope);
            if let Some(s) = self.seen.get_mut(key.as_str()) {
                s.known = Some(*entry);
            } else if in_scope && self.wanted(key) {
                self.departed.push((key, *entry));
            }
        }
        self.departed.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }

    fn wanted(&self, key: &str) -> bool {
        self.ctx
            .only_keys
            .as_ref()
            .is_none_or(|only| only.contains(key))
    }

    /// Rejects every row of a key that appears more than once.
    fn reject_duplicates(&mut self, key: &str, s: &Seen) {
        let n = s.copies.len() + 1;
        self.counts.rejected += n as u64;
        let rows = std::iter::once((s.seg, s.start, s.len)).chain(s.copies.iter().copied());
        for (seg, start, len) in rows {
            if self.rejected.len() >= MAX_LOGGED {
                break;
            }
            let entry = RecordLogEntry {
                key: Some(key.to_string()),
                stage: "plan".into(),
                code: "duplicate_key".into(),
                message: format!(
                    "the key appears {n} times in the model; all {n} rows are rejected"
                ),
                values: serde_json::from_slice(&self.segments[seg][start..start + len])
                    .unwrap_or_default(),
                outcome: LoggedOutcome::Rejected,
            };
            self.rejected.push(redacted(self.dest, self.sync, entry));
        }
    }

    /// The mode's decision for every model key; returns the operations and the keys the
    /// destination must be asked about.
    fn decide_rows(&mut self) -> (Vec<(OpKind, &'a str)>, Vec<&'a str>) {
        let resync = self.ctx.full_resync.is_some();
        let mut ops = Vec::new();
        let mut lookups = Vec::new();
        let seen = std::mem::take(&mut self.seen);
        for (key, s) in &seen {
            if !self.wanted(key) {
                continue;
            }
            if !s.copies.is_empty() {
                self.reject_duplicates(key, s);
                continue;
            }
            let known = Known::of(s.known.as_ref(), s.hash);
            match modes::decide(self.sync.mode, known, resync, self.ctx.can_lookup) {
                Decision::Op(op) => ops.push((op, *key)),
                Decision::Unchanged => self.counts.unchanged += 1,
                Decision::Skipped => self.counts.skipped += 1,
                Decision::NeedsLookup => lookups.push(*key),
            }
        }
        self.seen = seen;
        (ops, lookups)
    }

    /// Asks the destination about keys unknown to the key set, remembers what it holds, and
    /// decides them.
    async fn resolve_lookups(
        &mut self,
        lookups: Vec<&'a str>,
        ops: &mut Vec<(OpKind, &'a str)>,
    ) -> Result<(), EngineError> {
        if lookups.is_empty() {
            return Ok(());
        }
        let dest = self.dest.ok_or_else(|| {
            EngineError::Invalid("planning needs the destination for lookups".into())
        })?;
        let owned: Vec<String> = lookups.iter().map(|k| k.to_string()).collect();
        let found = dest.lookup(self.sync, &owned).await?;
        let now = chrono::Utc::now().timestamp();
        let mut learned = Vec::new();
        let mut found_hash: HashMap<String, u128> = HashMap::new();
        for values in found {
            if let Ok(k) = key_of(&values, &self.sync.key_fields) {
                let h = value_hash(&values);
                found_hash.insert(k.clone(), h);
                learned.push(KeyChange::Put {
                    key: k,
                    entry: KeyEntry {
                        hash: h,
                        state: KeyState::Present,
                        origin: KeyOrigin::Baseline,
                        updated_at: now,
                    },
                });
            }
        }
        let ctx = self.ctx;
        self.engine
            .keysets
            .apply(&ctx.keyset, ctx.shards, &learned)
            .await?;
        let resync = ctx.full_resync.is_some();
        for key in lookups {
            let found = found_hash.get(key).copied();
            match modes::decide_after_lookup(self.sync.mode, found, self.seen[key].hash, resync) {
                Decision::Op(op) => ops.push((op, key)),
                Decision::Unchanged => self.counts.unchanged += 1,
                Decision::Skipped | Decision::NeedsLookup => self.counts.skipped += 1,
            }
        }
        Ok(())
    }

    /// The change's event id, from what the key set held for the key.
    fn event(&self, op: OpKind, key: &str, known: Option<&KeyEntry>, hash: u128) -> String {
        let before = known.map_or((0, 0), |e| {
            (
                e.hash ^ u128::from(e.state == KeyState::Deleted),
                e.updated_at,
            )
        });
        let name = match op {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        };
        // Where a record is created once and never updated (append, insert), its create is
        // the same event whatever values it carries: a row that changed between a killed
        // run and its rerun must not become a second create under a new id.
        let after = if op == OpKind::Create && self.sync.mode.rules().updates == Updates::Never {
            0
        } else {
            hash
        };
        event_id(&self.ctx.keyset, key, name, before, after)
    }

    fn in_scope(&self, e: &KeyEntry) -> bool {
        e.state == KeyState::Present
            && (self.sync.delete_scope == DeleteScope::All || e.origin == KeyOrigin::Synced)
    }

    /// Writes the operations (and the deletes of departed keys) into plan files.
    async fn write(
        &mut self,
        writer: &mut PlanWriter<'_>,
        mut ops: Vec<(OpKind, &str)>,
    ) -> Result<Vec<String>, EngineError> {
        ops.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let key_json = |key: &str| {
            serde_json::to_vec(&key_values(key, &self.sync.key_fields)).expect("keys serialise")
        };
        for (op, key) in ops {
            let s = &self.seen[key];
            match op {
                OpKind::Create => self.counts.creates += 1,
                OpKind::Update => self.counts.updates += 1,
                OpKind::Delete => self.counts.deletes += 1,
            }
            let event = self.event(op, key, s.known.as_ref(), s.hash);
            if op == OpKind::Delete {
                writer.push(op, key, 0, &event, &key_json(key), b"");
            } else {
                let seg = &self.segments[s.seg];
                let values = &seg[s.start..s.start + s.len];
                let mark = &seg[s.mark.0..s.mark.0 + s.mark.1];
                writer.push(op, key, s.hash, &event, values, mark);
            }
            writer.maybe_flush(false).await?;
        }
        let mut delete_sample = Vec::new();
        if self.sync.mode.deletes_missing() {
            for (key, entry) in &self.departed {
                self.counts.deletes += 1;
                if delete_sample.len() < 20 {
                    delete_sample.push(key.to_string());
                }
                let event = self.event(OpKind::Delete, key, Some(entry), 0);
                writer.push(OpKind::Delete, key, 0, &event, &key_json(key), b"");
                writer.maybe_flush(false).await?;
            }
        }
        writer.maybe_flush(true).await?;
        Ok(delete_sample)
    }
}

/// Plans one shard and writes its plan files.
pub async fn plan_shard(
    engine: &Engine,
    run_id: &str,
    sync: &SyncDef,
    ctx: &PlanContext,
    extract: &ExtractManifest,
    shard: u32,
    dest: Option<&dyn Destination>,
) -> Result<ShardPlan, EngineError> {
    let entries = engine
        .keysets
        .load_shard(&ctx.keyset, shard, ctx.shards)
        .await?;
    let segments = shard_segments(engine, extract, shard).await?;
    let mut planner = ShardPlanner {
        engine,
        sync,
        ctx,
        dest,
        segments: &segments,
        seen: index_rows(&segments, extract.shard_rows(shard))?,
        departed: Vec::new(),
        existing: 0,
        counts: Counts::default(),
        rejected: Vec::new(),
    };
    planner.match_keyset(&entries);
    let (mut ops, lookups) = planner.decide_rows();
    planner.resolve_lookups(lookups, &mut ops).await?;
    let mut writer = PlanWriter {
        engine,
        run_id,
        shard,
        buf: Vec::new(),
        ops: 0,
        files: Vec::new(),
        file_ops: Vec::new(),
    };
    let delete_sample = planner.write(&mut writer, ops).await?;
    let existing = planner.existing;
    let name = format!("plan-{shard:04}");
    write_record_log(engine.objects.as_ref(), run_id, &name, &planner.rejected).await?;
    Ok(ShardPlan {
        shard,
        files: writer.files,
        file_ops: writer.file_ops,
        counts: planner.counts,
        existing,
        delete_sample,
    })
}

/// Combines shard plans, applies the safety rules and writes the plan manifest.
pub async fn summarize_plan(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    ctx: &PlanContext,
    extract: &ExtractManifest,
    shard_plans: &[ShardPlan],
) -> Result<PlanManifest, EngineError> {
    let mut counts = Counts {
        rows: extract.rows,
        rejected: extract.rejected,
        ..Counts::default()
    };
    let mut existing = 0;
    let mut files = Vec::new();
    let mut file_ops = Vec::new();
    let mut delete_sample = Vec::new();
    let mut by_shard: BTreeMap<u32, &ShardPlan> = BTreeMap::new();
    for p in shard_plans {
        by_shard.insert(p.shard, p);
    }
    for p in by_shard.values() {
        counts.add(&p.counts);
        existing += p.existing;
        files.extend(p.files.iter().cloned());
        file_ops.extend(p.file_ops.iter().copied());
        for k in &p.delete_sample {
            if delete_sample.len() < 20 {
                delete_sample.push(k.clone());
            }
        }
    }
    let valid_rows = extract.rows.saturating_sub(extract.rejected);
    let verdict = evaluate(sync, &counts, existing, valid_rows);
    let manifest = PlanManifest {
        run_id: run.run_id.clone(),
        keyset: ctx.keyset.clone(),
        shards: ctx.shards,
        files,
        file_ops,
        counts: counts.clone(),
        existing,
        verdict,
        delete_sample,
        full_resync: ctx.full_resync.clone(),
        created_at: Some(chrono::Utc::now()),
    };
    let key = RunKeys::new(&run.run_id).plan_manifest();
    let body = serde_json::to_vec(&manifest).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    engine.objects.put(&key, Bytes::from(body)).await?;
    // Until this plan is applied (or ends unapplied), a run killed while applying it may
    // leave the key set short of the recorded counts without any state loss: an update of
    // a record found missing forgets its key (deletes leave tombstones; counted too, to be safe).
    let mut state = engine.runs.sync_state(&sync.name).await?;
    if let Some(c) = state
        .keyset_counts
        .as_mut()
        .filter(|c| c.keyset == ctx.keyset)
    {
        c.pending_removals = counts.updates + counts.deletes;
        engine.runs.put_sync_state(&state).await?;
    }
    run.planned = counts;
    run.existing = existing;
    run.plan = Some(key);
    run.updated_at = chrono::Utc::now();
    engine.runs.put_run(run).await?;
    Ok(manifest)
}

/// Reads a run's plan manifest.
pub async fn read_manifest(engine: &Engine, run: &RunRecord) -> Result<PlanManifest, EngineError> {
    let key = run
        .plan
        .clone()
        .ok_or_else(|| EngineError::Corrupt(format!("run {} has no plan", run.run_id)))?;
    let body = engine.objects.get(&key).await?;
    serde_json::from_slice(&body).map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))
}

/// Reads one plan file.
pub async fn read_plan_ops(engine: &Engine, file: &str) -> Result<Vec<PlanOp>, EngineError> {
    let body = engine.objects.get(file).await?;
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| EngineError::Corrupt(format!("{file}: {e}")))
        })
        .collect()
}
