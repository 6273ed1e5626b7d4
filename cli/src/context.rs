//! Loads the project and builds the embedded engine (local adapters under the state folder).

use std::path::PathBuf;
use std::sync::Arc;

use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::config::{load_project, ConfigError, Project};
use retl_shared::engine::{local_owner, Engine, NoProgress, Progress};

use crate::progress::BarProgress;

/// The loaded project and its engine.
pub struct Context {
    /// The project.
    pub project: Project,
    /// The engine with local adapters.
    pub engine: Engine,
}

/// Loads the project in `dir` (or the current folder) and opens its local state.
pub fn open(dir: Option<PathBuf>, show_progress: bool) -> Result<Context, anyhow::Error> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    let project = load_project(&dir)?;
    let store = SqliteStateStore::open(&project.state_dir.join("state.db")).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the local state in {}: {e}",
            project.state_dir.display()
        )
    })?;
    let store = Arc::new(store);
    let progress: Arc<dyn Progress> = if show_progress {
        Arc::new(BarProgress::default())
    } else {
        Arc::new(NoProgress)
    };
    let engine = Engine {
        objects: Arc::new(FileObjectStore::new(project.state_dir.join("objects"))),
        keysets: store.clone(),
        runs: store,
        secrets: Arc::new(EnvSecrets),
        notifier: Arc::new(TerminalNotifier),
        connections: project.connections.clone(),
        root: project.root.clone(),
        owner: local_owner(),
        progress,
        opened: Default::default(),
        rate_share: 1,
    };
    Ok(Context { project, engine })
}

/// Whether an error is a config problem (exit code 2).
pub fn is_config_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ConfigError>().is_some()
}
