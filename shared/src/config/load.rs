//! Finding and reading `retl.yaml` and the sync files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::diagnostics::{from_yaml_error, Diagnostics};
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

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads and validates the project in `dir`, reporting every problem found at once.
pub fn load_project(dir: &Path) -> Result<Project, ConfigError> {
    let root = find_project_dir(dir)?;
    let project_path = root.join("retl.yaml");
    let display_root = |p: &Path| p.strip_prefix(&root).unwrap_or(p).to_path_buf();
    let project_text = read(&project_path)?;
    let mut diags = Vec::new();

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

    let syncs_dir = root.join("syncs");
    if syncs_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&syncs_dir)
            .map_err(|source| ConfigError::Io {
                path: syncs_dir.clone(),
                source,
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
            let text = read(&path)?;
            let shown = display_root(&path);
            match serde_saphyr::from_str::<SyncConfig>(&text) {
                Ok(s) => sync_sources.push((s, SourceText { file: shown, text })),
                Err(e) => diags.push(from_yaml_error(&shown, &text, &e)),
            }
        }
    }

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
