//! Where a command acts: the local state of the project (`.retl`), or a deployed AWS stack
//! (`--aws`). Commands are written once against [`Host`]; the flag only chooses the host.

#[cfg(feature = "aws")]
pub mod aws;
mod local;

use async_trait::async_trait;
use retl_shared::config::SyncDef;
use retl_shared::engine::Engine;
use retl_shared::ports::RunRecord;

use crate::args::Cli;
pub use local::LocalHost;

/// What a command asks of a run.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Re-send every row.
    pub full_resync: bool,
    /// Note for a new config version.
    pub note: Option<String>,
    /// What started it (`manual`, `retry`).
    pub trigger: String,
    /// Plan only these keys (`retl retry`).
    pub only_keys: Option<std::collections::BTreeSet<String>>,
    /// On AWS: wait for the execution to end (or to wait for approval).
    pub wait: bool,
}

/// A place runs happen and are recorded.
#[async_trait]
pub trait Host: Send + Sync {
    /// Where this is, for messages (`the local state`, `stack retl`).
    fn describe(&self) -> String;
    /// The engine (stores, secrets, connections) for a sync.
    async fn engine(&self, sync: &SyncDef) -> anyhow::Result<Engine>;
    /// An engine for reading runs when no sync is named.
    async fn reader(&self) -> anyhow::Result<Engine>;
    /// A sync as this host runs it (the project file locally, the deployed version on AWS).
    async fn sync(&self, name: &str) -> anyhow::Result<SyncDef>;
    /// Starts a run; locally it also completes (or stops for approval) before returning.
    async fn run(&self, sync: &SyncDef, request: RunRequest) -> anyhow::Result<RunRecord>;
    /// Records a decision on a run awaiting approval; an approved run applies its plan.
    async fn decide(
        &self,
        sync: &SyncDef,
        run_id: &str,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> anyhow::Result<RunRecord>;
}

/// The host `--aws` chooses.
pub async fn open(cli: &Cli, show_progress: bool) -> anyhow::Result<Box<dyn Host>> {
    if cli.aws {
        return open_aws(cli).await;
    }
    Ok(Box::new(LocalHost::open(
        cli.project.clone(),
        show_progress,
    )?))
}

#[cfg(feature = "aws")]
async fn open_aws(cli: &Cli) -> anyhow::Result<Box<dyn Host>> {
    Ok(Box::new(aws::StackHost::connect(&cli.stack).await?))
}

#[cfg(not(feature = "aws"))]
async fn open_aws(_cli: &Cli) -> anyhow::Result<Box<dyn Host>> {
    Err(anyhow::anyhow!(
        "this retl was built without AWS support; rebuild with the `aws` feature"
    ))
}
