//! Alert rules at work (`alerts:` in a sync file): evaluated when a run ends, on both hosts
//! (`finish_run` calls [`after_run`]), and by the AWS bundle's periodic check of every
//! deployed sync ([`check_sync`]: no delivery for too long, approvals waiting). What fires is
//! sent to the host's notifier (the terminal, the stack's SNS topic) and, when the sync names
//! one, a Slack-compatible webhook.

mod rules;
#[cfg(test)]
mod tests;
mod webhook;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use rules::{
    delivered, evaluate_run, hours_between, last_delivery, no_success, oldest_start,
    runtime_minutes, stale_due,
};

use super::{Engine, EngineError};
use crate::config::{AlertRules, SyncDef};
use crate::ports::{Notification, RunRecord, RunStatus, StoreError};

/// Runs of a sync read to find its last delivery and its recent row counts.
const HISTORY: usize = 100;

/// The rules a run was made with: those of its config version (the default when none is
/// stored).
async fn rules_of(engine: &Engine, run: &RunRecord) -> Result<AlertRules, StoreError> {
    let versions = engine.runs.versions(&run.sync).await?;
    Ok(versions
        .into_iter()
        .find(|v| v.version == run.config_version)
        .map(|v| v.definition.alerts)
        .unwrap_or_default())
}

/// Whether evaluating `rules` needs the sync's earlier runs.
fn needs_history(rules: &AlertRules) -> bool {
    rules.row_count_change.is_some() || rules.no_success_for_hours.is_some()
}

/// Evaluates the alert rules on a run that just ended and delivers what fired. Never fails
/// the run: a store or delivery problem is logged.
pub async fn after_run(engine: &Engine, run: &RunRecord) {
    // A dry run is no run of the sync.
    if run.status == RunStatus::Planned {
        return;
    }
    let loaded = async {
        let rules = rules_of(engine, run).await?;
        let history = if needs_history(&rules) {
            engine.runs.list_runs(Some(&run.sync), HISTORY).await?
        } else {
            Vec::new()
        };
        Ok::<_, StoreError>((rules, history))
    };
    let (rules, history) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::warn!(run_id = %run.run_id, error = %e, "could not read the alert rules; no alert evaluated");
            return;
        }
    };
    let fired = evaluate_run(&rules, run, &history, Utc::now());
    if fired.is_empty() {
        return;
    }
    let note = Notification::Alert {
        sync: run.sync.clone(),
        run_id: Some(run.run_id.clone()),
        status: Some(run.status.as_str().to_string()),
        error_name: run.error_name.clone(),
        fired,
    };
    deliver(engine, &rules, &note).await;
}

/// Sends an alert to the host's notifier and to the sync's webhook, if it has one. Failures
/// are logged (warnings are shown by the CLI), never raised.
pub async fn deliver(engine: &Engine, rules: &AlertRules, note: &Notification) {
    if let Err(e) = engine.notifier.notify(note).await {
        tracing::warn!(error = %e, "could not send the alert");
    }
    let Some(secret) = &rules.slack_webhook_url_env else {
        return;
    };
    let posted = match engine.secrets.get(secret).await {
        Ok(url) => webhook::post(&url, &note.alert_lines()).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = posted {
        tracing::warn!(
            secret = %secret,
            error = %e,
            "could not post the alert to the webhook named by alerts.slack_webhook_url_env"
        );
    }
}

/// What the periodic check found for one sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncHealth {
    /// The sync.
    pub sync: String,
    /// Hours since its last delivering run ended (since its first run or deployment when it
    /// never delivered).
    pub hours_since_success: f64,
    /// Whether it never delivered.
    pub never_delivered: bool,
    /// Over its `no_success_for_hours` (and not paused).
    pub stale: bool,
    /// Whether this check sent the `no_success` alert (once when it becomes stale, then every
    /// further `no_success_for_hours`).
    pub alerted: bool,
    /// Runs waiting for an approval decision.
    pub pending_approvals: u64,
    /// Minutes the oldest of them has waited.
    pub oldest_approval_wait_minutes: Option<f64>,
}

/// The periodic check of one sync, run every `every_hours`: how long since it delivered, and
/// its approvals waiting; alerts once it passes `no_success_for_hours`. `deployed_at` stands
/// in for the last delivery of a sync that never ran.
pub async fn check_sync(
    engine: &Engine,
    sync: &SyncDef,
    deployed_at: Option<DateTime<Utc>>,
    every_hours: f64,
    now: DateTime<Utc>,
) -> Result<SyncHealth, EngineError> {
    let state = engine.runs.sync_state(&sync.name).await?;
    let history = engine.runs.list_runs(Some(&sync.name), HISTORY).await?;
    let runs: Vec<&RunRecord> = history.iter().collect();
    let waiting: Vec<DateTime<Utc>> = runs
        .iter()
        .filter(|r| r.status == RunStatus::AwaitingApproval)
        .filter_map(|r| r.approval.as_ref().and_then(|a| a.requested_at))
        .collect();
    let last = last_delivery(&runs);
    let since = [oldest_start(&runs), deployed_at]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
    let age = hours_between(last.unwrap_or(since), now);
    let mut health = SyncHealth {
        sync: sync.name.clone(),
        hours_since_success: (age * 100.0).round() / 100.0,
        never_delivered: last.is_none(),
        stale: false,
        alerted: false,
        pending_approvals: waiting.len() as u64,
        oldest_approval_wait_minutes: waiting
            .iter()
            .min()
            .map(|t| ((now - *t).num_seconds().max(0) as f64 / 60.0).round()),
    };
    let Some(hours) = sync.alerts.no_success_for_hours.filter(|_| !state.paused) else {
        return Ok(health);
    };
    health.stale = age > hours;
    if !stale_due(age, hours, every_hours) {
        return Ok(health);
    }
    if let Some(fired) = no_success(hours, last, since, now) {
        let note = Notification::Alert {
            sync: sync.name.clone(),
            run_id: None,
            status: None,
            error_name: None,
            fired: vec![fired],
        };
        deliver(engine, &sync.alerts, &note).await;
        health.alerted = true;
    }
    Ok(health)
}
