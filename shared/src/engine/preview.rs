//! Previews: the model's rows and key problems (`retl preview`), and the records a plan would
//! delete (`retl plan --show-deletes`, approval requests).

use bytes::Bytes;
use futures::StreamExt;
use hashbrown::HashMap;
use serde::Serialize;

use super::approval_message::{approval_message, ApprovalSubject};
use super::keys::RunKeys;
use super::plan::{read_plan_ops, OpKind, PlanManifest};
use super::{Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::ModelQuery;
use crate::record::{key_of, map_row, Values};

/// What `retl preview` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// Result columns.
    pub columns: Vec<String>,
    /// Rows the model returns.
    pub rows: u64,
    /// The first rows, mapped to destination fields.
    pub sample: Vec<Values>,
    /// Rows whose key is null or not a scalar.
    pub bad_keys: u64,
    /// Keys that appear more than once.
    pub duplicate_keys: u64,
    /// Rows carrying a duplicated key (all are rejected by a run).
    pub duplicate_rows: u64,
    /// A few examples of key problems.
    pub problems: Vec<String>,
}

/// Runs the model and reports row count, a sample and key problems, in bounded memory.
pub async fn preview(
    engine: &Engine,
    sync: &SyncDef,
    sample: usize,
) -> Result<Preview, EngineError> {
    let source = engine.source(sync).await?;
    let query = ModelQuery::new(&sync.sql, &sync.name, "preview");
    let columns = source.columns(&query).await?;
    // A mapping to a column the model lacks would show as nulls here; say it as plan does.
    super::extract::check_columns(sync, &columns)?;
    let mut stream = source.rows(&query).await?;
    // 64-bit key hashes keep memory at a few bytes per row; a collision could only add a
    // false duplicate warning here, never change what a run does.
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut p = Preview {
        columns,
        rows: 0,
        sample: Vec::new(),
        bad_keys: 0,
        duplicate_keys: 0,
        duplicate_rows: 0,
        problems: Vec::new(),
    };
    while let Some(row) = stream.next().await {
        let row = row?;
        p.rows += 1;
        if p.sample.len() < sample {
            p.sample.push(map_row(&row, &sync.mapping));
        }
        match key_of(&row, &sync.primary_key) {
            Err(problem) => {
                p.bad_keys += 1;
                if p.problems.len() < 10 {
                    p.problems
                        .push(format!("row {}: {}", p.rows, problem.message()));
                }
            }
            Ok(key) => {
                let n = seen
                    .entry(xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
                    .or_insert(0);
                *n += 1;
                if *n == 2 {
                    p.duplicate_keys += 1;
                    p.duplicate_rows += 2;
                    if p.problems.len() < 10 {
                        p.problems.push(format!("key {key} appears more than once"));
                    }
                } else if *n > 2 {
                    p.duplicate_rows += 1;
                }
            }
        }
    }
    Ok(p)
}

/// One record a plan would delete.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DeletePreviewEntry {
    /// Its key.
    pub key: String,
    /// Its current values in the destination, when the destination can look them up.
    pub values: Option<Values>,
}

/// The records a plan would delete.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionPreview {
    /// How many.
    pub total: u64,
    /// The first ones, with values where available.
    pub entries: Vec<DeletePreviewEntry>,
}

/// Lists up to `limit` records the plan deletes, with their destination values when possible.
pub async fn deletion_preview(
    engine: &Engine,
    sync: &SyncDef,
    manifest: &PlanManifest,
    limit: usize,
) -> Result<DeletionPreview, EngineError> {
    let mut total = 0u64;
    let mut keys = Vec::new();
    for file in &manifest.files {
        for op in read_plan_ops(engine, file).await? {
            if op.op == OpKind::Delete {
                total += 1;
                if keys.len() < limit {
                    keys.push(op.key);
                }
            }
        }
    }
    let mut values: HashMap<String, Values> = HashMap::new();
    if !keys.is_empty() && engine.capabilities(sync)?.lookup {
        let dest = engine.destination(sync).await?;
        for v in dest.lookup(sync, &keys).await? {
            if let Ok(k) = key_of(&v, &sync.key_fields) {
                values.insert(k, v);
            }
        }
    }
    let entries = keys
        .into_iter()
        .map(|k| DeletePreviewEntry {
            values: values.remove(&k),
            key: k,
        })
        .collect();
    Ok(DeletionPreview { total, entries })
}

/// Writes the deletion preview next to the plan (its first 10,000 records, with values), and
/// the approval request's text built from it; returns that text.
pub async fn write_approval_request(
    engine: &Engine,
    sync: &SyncDef,
    manifest: &PlanManifest,
    reason: &str,
) -> Result<String, EngineError> {
    let preview = deletion_preview(engine, sync, manifest, 10_000).await?;
    let mut buf = Vec::new();
    for e in &preview.entries {
        serde_json::to_writer(&mut buf, e).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        buf.push(b'\n');
    }
    let keys = RunKeys::new(&manifest.run_id);
    let key = keys.deletion_preview();
    engine.objects.put(&key, Bytes::from(buf)).await?;
    let message = approval_message(&ApprovalSubject {
        sync: &sync.name,
        run_id: &manifest.run_id,
        reason,
        counts: &manifest.counts,
        existing: manifest.existing,
        preview: &preview,
        full_preview: &engine.objects.link(&key),
    });
    let message_key = keys.approval_message();
    engine
        .objects
        .put(&message_key, Bytes::from(message.clone()))
        .await?;
    Ok(message)
}
