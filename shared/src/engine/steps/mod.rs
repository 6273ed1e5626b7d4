//! The steps of a run, each one a Lambda invocation on AWS and a call of the local host
//! (`super::local`) in `retl run`: the same functions in the same order on both hosts. Steps
//! pass only object keys and counts between them; everything else is in the stores. Every
//! step can be retried: it rewrites the same objects, and apply resumes after acknowledged
//! records.
//!
//! ```text
//! start_run ─► step_extract ─► step_plan_shard × shards ─► step_summarize ─┬─► step_apply_unit × units ─► step_finalize(Applied)
//!                                                                          ├─► step_request_approval … step_decide ─► (apply as above)
//!                                                                          └─► step_finalize(Aborted)
//! any failure ─► step_finalize(Failed)
//! ```

mod apply;
mod approval;
mod extract;
mod finalize;
mod plan;

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

pub use apply::{step_apply_unit, ApplyStep};
pub use approval::{step_decide, step_request_approval, DecisionTaken, Refusal};
pub use extract::{step_extract, step_extract_with, ExtractRequest, ExtractStep};
pub use finalize::{step_finalize, Ending};
pub use plan::{step_plan_shard, step_summarize, Decision, ShardStep, SummaryStep};

use super::{keep_lock, Engine, EngineError};
use crate::ports::RunRecord;

async fn put_json<T: Serialize>(engine: &Engine, key: &str, v: &T) -> Result<(), EngineError> {
    let body = serde_json::to_vec(v).map_err(|e| EngineError::Corrupt(e.to_string()))?;
    engine.objects.put(key, Bytes::from(body)).await?;
    Ok(())
}

async fn get_json<T: DeserializeOwned>(engine: &Engine, key: &str) -> Result<T, EngineError> {
    let body = engine.objects.get(key).await?;
    serde_json::from_slice(&body).map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))
}

/// The run, which must still be running and hold its sync's lock (`Retl.LockLost` if
/// another run took it over); records a sign of life on the lock.
async fn running(engine: &Engine, run_id: &str) -> Result<RunRecord, EngineError> {
    let run = engine.runs.get_run(run_id).await?;
    if run.status.is_terminal() {
        return Err(EngineError::Invalid(format!(
            "run {run_id} already ended ({})",
            run.status.as_str()
        )));
    }
    keep_lock(engine, &run.sync, run_id).await?;
    Ok(run)
}

/// Milliseconds since `since`, for the run's phase timings.
fn elapsed_ms(since: chrono::DateTime<chrono::Utc>) -> u64 {
    (chrono::Utc::now() - since).num_milliseconds().max(0) as u64
}
