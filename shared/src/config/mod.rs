//! Project and sync configuration: loading, validation with positioned errors, JSON Schema.

mod alerts;
mod check_sync;
mod diagnostics;
mod load;
mod model;
mod schedule;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use alerts::{
    AlertRules, AlertsInput, RowCountChange, RowCountChangeInput, DEFAULT_ROW_COUNT_RUNS,
};
pub use diagnostics::{did_you_mean, Diagnostic, Diagnostics};
pub use load::{find_project_dir, load_project};
pub use model::{
    ConnectionConfig, DeleteScope, DeliverySettings, IncrementalInput, PrimaryKey, ProjectFile,
    RetentionConfig, SafetyConfig, SafetyInput, StateConfig, SyncConfig, SyncMode, TriggerConfig,
};
pub use schedule::validate_schedule;

/// Default number of key-set shards for a new sync.
pub const DEFAULT_SHARDS: u32 = 16;

/// Errors loading a project. `Invalid` carries every problem found, each with its position.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `retl.yaml` where one was expected.
    #[error("no retl.yaml found in {dir}: run retl from a project folder or pass --project DIR")]
    NotFound {
        /// The folder searched.
        dir: PathBuf,
    },
    /// A file could not be read.
    // The cause is in the message and deliberately not a `source`: error chains are printed
    // whole (`{:#}`), which would say it twice.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// One or more problems in the files.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A command named a sync that is not defined.
    #[error("no sync named `{name}`{}; `retl validate` lists the syncs", suggestion_text(.suggestion))]
    UnknownSync {
        /// The name given.
        name: String,
        /// A close existing name.
        suggestion: Option<String>,
    },
}

impl ConfigError {
    /// Stable error name for logs and Step Functions.
    pub fn error_name(&self) -> &'static str {
        "Retl.ConfigError"
    }
}

fn suggestion_text(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// A validated sync, with spans stripped: what the engine runs and what versions record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SyncDef {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Source connection name.
    pub source_connection: String,
    /// Model SQL.
    pub sql: String,
    /// Read only rows above the high watermark of this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Source key columns in order.
    pub primary_key: Vec<String>,
    /// Destination fields that hold the key, in the order of `primary_key`.
    pub key_fields: Vec<String>,
    /// Destination connection name.
    pub destination_connection: String,
    /// Destination object.
    pub object: String,
    /// Destination field -> source column.
    pub mapping: BTreeMap<String, String>,
    /// Sync mode.
    pub mode: SyncMode,
    /// Delete scope for mirror and delete_only.
    pub delete_scope: DeleteScope,
    /// Safety rules.
    pub safety: SafetyConfig,
    /// Alert rules (left out when they are the default: alert on failure only).
    #[serde(default, skip_serializing_if = "AlertRules::is_default")]
    pub alerts: AlertRules,
    /// Schedule expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Upstream triggers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerConfig>,
    /// Key-set shards for a new sync.
    pub shards: u32,
}

/// An incremental model: the run reads rows whose `column` is above the stored watermark
/// minus `lookback_seconds` (see `engine/watermark.rs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Incremental {
    /// The high-watermark column.
    pub column: String,
    /// Late-row window in seconds (date and timestamp columns).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lookback_seconds: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SyncDef {
    /// A one-column sync `s` (`id`, source `w`, destination `d`, object `t`) with `mode` and
    /// `safety`: the definition unit tests vary.
    #[cfg(test)]
    pub(crate) fn for_tests(mode: SyncMode, safety: SafetyConfig) -> SyncDef {
        SyncDef {
            name: "s".into(),
            description: None,
            source_connection: "w".into(),
            sql: "select 1".into(),
            incremental: None,
            primary_key: vec!["id".into()],
            key_fields: vec!["id".into()],
            destination_connection: "d".into(),
            object: "t".into(),
            mapping: [("id".to_string(), "id".to_string())].into(),
            mode,
            delete_scope: Default::default(),
            safety,
            alerts: Default::default(),
            schedule: None,
            triggers: vec![],
            shards: 4,
        }
    }

    /// Fingerprint of the whole definition; a new value means a new config version.
    pub fn config_hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("a sync definition always serialises");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
    }

    /// Fingerprint of what makes stored key hashes comparable: key, mapping, destination.
    pub fn mapping_fingerprint(&self) -> String {
        let json = serde_json::to_vec(&(&self.mapping, &self.key_fields))
            .expect("a mapping always serialises");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
    }

    /// Fingerprint of what identifies a record: the key columns and the destination object.
    pub fn identity_fingerprint(&self) -> String {
        let json = serde_json::to_vec(&(
            &self.primary_key,
            &self.destination_connection,
            &self.object,
        ))
        .expect("an identity always serialises");
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
    }
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project folder.
    pub root: PathBuf,
    /// The local state folder.
    pub state_dir: PathBuf,
    /// How long the state folder keeps finished runs' artefacts.
    pub retention: RetentionConfig,
    /// Connections by name.
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Syncs in file order.
    pub syncs: Vec<SyncDef>,
    /// The file each sync was defined in.
    pub sync_files: BTreeMap<String, PathBuf>,
}

impl Project {
    /// The sync named `name`, or an error with the closest name.
    pub fn sync(&self, name: &str) -> Result<&SyncDef, ConfigError> {
        self.syncs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ConfigError::UnknownSync {
                name: name.to_string(),
                suggestion: did_you_mean(name, self.syncs.iter().map(|s| s.name.as_str())),
            })
    }

    /// The connection named `name` (validated to exist for every sync).
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.get(name)
    }

    /// Path of a project-relative file.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }
}

/// The JSON Schema of sync files (`syncs/*.yaml`).
pub fn sync_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(SyncConfig)).expect("schema serialises")
}

/// The JSON Schema of `retl.yaml`.
pub fn project_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ProjectFile)).expect("schema serialises")
}

/// YAML text of a value (used to write sync files, e.g. by `retl clone`).
pub fn to_yaml(value: &serde_json::Value) -> Result<String, String> {
    serde_saphyr::to_string(&PlainJson(value)).map_err(|e| e.to_string())
}

/// Serialises JSON numbers as plain numbers: with serde_json's exact-number representation a
/// `Number` would otherwise reach other serialisers as a private map.
struct PlainJson<'a>(&'a serde_json::Value);

impl serde::Serialize for PlainJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value;
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => s.serialize_i64(i),
                (_, Some(u), _) => s.serialize_u64(u),
                (_, _, Some(f)) => s.serialize_f64(f),
                _ => s.serialize_str(&n.to_string()),
            },
            Value::String(t) => s.serialize_str(t),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(&PlainJson(i))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, &PlainJson(v))?;
                }
                map.end()
            }
        }
    }
}
