//! The periodic alert check of a stack (an EventBridge schedule invokes the finalize function
//! with `{"action": "check_alerts", "every_minutes": 15}`): every deployed sync's time since
//! its last delivery and its approvals waiting (CloudWatch metrics, [`health_metrics_lines`]),
//! and the `no_success` alert of each sync that passed its `no_success_for_hours`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::events::health_metrics_lines;
use super::host::AwsHost;
use crate::engine::alerts::{check_sync, SyncHealth};
use crate::engine::EngineError;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertCheck {
    /// Each deployed sync, by name.
    pub syncs: Vec<SyncHealth>,
    /// Syncs past their `no_success_for_hours`.
    pub stale: usize,
    /// Runs waiting for an approval decision, in all syncs.
    pub pending_approvals: u64,
}

/// Checks every deployed sync, alerting the stale ones; prints the metrics (embedded metric
/// format, read from the function's log stream).
pub async fn check_alerts(host: &AwsHost, every_minutes: f64) -> Result<AlertCheck, EngineError> {
    let now = Utc::now();
    let mut syncs = Vec::new();
    for deployed in host.config.list().await? {
        let engine = host.engine(&deployed);
        let deployed_at = DateTime::parse_from_rfc3339(&deployed.deployed_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let health = check_sync(
            &engine,
            &deployed.def,
            deployed_at,
            every_minutes / 60.0,
            now,
        )
        .await?;
        syncs.push(health);
    }
    for line in health_metrics_lines(&host.names.stack, &syncs) {
        println!("{line}");
    }
    let check = AlertCheck {
        stale: syncs.iter().filter(|s| s.stale).count(),
        pending_approvals: syncs.iter().map(|s| s.pending_approvals).sum(),
        syncs,
    };
    tracing::info!(
        syncs = check.syncs.len(),
        stale = check.stale,
        pending_approvals = check.pending_approvals,
        "alert check done"
    );
    Ok(check)
}
