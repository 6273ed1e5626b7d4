//! Extract: run the model SQL and stream its rows into part files grouped by key-set shard,
//! in memory bounded by the chunk size.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use super::keys::RunKeys;
use super::parts::{encode_record, ExtractManifest, PartInfo, Segment};
use super::record_log::{redacted, write_record_log, LoggedOutcome, RecordLogEntry, MAX_LOGGED};
use super::watermark::{keep, Highest};
use super::{Engine, EngineError, Progress};
use crate::config::SyncDef;
use crate::ports::RunRecord;
use crate::ports::{
    BatchStream, Bound, ExportReader, ExportTarget, ModelQuery, ObjectStore, RowBatch, RowFilter,
    Source,
};
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

/// Encoded records buffered per shard until a part is written.
struct PartWriter {
    objects: Arc<dyn ObjectStore>,
    run_id: String,
    /// The export object the records come from (its parts are named after it); `None`
    /// when they stream from the warehouse.
    slice: Option<usize>,
    /// Bytes buffered before a part is written.
    chunk_bytes: usize,
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

impl PartWriter {
    fn new(
        objects: Arc<dyn ObjectStore>,
        run_id: &str,
        slice: Option<usize>,
        shards: u32,
        chunk_bytes: usize,
    ) -> Self {
        PartWriter {
            objects,
            run_id: run_id.to_string(),
            slice,
            chunk_bytes,
            // Room for a part's share up front: growing by doubling copies and faults in
            // pages again for every shard (reserved, not touched, so a small model costs no
            // memory).
            shards: (0..shards)
                .map(|_| Vec::with_capacity(chunk_bytes / shards.max(1) as usize * 5 / 4))
                .collect(),
            rows: vec![0; shards as usize],
            bytes: 0,
            parts: Vec::new(),
            highest: None,
        }
    }

