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
use crate::record::{encode_values, key_of, map_row, shard_of};

/// Extract tuning.
#[derive(Debug, Clone, Copy)]
pub struct ExtractOptions {
    /// Bytes buffered before a part is written.
    pub chunk_bytes: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            chunk_bytes: 64 << 20,
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
    /// The last record's JSON buffer, reused so that a row costs no allocation for it.
    scratch: Vec<u8>,
}

impl PartWriter<'_> {
    /// Appends one record to its shard's buffer, writing a part when the buffers are full.
    async fn add(
        &mut self,
        key: &str,
        mapped: &crate::record::Values,
        mark: Option<(Vec<u8>, Bound)>,
        chunk_bytes: usize,
    ) -> Result<(), EngineError> {
        // One serialisation gives the part's JSON and the value hash; the buffer is reused.
        let mut json = std::mem::take(&mut self.scratch);
        json.clear();
        let hash = encode_values(mapped, &mut json);
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
        encode_record(&mut self.shards[shard], key, hash, &json, &mark_json);
        self.scratch = json;
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
    let mut stream = source.rows(&query).await?;
    let mut writer = PartWriter {
        engine,
        run_id: &run.run_id,
        shards: vec![Vec::new(); shards as usize],
        rows: vec![0; shards as usize],
        bytes: 0,
        parts: Vec::new(),
        highest: None,
        scratch: Vec::new(),
    };
    let mut rows = 0u64;
    let mut rejected = Vec::new();
    let mut rejected_count = 0u64;
    engine.progress.start("extract", None);
    while let Some(row) = stream.next().await {
        let row = row?;
        rows += 1;
        let mark = match highest.as_mut() {
            Some(h) => h.see_row(&sync.name, &row)?,
            None => None,
        };
        let mapped = map_row(&row, &sync.mapping);
        match key_of(&row, &sync.primary_key) {
            Ok(key) => writer.add(&key, &mapped, mark, opts.chunk_bytes).await?,
            Err(problem) => {
                rejected_count += 1;
                if rejected.len() < MAX_LOGGED {
                    rejected.push(RecordLogEntry {
                        key: None,
                        stage: "extract".into(),
                        code: problem.code().into(),
                        message: problem.message(),
                        values: mapped,
                        outcome: LoggedOutcome::Rejected,
                    });
                }
            }
        }
        if rows % 10_000 == 0 {
            engine.progress.advance(10_000);
        }
    }
    engine.progress.advance(rows % 10_000);
    engine.progress.finish();
    writer.flush().await?;
    if !rejected.is_empty() {
        let dest = engine.destination(sync).await?;
        let rejected: Vec<_> = rejected
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
