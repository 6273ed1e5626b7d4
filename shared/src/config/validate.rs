//! Semantic checks that the YAML shape alone cannot express, each with a position and a fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::diagnostics::{did_you_mean, Diagnostic};
use super::model::{ConnectionConfig, DeleteScope, ProjectFile, SyncConfig};
use super::schedule::validate_schedule;
use super::{SyncDef, DEFAULT_SHARDS};
use crate::modes::{supported_modes, unsupported_reason};

/// A file's name and content, for positions and source lines.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// File shown in messages.
    pub file: PathBuf,
    /// Its content.
    pub text: String,
}

type Validated = (Vec<SyncDef>, BTreeMap<String, PathBuf>, Vec<Diagnostic>);

/// Checks connections and syncs; returns the valid syncs, their files, and the problems.
pub fn validate(
    project: &ProjectFile,
    project_src: &SourceText,
    syncs: &[(SyncConfig, SourceText)],
) -> Validated {
    let mut diags = Vec::new();
    for (name, conn) in &project.connections {
        check_connection(name, conn, project_src, &mut diags);
    }
    let mut defs = Vec::new();
    let mut files = BTreeMap::new();
    let names: BTreeSet<&str> = syncs.iter().map(|(s, _)| s.name.value.as_str()).collect();
    for (sync, src) in syncs {
        let before = diags.len();
        if files.contains_key(&sync.name.value) {
            diags.push(
                Diagnostic::at_span(
                    &src.file,
                    &src.text,
                    &sync.name,
                    format!("sync name `{}` is used twice", sync.name.value),
                )
                .hint("give each sync a unique name"),
            );
            continue;
        }
        let def = check_sync(project, sync, src, &names, &mut diags);
        if diags.len() == before {
            if let Some(def) = def {
                files.insert(def.name.clone(), src.file.clone());
                defs.push(def);
            }
        } else {
            files.insert(sync.name.value.clone(), src.file.clone());
        }
    }
    (defs, files, diags)
}

fn check_connection(
    name: &str,
    conn: &serde_saphyr::Spanned<ConnectionConfig>,
    src: &SourceText,
    diags: &mut Vec<Diagnostic>,
) {
    let at = |msg: String| Diagnostic::at_span(&src.file, &src.text, conn, msg);
    if !valid_name(name) {
        diags.push(
            at(format!(
                "connection name `{name}` has characters other than letters, digits, `-` and `_`"
            ))
            .hint("rename the connection"),
        );
    }
    for problem in conn.value.connector().check() {
        let d = at(format!("connection `{name}`: {}", problem.message));
        diags.push(match problem.hint {
            Some(h) => d.hint(h),
            None => d,
        });
    }
    if let Some(d) = conn.value.as_destination().map(|d| d.delivery_settings()) {
        if d.batch_size == Some(0) || d.concurrency == Some(0) {
            diags.push(at(format!(
                "connection `{name}`: delivery batch_size and concurrency must be at least 1"
            )));
        }
        if d.rate_per_second
            .is_some_and(|r| r <= 0.0 || !r.is_finite())
        {
            diags.push(at(format!(
                "connection `{name}`: delivery rate_per_second must be a positive number"
            )));
        }
    }
}

