//! The shapes of `retl.yaml` and the sync files, as users write them.
//!
//! Fields that later checks point at are `Spanned`, so that an error can name the file, line and
//! column of the offending value.

use std::collections::BTreeMap;
use std::fmt;

pub use crate::modes::SyncMode;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

pub use super::alerts::AlertsInput;
pub use crate::connectors::ConnectionConfig;

/// `retl.yaml`: connections, where local state lives, and optionally syncs inline.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// Named connections: warehouses (sources) and destinations.
    #[schemars(with = "BTreeMap<String, ConnectionConfig>")]
    pub connections: BTreeMap<String, Spanned<ConnectionConfig>>,
    /// Where local runs keep their key sets, runs and artifacts.
    #[serde(default)]
    pub state: StateConfig,
    /// Syncs written inline instead of (or besides) files under `syncs/`.
    #[serde(default)]
    pub syncs: Vec<SyncConfig>,
}

/// Local state location.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Folder, relative to the project, for the embedded store. Default `.retl`.
    #[serde(default = "default_state_path")]
    pub path: String,
    /// How long the artefacts of finished runs stay in the state folder.
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: default_state_path(),
            retention: RetentionConfig::default(),
        }
    }
}

fn default_state_path() -> String {
    ".retl".to_string()
}

/// Days the artefacts of a finished run are kept in the local state folder, by kind: the same
/// periods, with the same defaults, as the AWS bundle's S3 lifecycle rules
/// (`ExtractRetentionDays`, `PlanRetentionDays`, `RecordLogRetentionDays`). Runs still
/// running or awaiting approval keep everything. Run records and key sets are never pruned.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Extracted model rows (`objects/extract/`). Default 3.
    #[serde(default = "default_extract_days")]
    pub extract_days: u32,
    /// Planned operations, deletion previews and apply outcomes (`objects/plan/`,
    /// `objects/apply/`). Default 30.
    #[serde(default = "default_plan_days")]
    pub plan_days: u32,
    /// Record logs: the rejected and failed records `retl errors` shows
    /// (`objects/rejected/`). Default 90.
    #[serde(default = "default_record_log_days")]
    pub record_log_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            extract_days: default_extract_days(),
            plan_days: default_plan_days(),
            record_log_days: default_record_log_days(),
        }
    }
}

fn default_extract_days() -> u32 {
    3
}

fn default_plan_days() -> u32 {
    30
}

fn default_record_log_days() -> u32 {
    90
}

/// Delivery tuning for a destination connection. Unset fields take the connector's defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Records per request (capped at the destination's documented limit).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Maximum requests in flight.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Requests per second allowed (token bucket).
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Attempts per batch on transient errors before its records are marked failed.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Retries allowed in one run across all batches.
    #[serde(default)]
    pub retry_budget: Option<u32>,
    /// Per-request timeout in seconds.
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
}

/// A sync definition: one file under `syncs/` or one entry of `syncs:` in `retl.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Unique name: letters, digits, `-` and `_`.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Free text shown in `retl runs` and alerts.
    #[serde(default)]
    pub description: Option<String>,
    /// Where rows come from.
    pub source: SourceConfig,
    /// Source column(s) that identify a record: a name or a list of names.
    #[schemars(with = "PrimaryKey")]
    pub primary_key: Spanned<PrimaryKey>,
    /// Where rows go.
    pub destination: DestinationConfig,
    /// Destination field name -> source column name.
    #[schemars(with = "BTreeMap<String, String>")]
    pub mapping: Spanned<BTreeMap<String, Spanned<String>>>,
    /// How rows are applied.
    #[schemars(with = "SyncMode")]
    pub mode: Spanned<SyncMode>,
    /// Which records mirror and delete_only may delete. Default `all`.
    #[serde(default)]
    pub delete_scope: DeleteScope,
    /// Safety rules enforced before any write.
    #[serde(default)]
    pub safety: SafetyInput,
    /// Alert rules: failures, rejected records, row-count changes, no success for a while,
    /// long runs; and a Slack-compatible webhook to post them to.
    #[serde(default)]
    pub alerts: AlertsInput,
    /// EventBridge schedule expression: `cron(...)` or `rate(...)`. Used by the AWS bundle.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// Upstream events that start a run on AWS (EventBridge patterns).
    #[serde(default)]
    #[schemars(with = "Vec<TriggerConfig>")]
    pub triggers: Vec<Spanned<TriggerConfig>>,
    /// Key-set shards for a new sync (fixed after its first run). Default 16.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub shards: Option<Spanned<u32>>,
}

