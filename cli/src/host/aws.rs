//! The AWS host: a deployed stack, reached with the caller's credentials. Runs start as
//! Step Functions executions; decisions resume the waiting execution.

use std::time::Duration;

use anyhow::anyhow;
use async_trait::async_trait;
use retl_shared::aws_host::{signal_decision, start_execution, AwsHost, StackNames};
use retl_shared::config::SyncDef;
use retl_shared::engine::{Engine, EngineError};
use retl_shared::ports::{RunRecord, RunStatus, RunStore};

use super::{Host, RunRequest};

/// A deployed stack.
pub struct StackHost {
    /// The stack's clients and names.
    pub aws: AwsHost,
    /// Who the credentials are (STS GetCallerIdentity): the approver of `retl approve`.
    pub caller: String,
    stack: String,
}

impl StackHost {
    /// Connects to the stack named `stack` in the account and region of the credentials.
    pub async fn connect(stack: &str) -> anyhow::Result<Self> {
        let sdk = retl_shared::aws_http::sdk_defaults().load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| anyhow!("no AWS region: set AWS_REGION (or a profile with a region)"))?;
        let identity = aws_sdk_sts::Client::new(&sdk)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot reach AWS with these credentials: {}",
                    aws_sdk_sts::error::DisplayErrorContext(e)
                )
            })?;
        let account = identity
            .account()
            .ok_or_else(|| anyhow!("STS did not return an account id"))?;
        Ok(StackHost {
            aws: AwsHost::new(&sdk, StackNames::derive(stack, account, &region)),
            caller: identity.arn().unwrap_or_default().to_string(),
            stack: stack.to_string(),
        })
    }

    async fn wait(&self, run_id: &str) -> anyhow::Result<RunRecord> {
        let runs = self.aws.runs();
        loop {
            let run = runs.get_run(run_id).await.map_err(EngineError::from)?;
            // A run is recorded as waiting a moment before its approvers are asked: until
            // the automation execution exists, `retl approve --aws` would have nothing to
            // signal.
            let asked = run
                .approval
                .as_ref()
                .is_some_and(|a| a.automation_execution_id.is_some());
            if run.status.is_terminal() || (run.status == RunStatus::AwaitingApproval && asked) {
                return Ok(run);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

#[async_trait]
impl Host for StackHost {
    fn describe(&self) -> String {
        format!("stack {}", self.stack)
    }

    async fn engine(&self, sync: &SyncDef) -> anyhow::Result<Engine> {
        Ok(self.aws.load(&sync.name).await?.1)
    }

    async fn reader(&self) -> anyhow::Result<Engine> {
        Ok(self.aws.reader())
    }

    async fn sync(&self, name: &str) -> anyhow::Result<SyncDef> {
        let deployed = self.aws.config.get(name).await.map_err(|e| {
            anyhow!(
                "sync `{name}` is not deployed to stack {} ({e}); `retl deploy --aws` deploys it",
                self.stack
            )
        })?;
        Ok(deployed.def)
    }

    async fn run(&self, sync: &SyncDef, request: RunRequest) -> anyhow::Result<RunRecord> {
        if request.full_resync || request.only_keys.is_some() {
            return Err(anyhow!(
                "--full-resync and `retl retry` act on the local state only for now; on AWS, \
                 a mapping change (redeployed) forces the full resync"
            ));
        }
        let run_id = start_execution(&self.aws, &sync.name, &request.trigger).await?;
        if request.wait {
            return self.wait(&run_id).await;
        }
        Ok(self
            .aws
            .runs()
            .get_run(&run_id)
            .await
            .map_err(EngineError::from)?)
    }

    /// The decision is the caller's, as AWS authenticates it (`by` is not used): it is sent
    /// to the run's approval request in Systems Manager, which refuses anyone who is not one
    /// of the stack's approvers.
    async fn decide(
        &self,
        _sync: &SyncDef,
        run_id: &str,
        approve: bool,
        _by: &str,
        note: Option<&str>,
    ) -> anyhow::Result<RunRecord> {
        tracing::info!(run_id, caller = %self.caller, approve, "deciding");
        Ok(signal_decision(&self.aws, run_id, approve, note).await?)
    }
}