/// Names of the project's connections that can be sources.
fn source_names(project: &ProjectFile) -> Vec<&str> {
    project
        .connections
        .iter()
        .filter(|(_, c)| c.value.as_source().is_some())
        .map(|(n, _)| n.as_str())
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_sync(
    project: &ProjectFile,
    sync: &SyncConfig,
    src: &SourceText,
    sync_names: &BTreeSet<&str>,
    diags: &mut Vec<Diagnostic>,
) -> Option<SyncDef> {
    let at = |span_line: &dyn SpanLike, msg: String| {
        let (l, c) = span_line.pos();
        Diagnostic::at(&src.file, &src.text, l, c, msg)
    };
    let name = &sync.name.value;
    if !valid_name(name) {
        diags.push(
            at(
                &sync.name,
                format!("sync name `{name}` must be 1-64 letters, digits, `-` or `_`"),
            )
            .hint("names are used in S3 keys, DynamoDB items and schedule names"),
        );
    }
    let conn_names: Vec<&str> = project.connections.keys().map(String::as_str).collect();
    let lookup = |span: &serde_saphyr::Spanned<String>, diags: &mut Vec<Diagnostic>| {
        let c = project.connections.get(&span.value).map(|c| &c.value);
        if c.is_none() {
            let mut d = at(
                span,
                format!("connection `{}` is not defined in retl.yaml", span.value),
            );
            d = match did_you_mean(&span.value, conn_names.iter().copied()) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint(format!(
                    "define it under `connections:` in retl.yaml (defined: {})",
                    if conn_names.is_empty() {
                        "none".to_string()
                    } else {
                        conn_names.join(", ")
                    }
                )),
            };
            diags.push(d);
        }
        c
    };

    if let Some(c) = lookup(&sync.source.connection, diags) {
        if c.as_source().is_none() {
            diags.push(
                at(
                    &sync.source.connection,
                    format!(
                        "connection `{}` is a {} destination and cannot run model SQL",
                        sync.source.connection.value,
                        c.type_name()
                    ),
                )
                .hint(match source_names(project).as_slice() {
                    [] => "define a warehouse connection (e.g. type: postgres) in retl.yaml and use it as the source".to_string(),
                    names => format!("connections that can run model SQL: {}", names.join(", ")),
                }),
            );
        }
    }
    if sync.source.sql.value.trim().is_empty() {
        diags.push(
            at(&sync.source.sql, "the model SQL is empty".into())
                .hint("write the SELECT that returns the model rows"),
        );
    }

    let mode = sync.mode.value;
    let dest = lookup(&sync.destination.connection, diags);
    if let Some(c) = dest {
        check_destination(c, sync, src, diags);
    }
    if sync.destination.object.value.trim().is_empty() {
        diags.push(at(
            &sync.destination.object,
            "the destination object is empty".into(),
        ));
    }

    let mapping = &sync.mapping.value;
    if mapping.is_empty() {
        diags.push(
            at(&sync.mapping, "the mapping is empty".into()).hint("map at least the key: `id: id`"),
        );
    }
    for (field, col) in mapping {
        if field.trim().is_empty() || col.value.trim().is_empty() {
            diags.push(at(
                col,
                format!("mapping `{field}: {}` has an empty name", col.value),
            ));
        }
    }
    let pk = sync.primary_key.value.columns();
    if pk.is_empty() {
        diags.push(
            at(&sync.primary_key, "primary_key is empty".into())
                .hint("name the column(s) that identify a record"),
        );
    }
    let mut seen = BTreeSet::new();
    let mut key_fields = Vec::new();
    for col in &pk {
        if !seen.insert(col) {
            diags.push(at(
                &sync.primary_key,
                format!("primary key column `{col}` is listed twice"),
            ));
            continue;
        }
        let mapped: Vec<&String> = mapping
            .iter()
            .filter(|(_, c)| &c.value == col)
            .map(|(f, _)| f)
            .collect();
        match mapped.iter().find(|f| *f == &col).or(mapped.first()) {
            Some(f) => key_fields.push((*f).clone()),
            None => diags.push(
                at(
                    &sync.primary_key,
                    format!("primary key column `{col}` is not mapped to a destination field"),
                )
                .hint(format!(
                    "add `{col}: {col}` under mapping (destination field: source column)"
                )),
            ),
        }
    }

    if sync.delete_scope == DeleteScope::Synced && !mode.deletes_missing() {
        diags.push(
            at(
                &sync.mode,
                format!("delete_scope: synced has no effect in mode `{mode}`"),
            )
            .hint("remove delete_scope, or use mode mirror or delete_only"),
        );
    }
    let safety = &sync.safety;
    if !(0.0..=100.0).contains(&safety.delete_threshold_pct) {
        diags.push(
            at(
                &sync.mode,
                format!(
                    "safety.delete_threshold_pct is {}; it must be between 0 and 100",
                    safety.delete_threshold_pct
                ),
            )
            .hint("it is a percentage of the existing records, e.g. 50"),
        );
    }
    if !(safety.approval_timeout_hours > 0.0 && safety.approval_timeout_hours <= 8760.0) {
        diags.push(at(
            &sync.mode,
            "safety.approval_timeout_hours must be between 0 and 8760 (one year)".into(),
        ));
    }
    if let Some(s) = &sync.schedule {
        if let Err(e) = validate_schedule(&s.value) {
            diags.push(at(s, e).hint(
                "see https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html",
            ));
        }
    }
    for t in &sync.triggers {
        if let Some(after) = &t.after_sync {
            if !sync_names.contains(after.as_str()) {
                let mut d = at(
                    &sync.name,
                    format!("trigger after_sync `{after}` names no sync"),
                );
                if let Some(s) = did_you_mean(after, sync_names.iter().copied()) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                diags.push(d);
            }
        }
        if t.after_sync.is_none() && t.event_pattern.is_none() {
            diags.push(at(
                &sync.name,
                "a trigger needs `after_sync` or `event_pattern`".into(),
            ));
        }
        if let Some(p) = &t.event_pattern {
            if !p.is_object() {
                diags.push(at(
                    &sync.name,
                    "trigger event_pattern must be a mapping (an EventBridge pattern)".into(),
                ));
            }
        }
    }
    let shards = match &sync.shards {
        Some(s) if !(1..=4096).contains(&s.value) => {
            diags.push(at(
                s,
                format!("shards is {}; it must be between 1 and 4096", s.value),
            ));
            DEFAULT_SHARDS
        }
        Some(s) => s.value,
        None => DEFAULT_SHARDS,
    };

    Some(SyncDef {
        name: name.clone(),
        description: sync.description.clone(),
        source_connection: sync.source.connection.value.clone(),
        sql: sync.source.sql.value.clone(),
        primary_key: pk,
        key_fields,
        destination_connection: sync.destination.connection.value.clone(),
        object: sync.destination.object.value.clone(),
        mapping: mapping
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect(),
        mode,
        delete_scope: sync.delete_scope,
        safety: sync.safety.clone(),
        schedule: sync.schedule.as_ref().map(|s| s.value.clone()),
        triggers: sync.triggers.clone(),
        shards,
    })
}

