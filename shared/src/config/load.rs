//! Finding and reading `retl.yaml` and the sync files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diagnostics::{from_yaml_error, Diagnostic, Diagnostics};
use super::model::{ProjectFile, SyncConfig};
use super::validate::{validate, SourceText};
use super::{ConfigError, Project};

/// The project folder: `dir` itself when it holds `retl.yaml`, else an error naming it.
pub fn find_project_dir(dir: &Path) -> Result<PathBuf, ConfigError> {
    if dir.join("retl.yaml").is_file() {
        Ok(dir.to_path_buf())
    } else {
        Err(ConfigError::NotFound {
            dir: dir.to_path_buf(),
        })
    }
}

/// The text of `path` (shown as `shown`): an unreadable file is an error, a file that is not
/// UTF-8 a diagnostic at the first bad byte, so the other files are still checked.
fn read(path: &Path, shown: &Path) -> Result<Result<String, Diagnostic>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|cause| ConfigError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    Ok(String::from_utf8(bytes).map_err(|e| not_utf8(shown, e)))
}

/// Where the first byte that is not UTF-8 is: line, column (in characters) and byte offset.
fn not_utf8(file: &Path, e: std::string::FromUtf8Error) -> Diagnostic {
    let at = e.utf8_error().valid_up_to();
    let bytes = e.as_bytes();
    let bad = bytes.get(at).copied().unwrap_or_default();
    // The prefix before `at` is valid UTF-8 by definition.
    let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
    let line = valid.matches('\n').count() as u64 + 1;
    let column = valid[line_start..].chars().count() as u64 + 1;
    // The line up to the bad byte, for the caret display; the rest may not be text.
    let shown_line = format!("{}\u{FFFD}", &valid[line_start..]);
    let mut d = Diagnostic::at(
        file,
        "",
        line,
        column,
        format!("the file is not valid UTF-8: byte 0x{bad:02X} at byte offset {at}"),
    )
    .hint("save the file as UTF-8 (YAML files must be UTF-8 text)");
    d.source_line = Some(shown_line);
    d
}

/// Loads and validates the project in `dir`, reporting every problem found at once.
pub fn load_project(dir: &Path) -> Result<Project, ConfigError> {
    let root = find_project_dir(dir)?;
    let project_path = root.join("retl.yaml");
    let mut diags = Vec::new();
    let project_text = match read(&project_path, Path::new("retl.yaml"))? {
        Ok(t) => t,
        Err(d) => return Err(ConfigError::Invalid(Diagnostics(vec![d]))),
    };

    let project: Option<ProjectFile> = match serde_saphyr::from_str(&project_text) {
        Ok(p) => Some(p),
        Err(e) => {
            diags.push(from_yaml_error(Path::new("retl.yaml"), &project_text, &e));
            None
        }
    };

    let mut sync_sources: Vec<(SyncConfig, SourceText)> = Vec::new();
    let project_source = SourceText {
        file: PathBuf::from("retl.yaml"),
        text: project_text.clone(),
    };
    let mut project = project;
    if let Some(p) = project.as_mut() {
        for s in std::mem::take(&mut p.syncs) {
            sync_sources.push((s, project_source.clone()));
        }
    }

    read_sync_files(&root, &mut sync_sources, &mut diags)?;

    let Some(project) = project else {
        return Err(ConfigError::Invalid(Diagnostics(diags)));
    };
    let (syncs, sync_files, more) = validate(&project, &project_source, &sync_sources);
    diags.extend(more);
    if !diags.is_empty() {
        return Err(ConfigError::Invalid(Diagnostics(diags)));
    }
    let state_dir = {
        let p = Path::new(&project.state.path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            root.join(p)
        }
    };
    let connections = project
        .connections
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect::<BTreeMap<_, _>>();
    Ok(Project {
        root: root.clone(),
        state_dir,
        retention: project.state.retention,
        connections,
        syncs,
        sync_files: sync_files
            .into_iter()
            .map(|(k, v)| (k, root.join(v)))
            .collect(),
    })
}

/// Reads every `syncs/*.yaml` (and `.yml`) of the project in `root`, in name order: the
/// syncs parsed go to `syncs`, the problems found (with positions) to `diags`.
fn read_sync_files(
    root: &Path,
    syncs: &mut Vec<(SyncConfig, SourceText)>,
    diags: &mut Vec<Diagnostic>,
) -> Result<(), ConfigError> {
    let display_root = |p: &Path| p.strip_prefix(root).unwrap_or(p).to_path_buf();
    let syncs_dir = root.join("syncs");
    if syncs_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&syncs_dir)
            .map_err(|cause| ConfigError::Io {
                path: syncs_dir.clone(),
                cause,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
            })
            .collect();
        files.sort();
        for path in files {
            let shown = display_root(&path);
            let text = match read(&path, &shown)? {
                Ok(t) => t,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            match serde_saphyr::from_str::<SyncConfig>(&text) {
                Ok(s) => syncs.push((s, SourceText { file: shown, text })),
                Err(e) => diags.push(from_yaml_error(&shown, &text, &e)),
            }
        }
    }

    Ok(())
}
