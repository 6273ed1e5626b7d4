//! The run's record log (the dead letter queue): every rejected record with its error and
//! payload, as JSON lines under `rejected/<run>/` (see [`super::keys`]).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::keys::RunKeys;
use super::EngineError;
use crate::config::SyncDef;
use crate::ports::{Destination, ObjectStore};
use crate::record::{key_values, Values};

/// Most entries kept per log file; the counts stay exact beyond it.
pub const MAX_LOGGED: usize = 100_000;

/// How a logged record ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoggedOutcome {
    /// Refused permanently; re-sent after a change or by `retl retry`.
    #[default]
    Rejected,
    /// Hit a transient failure; planned again by the next run. Logged with its last error.
    Failed,
}

/// One rejected (or failed) record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLogEntry {
    /// The record key, when it has one.
    pub key: Option<String>,
    /// Where it was rejected: extract, plan, or the write (create, update, upsert, delete).
    pub stage: String,
    /// Error code (the API's, or retl's: null_key, duplicate_key...).
    pub code: String,
    /// Error message.
    pub message: String,
    /// The mapped values that were (or would have been) sent.
    pub values: Values,
    /// Rejected or failed.
    #[serde(default)]
    pub outcome: LoggedOutcome,
}

/// The entry as it may be stored: the destination's redaction (hashed identifiers for ad
/// audiences) applied to its values and to its key, which can itself be an identifier.
pub fn redacted(
    dest: Option<&dyn Destination>,
    sync: &SyncDef,
    mut entry: RecordLogEntry,
) -> RecordLogEntry {
    let Some(dest) = dest else {
        return entry;
    };
    entry.values = dest.redact(&entry.values);
    if let Some(key) = &entry.key {
        let fields = key_values(key, &sync.key_fields);
        let shown = dest.redact(&fields);
        if shown != fields {
            let parts: Vec<String> = sync
                .key_fields
                .iter()
                .map(|f| match shown.get(f) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                })
                .collect();
            entry.key = Some(match parts.as_slice() {
                [one] => one.clone(),
                many => serde_json::to_string(many).unwrap_or_default(),
            });
        }
    }
    entry
}

/// Writes one log file of a run; does nothing when there is nothing to log.
pub async fn write_record_log(
    objects: &dyn ObjectStore,
    run_id: &str,
    name: &str,
    entries: &[RecordLogEntry],
) -> Result<(), EngineError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::new();
    for e in entries.iter().take(MAX_LOGGED) {
        serde_json::to_writer(&mut buf, e).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        buf.push(b'\n');
    }
    let key = RunKeys::new(run_id).record_log(name);
    objects.put(&key, Bytes::from(buf)).await?;
    Ok(())
}

/// Every logged record of a run.
pub async fn read_record_log(
    objects: &dyn ObjectStore,
    run_id: &str,
) -> Result<Vec<RecordLogEntry>, EngineError> {
    let mut out = Vec::new();
    for key in objects
        .list(&RunKeys::new(run_id).record_log_prefix())
        .await?
    {
        let body = objects.get(&key).await?;
        for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            out.push(
                serde_json::from_slice(line)
                    .map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?,
            );
        }
    }
    Ok(out)
}
