//! Starting runs on AWS: take the sync's lock (one run per sync, whatever the number of
//! simultaneous triggers), then start the state machine execution named after the run.

use serde::Serialize;
use serde_json::json;

use super::host::AwsHost;
use crate::engine::{finish_run, start_run, EngineError, StartOptions};
use crate::ports::RunStatus;

/// What a trigger did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TriggerOutcome {
    /// A run started.
    Started {
        /// The sync.
        sync: String,
        /// The run (and execution name).
        run_id: String,
    },
    /// Nothing started, and why.
    Skipped {
        /// The sync.
        sync: String,
        /// Why.
        reason: String,
    },
}

/// Starts a run of `sync` unless it is paused or already running.
pub async fn start_sync(
    host: &AwsHost,
    sync: &str,
    trigger: &str,
) -> Result<TriggerOutcome, EngineError> {
    match start_execution(host, sync, trigger).await {
        Ok(run_id) => Ok(TriggerOutcome::Started {
            sync: sync.to_string(),
            run_id,
        }),
        Err(e @ (EngineError::Paused(_) | EngineError::Locked { .. })) => {
            tracing::info!(sync, reason = %e, "trigger skipped");
            Ok(TriggerOutcome::Skipped {
                sync: sync.to_string(),
                reason: e.to_string(),
            })
        }
        Err(e) => Err(e),
    }
}

/// Takes the sync's lock and starts the execution named after the new run; a paused or
/// running sync is an error (`Paused`, `Locked`). Returns the run id.
pub async fn start_execution(
    host: &AwsHost,
    sync: &str,
    trigger: &str,
) -> Result<String, EngineError> {
    let (deployed, engine) = host.load(sync).await?;
    let opts = StartOptions {
        trigger: trigger.to_string(),
        note: None,
        run_id: None,
    };
    let mut run = start_run(&engine, &deployed.def, opts).await?;
    let input = json!({"run_id": run.run_id, "sync": sync}).to_string();
    let started = host
        .sfn
        .start_execution()
        .state_machine_arn(&host.names.state_machine_arn)
        .name(&run.run_id)
        .input(input)
        .send()
        .await;
    if let Err(e) = started {
        let message = format!(
            "could not start the state machine: {}",
            aws_sdk_sfn::error::DisplayErrorContext(e)
        );
        run.error = Some(message.clone());
        run.error_name = Some("Retl.StartFailed".into());
        finish_run(&engine, &mut run, RunStatus::Failed).await?;
        return Err(EngineError::Invalid(message));
    }
    tracing::info!(sync, run_id = %run.run_id, trigger, "execution started");
    Ok(run.run_id)
}

/// Starts the syncs whose `after_sync` trigger names `completed`.
pub async fn start_dependents(
    host: &AwsHost,
    completed: &str,
) -> Result<Vec<TriggerOutcome>, EngineError> {
    let mut out = Vec::new();
    for deployed in host.config.list().await? {
        let follows = deployed
            .def
            .triggers
            .iter()
            .any(|t| t.after_sync.as_deref() == Some(completed));
        if follows {
            out.push(start_sync(host, &deployed.def.name, "after_sync").await?);
        }
    }
    Ok(out)
}

/// The deployed syncs whose `dbt_cloud_job` trigger names the dbt Cloud job `job`, in name
/// order.
pub async fn syncs_for_dbt_job(host: &AwsHost, job: u64) -> Result<Vec<String>, EngineError> {
    let mut syncs: Vec<String> = host
        .config
        .list()
        .await?
        .into_iter()
        .filter(|d| d.def.triggers.iter().any(|t| t.dbt_cloud_job == Some(job)))
        .map(|d| d.def.name)
        .collect();
    syncs.sort();
    Ok(syncs)
}