    /// Appends one encoded record (its values' JSON and hash) to its shard's buffer, writing
    /// a part when the buffers are full.
    async fn add(
        &mut self,
        key: &str,
        hash: u128,
        json: &[u8],
        mark: Option<(Vec<u8>, Bound)>,
    ) -> Result<(), EngineError> {
        let shard = shard_of(key, self.shards.len() as u32) as usize;
        let before = self.shards[shard].len();
        let mark_json = match mark {
            Some((json, bound)) => {
                keep(&mut self.highest, bound, Ordering::Greater);
                json
            }
            None => Vec::new(),
        };
        encode_record(&mut self.shards[shard], key, hash, json, &mark_json);
        self.bytes += self.shards[shard].len() - before;
        self.rows[shard] += 1;
        if self.bytes >= self.chunk_bytes {
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
        let keys = RunKeys::new(&self.run_id);
        let key = match self.slice {
            Some(slice) => keys.slice_part(slice, self.parts.len()),
            None => keys.part(self.parts.len()),
        };
        self.objects.put(&key, Bytes::from(body)).await?;
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
    /// Adds what another reader rejected (the log keeps the first [`MAX_LOGGED`]).
    fn merge(&mut self, other: Rejected) {
        self.count += other.count;
        let room = MAX_LOGGED.saturating_sub(self.logged.len());
        self.logged.extend(other.logged.into_iter().take(room));
    }

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

/// Model rows turned into parts: keyed, hashed, grouped by shard; one per stream of rows
/// (the warehouse's stream, or one export object).
struct RowSink {
    writer: PartWriter,
    layout: Arc<RowLayout>,
    sync: String,
    highest: Option<Highest>,
    rows: u64,
    rejected: Rejected,
    /// One record's JSON at a time, in a buffer reused so a row costs no allocation for it.
    json: Vec<u8>,
}

/// What one [`RowSink`] wrote.
struct SinkOutcome {
    parts: Vec<PartInfo>,
    rows: u64,
    rejected: Rejected,
    highest: Option<Highest>,
}

impl RowSink {
    fn new(writer: PartWriter, layout: Arc<RowLayout>, sync: &SyncDef) -> Self {
        RowSink {
            writer,
            layout,
            sync: sync.name.clone(),
            highest: sync.incremental.as_ref().map(|i| Highest::new(&i.column)),
            rows: 0,
            rejected: Rejected::default(),
            json: Vec::new(),
        }
    }

    async fn batch(&mut self, batch: &RowBatch) -> Result<(), EngineError> {
        let layout = self.layout.clone();
        for row in batch.rows() {
            self.rows += 1;
            let mark = match (self.highest.as_mut(), layout.mark) {
                (Some(h), Some(at)) => h.see(&self.sync, row.get(at))?.map(|bound| {
                    let json = serde_json::to_vec(&row[at]).expect("a JSON value serialises");
                    (json, bound)
                }),
                _ => None,
            };
            match layout.key(row) {
                Ok(key) => {
                    self.json.clear();
                    let hash = layout.encode(row, &mut self.json);
                    self.writer.add(&key, hash, &self.json, mark).await?
                }
                Err(problem) => self.rejected.push(&problem, || layout.mapped(row)),
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<SinkOutcome, EngineError> {
        self.writer.flush().await?;
        Ok(SinkOutcome {
            parts: self.writer.parts,
            rows: self.rows,
            rejected: self.rejected,
            highest: self.highest,
        })
    }
}

/// Reads a stream of batches (the warehouse's one connection, or one partition) into `sink`.
async fn drain(
    progress: Arc<dyn Progress>,
    mut batches: BatchStream,
    mut sink: RowSink,
) -> Result<SinkOutcome, EngineError> {
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        sink.batch(&batch).await?;
        progress.advance(batch.len() as u64);
    }
    sink.finish().await
}

/// Reads one export object into parts of its own.
async fn read_export_object(
    progress: Arc<dyn Progress>,
    reader: Arc<dyn ExportReader>,
    key: String,
    sink: RowSink,
) -> Result<SinkOutcome, EngineError> {
    let body = sink.writer.objects.get(&key).await?;
    let batches = futures::stream::iter(reader.batches(body)?);
    drain(progress, Box::pin(batches), sink).await
}

/// Has the warehouse export the model into the run's export folder, then reads its objects
/// in parallel (a task each, as many at once as there are cores); `None` when the source
/// or the object store cannot (local files: no warehouse reaches them).
async fn export(
    engine: &Engine,
    source: &dyn Source,
    query: &ModelQuery,
    run_id: &str,
    make_sink: &(dyn Fn(Option<usize>) -> RowSink + Sync),
) -> Result<Option<Vec<SinkOutcome>>, EngineError> {
    let key = RunKeys::new(run_id).export_prefix();
    let Some(url) = engine.objects.export_url(&key) else {
        return Ok(None);
    };
    // A retried extract starts from an empty folder: every object in it is then this
    // export's.
    engine.objects.delete_prefix(&key).await?;
    let target = ExportTarget {
        url,
        key: key.clone(),
    };
    let Some(reader) = source.export(query, &target).await? else {
        return Ok(None);
    };
    let objects = engine.objects.list(&key).await?;
    // Collected before the first await: a future holding the borrowing iterator across
    // awaits would not be `Send` for every lifetime the hosts need.
    let tasks: Vec<_> = objects
        .into_iter()
        .enumerate()
        .map(|(slice, object)| {
            read_export_object(
                engine.progress.clone(),
                reader.clone(),
                object,
                make_sink(Some(slice)),
            )
        })
        .collect();
    let outcomes = in_parallel(tasks).await?;
    engine.objects.delete_prefix(&key).await?;
    Ok(Some(outcomes))
}

/// Reads the model over several connections at once, a task each, when the source can
/// (see [`Source::partitions`]); `None` otherwise.
async fn partitioned(
    engine: &Engine,
    source: &dyn Source,
    query: &ModelQuery,
    columns: &[String],
    key: &[String],
    make_sink: &(dyn Fn(Option<usize>) -> RowSink + Sync),
) -> Result<Option<Vec<SinkOutcome>>, EngineError> {
    let Some(streams) = source.partitions(query, columns, key).await? else {
        return Ok(None);
    };
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(slice, batches)| drain(engine.progress.clone(), batches, make_sink(Some(slice))))
        .collect();
    Ok(Some(in_parallel(tasks).await?))
}

/// Runs each reader on a task of its own, as many at once as there are cores (reading a
/// connection's rows, or an object's, is CPU work), and returns their outcomes in order.
async fn in_parallel<F>(readers: Vec<F>) -> Result<Vec<SinkOutcome>, EngineError>
where
    F: std::future::Future<Output = Result<SinkOutcome, EngineError>> + Send + 'static,
{
    let tasks = readers.into_iter().map(|reader| async move {
        tokio::spawn(reader)
            .await
            .map_err(|e| EngineError::Corrupt(format!("a reader of the model stopped: {e}")))?
    });
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    futures::stream::iter(tasks)
        .buffered(width)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
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
    let columns = source.columns(&query).await?;
    check_columns(sync, &columns)?;
    let layout = Arc::new(RowLayout::new(sync, &columns));
    let make_sink = |slice| {
        let writer = PartWriter::new(
            engine.objects.clone(),
            &run.run_id,
            slice,
            shards,
            opts.chunk_bytes,
        );
        RowSink::new(writer, layout.clone(), sync)
    };
    engine.progress.start("extract", None);
    let exported = export(engine, source.as_ref(), &query, &run.run_id, &make_sink).await?;
    let outcomes = match exported {
        Some(outcomes) => outcomes,
        None => {
            let key = &sync.primary_key;
            match partitioned(engine, source.as_ref(), &query, &columns, key, &make_sink).await? {
                Some(outcomes) => outcomes,
                None => {
                    let batches = source.row_batches(&query, &columns).await?;
                    vec![drain(engine.progress.clone(), batches, make_sink(None)).await?]
                }
            }
        }
    };
    engine.progress.finish();
    let mut rows = 0u64;
    let mut rejected = Rejected::default();
    let mut parts = Vec::new();
    let mut highest = sync.incremental.as_ref().map(|i| Highest::new(&i.column));
    for outcome in outcomes {
        rows += outcome.rows;
        rejected.merge(outcome.rejected);
        parts.extend(outcome.parts);
        if let (Some(h), Some(other)) = (highest.as_mut(), outcome.highest) {
            h.merge(other);
        }
    }
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
        parts,
        finished_at: Some(chrono::Utc::now()),
        watermark_seen: highest.and_then(Highest::into_bound),
    };
    write_manifest(engine, &manifest).await?;
    tracing::info!(run_id = %run.run_id, rows, rejected = rejected_count, parts = manifest.parts.len(), "extract done");
    Ok(manifest)
}