/// Anything that has a position in the file.
trait SpanLike {
    fn pos(&self) -> (u64, u64);
}

impl<T> SpanLike for serde_saphyr::Spanned<T> {
    fn pos(&self) -> (u64, u64) {
        (self.referenced.line(), self.referenced.column())
    }
}

/// The destination side of a sync: the connection can be one, supports the mode, and the
/// object fits it.
fn check_destination(
    c: &ConnectionConfig,
    sync: &SyncConfig,
    src: &SourceText,
    diags: &mut Vec<Diagnostic>,
) {
    let at = |span: &dyn SpanLike, msg: String| {
        let (l, col) = span.pos();
        Diagnostic::at(&src.file, &src.text, l, col, msg)
    };
    let name = &sync.destination.connection.value;
    let Some(d) = c.as_destination() else {
        diags.push(
            at(
                &sync.destination.connection,
                format!(
                    "connection `{name}` is a {} source and cannot be a destination",
                    c.type_name()
                ),
            )
            .hint("use a connection of a destination type as the destination"),
        );
        return;
    };
    let mode = sync.mode.value;
    let caps = d.capabilities();
    if let Some(why) = unsupported_reason(mode, &caps) {
        let list: Vec<&str> = supported_modes(&caps).iter().map(|m| m.as_str()).collect();
        diags.push(
            at(
                &sync.mode,
                format!(
                    "mode `{mode}` is not supported by the {} destination `{name}`: {why}",
                    c.type_name()
                ),
            )
            .hint(format!("use one of: {}", list.join(", "))),
        );
    }
    if let Some(problem) = d.check_object(&sync.destination.object.value) {
        let diag = at(&sync.destination.object, problem.message);
        diags.push(match problem.hint {
            Some(h) => diag.hint(h),
            None => diag,
        });
    }
}