/// The model query.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A connection of a source type (sqlite, postgres).
    #[schemars(with = "String")]
    pub connection: Spanned<String>,
    /// The SQL whose result rows are the model.
    #[schemars(with = "String")]
    pub sql: Spanned<String>,
    /// Read only rows above a high watermark (upsert, update, insert and append only).
    #[serde(default)]
    pub incremental: Option<IncrementalInput>,
}

/// An incremental model as written: `incremental: { column: updated_at, lookback: 10m }`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalInput {
    /// The high-watermark column the model returns (updated_at, sync_version): rows whose
    /// value is above the last run's watermark are read.
    #[schemars(with = "String")]
    pub column: Spanned<String>,
    /// How far below the watermark to read again, for rows that arrive late: `30s`, `10m`,
    /// `2h`, `1d`. Only for date and timestamp columns. Default none.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub lookback: Option<Spanned<String>>,
}

/// The destination object.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// A connection of a destination type.
    #[schemars(with = "String")]
    pub connection: Spanned<String>,
    /// The object: a table (`schema.table`) for PostgreSQL, a label for a webhook.
    #[schemars(with = "String")]
    pub object: Spanned<String>,
}

/// Safety rules as written in a sync file (positions kept for messages).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyInput {
    /// Stop for approval when deletes exceed this share (0-100) of the existing records.
    /// Default 50.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub delete_threshold_pct: Option<Spanned<f64>>,
    /// Stop for approval when more than this many records would be deleted.
    #[serde(default)]
    pub max_deletes: Option<u64>,
    /// Hours an approval request stays valid before the run expires. Default 24.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub approval_timeout_hours: Option<Spanned<f64>>,
}

/// Safety rules.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Stop for approval when deletes exceed this share (0-100) of the existing records.
    #[serde(default = "default_threshold")]
    pub delete_threshold_pct: f64,
    /// Stop for approval when more than this many records would be deleted.
    #[serde(default)]
    pub max_deletes: Option<u64>,
    /// Hours an approval request stays valid before the run expires. Default 24.
    #[serde(default = "default_approval_hours")]
    pub approval_timeout_hours: f64,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            delete_threshold_pct: default_threshold(),
            max_deletes: None,
            approval_timeout_hours: default_approval_hours(),
        }
    }
}

fn default_threshold() -> f64 {
    50.0
}

fn default_approval_hours() -> f64 {
    24.0
}

/// An upstream trigger for the AWS bundle.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// Start after another sync's run completes successfully.
    #[serde(default)]
    pub after_sync: Option<String>,
    /// An EventBridge event pattern (JSON object) that starts a run.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub event_pattern: Option<serde_json::Value>,
    /// A dbt Cloud job id: a successful run of that job (`job.run.completed`, through the
    /// stack's dbt Cloud webhook) starts a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub dbt_cloud_job: Option<u64>,
}

/// Which records deletes may touch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteScope {
    /// Any record of the destination object that is not in the model.
    #[default]
    All,
    /// Only records retl itself delivered.
    Synced,
}

/// One or more source columns forming the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PrimaryKey {
    /// A single column.
    One(String),
    /// Several columns, in order.
    Many(Vec<String>),
}

impl PrimaryKey {
    /// The key columns in order.
    pub fn columns(&self) -> Vec<String> {
        match self {
            PrimaryKey::One(c) => vec![c.clone()],
            PrimaryKey::Many(cs) => cs.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for PrimaryKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = PrimaryKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a column name or a list of column names")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PrimaryKey, E> {
                Ok(PrimaryKey::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PrimaryKey, A::Error> {
                let mut cols = Vec::new();
                while let Some(c) = seq.next_element::<String>()? {
                    cols.push(c);
                }
                Ok(PrimaryKey::Many(cols))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}
