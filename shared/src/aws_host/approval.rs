//! Approvals on AWS. The state machine's wait starts the request: the run is recorded as
//! waiting, its task token goes to the approval-tokens table (never to the run), and the
//! stack's runbook asks the approvers in Systems Manager (Automation > Executions: the
//! request's text, Approve and Deny). Whichever they choose, the runbook hands the run id and
//! its execution id back to the approval function, which reads the decision and who took it
//! from Systems Manager, records it through the engine (which refuses stale plans) and resumes
//! or ends the execution with the stored token. `retl approve --aws` decides by the same path,
//! as the caller's own AWS identity.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::approval_decision::read_decision;
use super::approval_tokens::{ApprovalTokens, WaitingToken};
use super::host::AwsHost;
use super::reminder::{reminder_time, schedule_reminder};
use crate::engine::keys::RunKeys;
use crate::engine::steps::{step_decide, step_request_approval};
use crate::engine::EngineError;
use crate::ports::{Notification, RunRecord, RunStatus, RunStore, StoreError};

/// Execution states in which an automation still asks its approvers.
const ASKING: &[&str] = &["Pending", "InProgress", "Waiting"];

/// How long `retl approve --aws` follows the run after its signal.
const SIGNAL_FOLLOW: Duration = Duration::from_secs(60);

fn ssm_error(what: &str, e: String) -> EngineError {
    let transient = ["unreachable", "HTTP 5", "Throttling", "InternalServerError"];
    let why = format!("{what}: {e}");
    EngineError::Store(if transient.iter().any(|t| e.contains(t)) {
        StoreError::Unavailable(why)
    } else {
        StoreError::Other(why)
    })
}

fn unverified(run_id: &str, reason: impl Into<String>) -> EngineError {
    EngineError::ApprovalUnverified {
        run_id: run_id.to_string(),
        reason: reason.into(),
    }
}

impl AwsHost {
    /// The approval-tokens table (only the approval function's role may use it).
    pub fn approval_tokens(&self) -> ApprovalTokens {
        ApprovalTokens::new(
            self.clients.dynamodb.clone(),
            self.names.approval_tokens_table.clone(),
        )
    }
}

/// Stops `run_id` for approval, keeps `task_token` for the decision, and asks the approvers
/// (a retried request keeps the automation execution already asking them, and takes the new
/// token); schedules the reminder.
pub async fn request_approval(
    host: &AwsHost,
    sync: &str,
    run_id: &str,
    task_token: &str,
) -> Result<RunRecord, EngineError> {
    let (deployed, engine) = host.load(sync).await?;
    let message = step_request_approval(&engine, &deployed.def, run_id).await?;
    let runs = host.runs();
    let mut run = runs.get_run(run_id).await?;
    let approval = run.approval.clone().unwrap_or_default();
    let expires = approval.expires_at.unwrap_or_else(Utc::now);
    let mut waiting = WaitingToken {
        token: task_token.to_string(),
        execution: None,
    };
    if let Some(id) = &approval.automation_execution_id {
        let asking = host
            .automation
            .get(id)
            .await
            .map_err(|e| ssm_error("read the approval request", e))?;
        if ASKING.contains(&asking.automation_execution_status.as_str()) {
            waiting.execution = Some(id.clone());
        }
    }
    let tokens = host.approval_tokens();
    tokens.put(run_id, &waiting, expires).await?;
    if waiting.execution.is_none() {
        let params = [
            ("RunId", run_id),
            ("Sync", sync),
            ("Message", message.as_str()),
        ];
        let id = host
            .automation
            .start(&host.names.approval_runbook, &params)
            .await
            .map_err(|e| ssm_error("ask the approvers (start the approval runbook)", e))?;
        waiting.execution = Some(id.clone());
        tokens.put(run_id, &waiting, expires).await?;
        run.approval
            .get_or_insert_with(Default::default)
            .automation_execution_id = Some(id);
        run.updated_at = Utc::now();
        runs.put_run(&run).await?;
    }
    if let Some(at) = approval
        .requested_at
        .and_then(|requested| reminder_time(requested, expires))
    {
        if let Err(e) = schedule_reminder(host, run_id, at).await {
            tracing::warn!(run_id, error = %e, "could not schedule the approval reminder");
        }
    }
    tracing::info!(run_id, sync, "approvers asked");
    Ok(run)
}

