//! The local host: the project's files and its embedded store (`.retl`: one SQLite file for
//! key sets, runs and versions, files for parts, plans and record logs).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retl_shared::adapters::local::{
    EnvSecrets, FileObjectStore, SqliteStateStore, TerminalNotifier,
};
use retl_shared::config::{load_project, Project, SyncDef};
use retl_shared::engine::{
    decide_local, local_owner, prune_artifacts, run_local, Engine, LocalRunOptions, NoProgress,
    Progress,
};
use retl_shared::ports::RunRecord;

use super::{Host, RunRequest};
use crate::progress::BarProgress;

/// The project and its engine with local adapters.
pub struct LocalHost {
    /// The project.
    pub project: Project,
    /// The engine.
    pub engine: Engine,
}

impl LocalHost {
    /// Loads the project in `dir` (or the current folder) and opens its local state.
    pub fn open(dir: Option<PathBuf>, show_progress: bool) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d,
            None => std::env::current_dir()?,
        };
        let project = load_project(&dir)?;
        let state_file = project.state_dir.join("state.db");
        // The store names the file, and says what to do when it is damaged.
        let store = SqliteStateStore::open(&state_file)?;
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
            notifier: Arc::new(TerminalNotifier::shown_by_caller()),
            connections: project.connections.clone(),
            root: project.root.clone(),
            owner: local_owner(),
            progress,
            opened: Default::default(),
            rate_share: 1,
        };
        Ok(LocalHost { project, engine })
    }

    /// Removes the artefacts of finished runs past the project's retention. A failure to
    /// prune costs disk space, not data, so it is reported and the command goes on.
    pub async fn prune(&self) {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        match prune_artifacts(&self.engine, &self.project.retention, now).await {
            Ok(p) if !p.removed.is_empty() => {
                tracing::debug!(runs = p.removed.len(), "pruned artefacts of old runs");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune the artefacts of old runs"),
        }
    }
}

#[async_trait]
impl Host for LocalHost {
    fn describe(&self) -> String {
        format!("the local state in {}", self.project.state_dir.display())
    }

    async fn engine(&self, _sync: &SyncDef) -> anyhow::Result<Engine> {
        Ok(self.engine.clone())
    }

    async fn reader(&self) -> anyhow::Result<Engine> {
        Ok(self.engine.clone())
    }

    async fn sync(&self, name: &str) -> anyhow::Result<SyncDef> {
        Ok(self.project.sync(name)?.clone())
    }

    async fn run(&self, sync: &SyncDef, request: RunRequest) -> anyhow::Result<RunRecord> {
        let opts = LocalRunOptions {
            dry_run: false,
            full_resync: request.full_resync,
            trigger: request.trigger,
            note: request.note,
            only_keys: request.only_keys,
        };
        let run = run_local(&self.engine, sync, opts).await?;
        self.prune().await;
        Ok(run)
    }

    async fn decide(
        &self,
        sync: &SyncDef,
        run_id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> anyhow::Result<RunRecord> {
        let run = decide_local(&self.engine, sync, run_id, approve, by, note).await?;
        self.prune().await;
        Ok(run)
    }
}
