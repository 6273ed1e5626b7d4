//! The extract step: prepares planning (destination check, baseline, resync reasons) and
//! streams the model into part files.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{put_json, running};
use crate::config::SyncDef;
use crate::engine::extract::{extract, ExtractOptions};
use crate::engine::keys::RunKeys;
use crate::engine::plan::prepare_plan;
use crate::engine::{Engine, EngineError};

/// What a run asks of its extract step beyond the sync itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractRequest {
    /// Re-send every row even if unchanged (`--full-resync`).
    pub full_resync: bool,
    /// Plan only these keys (`retl retry`).
    pub only_keys: Option<BTreeSet<String>>,
}

/// What extract hands to the plan fan-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractStep {
    /// Rows the model returned.
    pub rows: u64,
    /// Shard count.
    pub shards: u32,
    /// Object key of the JSON list `[{"shard": n}, ...]` the plan Map iterates.
    pub shards_key: String,
}

/// [`step_extract_with`] for a scheduled or triggered run.
pub async fn step_extract(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
) -> Result<ExtractStep, EngineError> {
    step_extract_with(engine, sync, run_id, &ExtractRequest::default()).await
}

/// Prepares the plan (destination check, baseline) and extracts the model.
pub async fn step_extract_with(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    request: &ExtractRequest,
) -> Result<ExtractStep, EngineError> {
    let mut run = running(engine, run_id).await?;
    let t = std::time::Instant::now();
    let mut ctx = prepare_plan(engine, &mut run, sync, request.full_resync).await?;
    ctx.only_keys.clone_from(&request.only_keys);
    let keys = RunKeys::new(run_id);
    put_json(engine, &keys.plan_context(), &ctx).await?;
    let manifest = extract(engine, &run, sync, ctx.shards, ExtractOptions::default()).await?;
    let shards: Vec<serde_json::Value> = (0..ctx.shards)
        .map(|s| serde_json::json!({ "shard": s }))
        .collect();
    let shards_key = keys.shard_list();
    put_json(engine, &shards_key, &shards).await?;
    if let Some(w) = run.watermark.as_mut() {
        w.seen.clone_from(&manifest.watermark_seen);
    }
    run.timings
        .insert("extract_ms".into(), t.elapsed().as_millis() as u64);
    run.updated_at = chrono::Utc::now();
    engine.runs.put_run(&run).await?;
    Ok(ExtractStep {
        rows: manifest.rows,
        shards: ctx.shards,
        shards_key,
    })
}