/// The approvers of `run_id` decided in the automation execution `execution_id`: takes that
/// decision as Systems Manager recorded it, and resumes (or ends) the waiting execution.
pub async fn take_decision(
    host: &AwsHost,
    run_id: &str,
    execution_id: &str,
) -> Result<RunRecord, EngineError> {
    let tokens = host.approval_tokens();
    let waiting = tokens.get(run_id).await?.ok_or_else(|| {
        unverified(
            run_id,
            "it waits for no decision (decided already, expired, or never asked)",
        )
    })?;
    if waiting.execution.as_deref() != Some(execution_id) {
        return Err(unverified(
            run_id,
            format!("automation execution {execution_id} is not the request this run made"),
        ));
    }
    let execution = host
        .automation
        .get(execution_id)
        .await
        .map_err(|e| ssm_error("read the approvers' decision", e))?;
    let decision = read_decision(&execution, &host.names.approval_runbook, run_id)
        .map_err(|why| unverified(run_id, why))?;
    let run = host.runs().get_run(run_id).await?;
    let (deployed, engine) = host.load(&run.sync).await?;
    let by = decision.by.as_str();
    let note = decision.note.as_deref();
    let taken = step_decide(&engine, &deployed.def, run_id, decision.approve, by, note).await?;
    let sent = match &taken.failure {
        None => host
            .sfn
            .send_task_success()
            .task_token(&waiting.token)
            .output(json!({"decision": "approve", "by": by}).to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
        Some(refusal) => host
            .sfn
            .send_task_failure()
            .task_token(&waiting.token)
            .error(refusal.error().0)
            .cause(refusal.error().1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sfn::error::DisplayErrorContext(e).to_string()),
    };
    sent.map_err(|e| {
        EngineError::Invalid(format!("the execution did not take the decision: {e}"))
    })?;
    tokens.delete(run_id).await?;
    tracing::info!(run_id, approve = decision.approve, "decision taken");
    if let Some(stale) = taken.failure.and_then(|r| r.into_error(run_id)) {
        return Err(stale);
    }
    Ok(taken.run)
}

/// Reminds the approvers of `run_id` if it still waits (the reminder schedule's call);
/// returns the run and whether it reminded them.
pub async fn remind(host: &AwsHost, run_id: &str) -> Result<(RunRecord, bool), EngineError> {
    let run = host.runs().get_run(run_id).await?;
    if run.status != RunStatus::AwaitingApproval {
        return Ok((run, false));
    }
    let engine = host.reader();
    let keys = RunKeys::new(run_id);
    let message = engine.objects.get(&keys.approval_message()).await?;
    let approval = run.approval.clone().unwrap_or_default();
    let expires = approval.expires_at.map_or_else(
        || "soon".to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    let note = Notification::ApprovalNeeded {
        run_id: run.run_id.clone(),
        sync: run.sync.clone(),
        counts: run.planned.clone(),
        reason: format!(
            "reminder: the request expires at {expires}: {}",
            approval.reason
        ),
        sample: Vec::new(),
        preview: engine.objects.location(&keys.deletion_preview()),
        message: String::from_utf8_lossy(&message).into_owned(),
    };
    engine.notifier.notify(&note).await.map_err(|e| {
        EngineError::Store(StoreError::Unavailable(format!("send the reminder: {e}")))
    })?;
    Ok((run, true))
}

/// Withdraws the request of `run_id` once its wait expired (the state machine's call): its
/// automation execution is cancelled, so the console no longer offers Approve and Deny on a
/// run that can no longer be resumed, and its task token is dropped. Whether there was a
/// request to withdraw.
pub async fn withdraw(host: &AwsHost, run_id: &str) -> Result<bool, EngineError> {
    let tokens = host.approval_tokens();
    let Some(waiting) = tokens.get(run_id).await? else {
        return Ok(false);
    };
    if let Some(execution) = &waiting.execution {
        host.automation
            .stop(execution)
            .await
            .map_err(|e| ssm_error(&format!("cancel the approval request of run {run_id}"), e))?;
    }
    tokens.delete(run_id).await?;
    tracing::info!(run_id, "expired approval request withdrawn");
    Ok(true)
}

/// Approves (or rejects) `run_id` as the caller's AWS identity (`retl approve --aws`): the
/// signal goes to the run's automation execution, so Systems Manager checks the caller is one
/// of the approvers and records who it is; then follows the run until the decision is taken.
pub async fn signal_decision(
    host: &AwsHost,
    run_id: &str,
    approve: bool,
    note: Option<&str>,
) -> Result<RunRecord, EngineError> {
    let runs = host.runs();
    let run = runs.get_run(run_id).await?;
    if run.status != RunStatus::AwaitingApproval {
        return Err(EngineError::NotAwaitingApproval {
            run_id: run_id.to_string(),
            status: run.status,
        });
    }
    let id = run
        .approval
        .as_ref()
        .and_then(|a| a.automation_execution_id.clone())
        .ok_or_else(|| unverified(run_id, "it has no approval request in Systems Manager yet"))?;
    host.automation
        .signal(&id, approve, note)
        .await
        .map_err(|e| unverified(run_id, format!("Systems Manager refused the decision: {e}")))?;
    let deadline = std::time::Instant::now() + SIGNAL_FOLLOW;
    loop {
        let now = runs.get_run(run_id).await?;
        if now.status != RunStatus::AwaitingApproval || std::time::Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
