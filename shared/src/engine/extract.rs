//! Extract: run the model SQL and stream its rows into part files grouped by key-set shard,
//! in memory bounded by the chunk size.

use std::cmp::Ordering;

use bytes::Bytes;
use futures::StreamExt;

use super::keys::RunKeys;
use super::parts::{encode_record, ExtractManifest, PartInfo, Segment};
use super::record_log::{redacted, write_record_log, LoggedOutcome, RecordLogEntry, MAX_LOGGED};
use super::watermark::{compare, Highest};
use super::{Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::RunRecord;
use crate::ports::{Bound, ModelQuery, RowFilter};
use crate::record::{key_of_parts, shard_of, KeyProblem, RecordEncoder};
use serde_json::Value;

/// Extract tuning.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Bytes buffered before a part is written.
    pub chunk_bytes: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            chunk_bytes: 16 << 20,
        }
    }
}

/// Checks that the model returns every column the sync reads (run, plan and preview).
pub(crate) fn check_columns(sync: &SyncDef, columns: &[String]) -> Result<(), EngineError> {
    let has = |c: &String| columns.iter().any(|x| x == c);
    let mut problems = Vec::new();
    for c in &sync.primary_key {
        if !has(c) {
            problems.push(format!("primary key column `{c}`"));
        }
    }
    if let Some(inc) = sync.incremental.as_ref().filter(|i| !has(&i.column)) {
        problems.push(format!("incremental column `{}`", inc.column));
    }
    for (field, c) in &sync.mapping {
        if !has(c) && !sync.primary_key.contains(c) {
            problems.push(format!("column `{c}` (mapped to `{field}`)"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(EngineError::Invalid(format!(
        "sync `{}`: the model does not return {}; it returns: {}. Fix the mapping or the SQL",
        sync.name,
        problems.join(", "),
        columns.join(", ")
    )))
}

struct PartWriter<'a> {
    engine: &'a Engine,
    run_id: &'a str,
    shards: Vec<Vec<u8>>,
    rows: Vec<u64>,
    bytes: usize,
    parts: Vec<PartInfo>,
    /// The highest watermark value of the records buffered for the next part.
    highest: Option<Bound>,
}

/// Where the sync's columns are in a model row, worked out once per run so that each row is
/// keyed and encoded by position.
struct RowLayout {
    /// Each key column's name and position (`None` when the model lacks it: a null key).
    key: Vec<(String, Option<usize>)>,
    /// Each mapped field in sorted name order: its name, the name as JSON, and the position
    /// of its column (`None` when the model lacks it: the field is null).
    fields: Vec<(String, Vec<u8>, Option<usize>)>,
    /// The incremental column's position.
    mark: Option<usize>,
}

impl RowLayout {
    fn new(sync: &SyncDef, columns: &[String]) -> Self {
        let position = |c: &str| columns.iter().position(|x| x == c);
        RowLayout {
            key: sync
                .primary_key
                .iter()
                .map(|c| (c.clone(), position(c)))
                .collect(),
            // The mapping is a BTreeMap: its fields already come in sorted order.
            fields: sync
                .mapping
                .iter()
                .map(|(field, column)| {
                    let quoted = serde_json::to_vec(field).expect("a field name serialises");
                    (field.clone(), quoted, position(column))
                })
                .collect(),
            mark: sync.incremental.as_ref().and_then(|i| position(&i.column)),
        }
    }

    fn key(&self, row: &[Value]) -> Result<String, KeyProblem> {
        key_of_parts(
            self.key
                .iter()
                .map(|(c, at)| (c.as_str(), at.and_then(|i| row.get(i)))),
        )
    }

    /// Appends the row's mapped values as a JSON object to `out`; returns their hash.
    fn encode(&self, row: &[Value], out: &mut Vec<u8>) -> u128 {
        let mut record = RecordEncoder::new(out);
        for (name, quoted, at) in &self.fields {
            record.field(
                name,
                quoted,
                at.and_then(|i| row.get(i)).unwrap_or(&Value::Null),
            );
        }
        record.finish()
    }

    /// The row's mapped values as a map (for the record log of a rejected row).
    fn mapped(&self, row: &[Value]) -> crate::record::Values {
        self.fields
            .iter()
            .map(|(name, _, at)| {
                let value = at.and_then(|i| row.get(i)).cloned();
                (name.clone(), value.unwrap_or(Value::Null))
            })
            .collect()
    }
}

impl PartWriter<'_> {
    /// Appends one encoded record (its values' JSON and hash) to its shard's buffer, writing
    /// a part when the buffers are full.
    async fn add(
        &mut self,
        key: &str,
        hash: u128,
        json: &[u8],
        mark: Option<(Vec<u8>, Bound)>,
        chunk_bytes: usize,
    ) -> Result<(), EngineError> {
        let shard = shard_of(key, self.shards.len() as u32) as usize;
        let before = self.shards[shard].len();
        let mark_json = match mark {
            Some((json, bound)) => {
                let higher = self
                    .highest
                    .as_ref()
                    .is_none_or(|h| compare(&bound, h) == Some(Ordering::Greater));
                if higher {
                    self.highest = Some(bound);
                }
                json
            }
            None => Vec::new(),
        };
        encode_record(&mut self.shards[shard], key, hash, json, &mark_json);
        self.bytes += self.shards[shard].len() - before;
        self.rows[shard] += 1;
        if self.bytes >= chunk_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), EngineError> {
        if self.bytes == 0 {
            return Ok(());
        }
        let mut body = Vec::with_capacity(self.bytes);
        let mut segments = Vec::with_capacity(self.shards.len());
        for (buf, rows) in self.shards.iter_mut().zip(self.rows.iter_mut()) {
            segments.push(Segment {
                offset: body.len() as u64,
                len: buf.len() as u64,
                rows: *rows,
            });
            body.extend_from_slice(buf);
            buf.clear();
            *rows = 0;
        }
        let key = RunKeys::new(self.run_id).part(self.parts.len());
        self.engine.objects.put(&key, Bytes::from(body)).await?;
        self.parts.push(PartInfo {
            key,
            segments,
            watermark_max: self.highest.take(),
        });
        self.bytes = 0;
        Ok(())
    }
}

async fn write_manifest(engine: &Engine, manifest: &ExtractManifest) -> Result<(), EngineError> {
    let key = RunKeys::new(&manifest.run_id).extract_manifest();
    let body = serde_json::to_vec(manifest).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    engine.objects.put(&key, Bytes::from(body)).await?;
    Ok(())
}

/// The run's query: the model, filtered above the watermark when the run reads incrementally.
fn model_query(run: &RunRecord, sync: &SyncDef) -> ModelQuery {
    let mut query = ModelQuery::new(&sync.sql, &sync.name, &run.run_id);
    query.filter = run.watermark.as_ref().and_then(|w| {
        w.read_after.clone().map(|after| RowFilter {
            column: w.column.clone(),
            after,
        })
    });
    query
}

/// The rows rejected for their key: how many, and the first [`MAX_LOGGED`] for the log.
#[derive(Default)]
struct Rejected {
    count: u64,
    logged: Vec<RecordLogEntry>,
}

impl Rejected {
    fn push(&mut self, problem: &KeyProblem, values: impl FnOnce() -> crate::record::Values) {
        self.count += 1;
        if self.logged.len() < MAX_LOGGED {
            self.logged.push(RecordLogEntry {
                key: None,
                stage: "extract".into(),
                code: problem.code().into(),
                message: problem.message(),
                values: values(),
                outcome: LoggedOutcome::Rejected,
            });
        }
    }
}

/// Runs the model and writes the parts and their manifest.
pub async fn extract(
    engine: &Engine,
    run: &RunRecord,
    sync: &SyncDef,
    shards: u32,
    opts: ExtractOptions,
) -> Result<ExtractManifest, EngineError> {
    let source = engine.source(sync).await?;
    let query = model_query(run, sync);
    let mut highest = sync.incremental.as_ref().map(|i| Highest::new(&i.column));
    let columns = source.columns(&query).await?;
    check_columns(sync, &columns)?;
    let mut batches = source.row_batches(&query, &columns).await?;
    let layout = RowLayout::new(sync, &columns);
    let mut writer = PartWriter {
        engine,
        run_id: &run.run_id,
        // Room for a part's share up front: growing by doubling copies and faults in pages
        // again for every shard (reserved, not touched, so a small model costs no memory).
        shards: (0..shards)
            .map(|_| Vec::with_capacity(opts.chunk_bytes / shards.max(1) as usize * 5 / 4))
            .collect(),
        rows: vec![0; shards as usize],
        bytes: 0,
        parts: Vec::new(),
        highest: None,
    };
    let mut rows = 0u64;
    let mut rejected = Rejected::default();
    // One record's JSON at a time, in a buffer reused so a row costs no allocation for it.
    let mut json = Vec::new();
    engine.progress.start("extract", None);
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        for row in batch.rows() {
            rows += 1;
            let mark = match (highest.as_mut(), layout.mark) {
                (Some(h), Some(at)) => h.see(&sync.name, row.get(at))?.map(|bound| {
                    let json = serde_json::to_vec(&row[at]).expect("a JSON value serialises");
                    (json, bound)
                }),
                _ => None,
            };
            match layout.key(row) {
                Ok(key) => {
                    json.clear();
                    let hash = layout.encode(row, &mut json);
                    writer
                        .add(&key, hash, &json, mark, opts.chunk_bytes)
                        .await?
                }
                Err(problem) => rejected.push(&problem, || layout.mapped(row)),
            }
        }
        engine.progress.advance(batch.len() as u64);
    }
    engine.progress.finish();
    writer.flush().await?;
    let rejected_count = rejected.count;
    if !rejected.logged.is_empty() {
        let dest = engine.destination(sync).await?;
        let rejected: Vec<_> = rejected
            .logged
            .into_iter()
            .map(|e| redacted(Some(dest.as_ref()), sync, e))
            .collect();
        write_record_log(engine.objects.as_ref(), &run.run_id, "extract", &rejected).await?;
    }
    let manifest = ExtractManifest {
        run_id: run.run_id.clone(),
        shards,
        rows,
        rejected: rejected_count,
        columns,
        parts: writer.parts,
        finished_at: Some(chrono::Utc::now()),
        watermark_seen: highest.and_then(Highest::into_bound),
    };
    write_manifest(engine, &manifest).await?;
    tracing::info!(run_id = %run.run_id, rows, rejected = rejected_count, parts = manifest.parts.len(), "extract done");
    Ok(manifest)
}
