//! Semantic checks that the YAML shape alone cannot express, each with a position and a fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::check_sync::{check_trigger_cycles, SyncChecker};
use super::diagnostics::Diagnostic;
use super::model::{ConnectionConfig, ProjectFile, SyncConfig};
use super::SyncDef;

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
        let def = SyncChecker::new(project, src, &mut diags).check(sync, &names);
        if diags.len() == before {
            if let Some(def) = def {
                files.insert(def.name.clone(), src.file.clone());
                defs.push(def);
            }
        } else {
            files.insert(sync.name.value.clone(), src.file.clone());
        }
    }
    check_trigger_cycles(syncs, &mut diags);
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

/// Whether `name` can name a connection or a sync (it ends up in S3 keys and resource names).
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Anything that has a position in the file.
pub(super) trait SpanLike {
    /// Line and column.
    fn pos(&self) -> (u64, u64);
}

impl<T> SpanLike for serde_saphyr::Spanned<T> {
    fn pos(&self) -> (u64, u64) {
        (self.referenced.line(), self.referenced.column())
    }
}
