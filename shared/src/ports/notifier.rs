use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use super::runs::Counts;

/// Something a person should hear about.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// A run stopped before writing because its deletes passed a safety limit.
    ApprovalNeeded {
        /// The run waiting.
        run_id: String,
        /// Its sync.
        sync: String,
        /// Planned counts.
        counts: Counts,
        /// Why approval is needed.
        reason: String,
        /// A few keys that would be deleted.
        sample: Vec<String>,
        /// Where the full deletion preview is.
        preview: String,
        /// What the approvers read: the counts, the rule crossed and the records to delete
        /// with their values (at most 4096 characters).
        message: String,
    },
    /// Alert rules of a sync fired (`alerts:` in the sync file): after a run, or at the AWS
    /// bundle's periodic check. Carries names, statuses and figures only, never a record
    /// value or an error message (which may quote one): `retl runs show RUN` has the rest.
    Alert {
        /// The sync.
        sync: String,
        /// The run the rules fired on; `None` for the periodic check.
        run_id: Option<String>,
        /// The run's end state.
        status: Option<String>,
        /// The run's stable error name (`Retl.*`), when it failed.
        error_name: Option<String>,
        /// The rules that fired, in the order of the sync file's fields.
        fired: Vec<FiredRule>,
    },
}

/// An alert rule of the sync file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// `on_failure`: the run failed, was aborted, or its approval expired.
    Failure,
    /// `rejected_over_pct`.
    RejectedRecords,
    /// `row_count_change`.
    RowCountChange,
    /// `no_success_for_hours`.
    NoSuccess,
    /// `runtime_over_minutes`.
    Runtime,
}

impl AlertRule {
    /// The name used in messages and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertRule::Failure => "failure",
            AlertRule::RejectedRecords => "rejected_records",
            AlertRule::RowCountChange => "row_count_change",
            AlertRule::NoSuccess => "no_success",
            AlertRule::Runtime => "runtime",
        }
    }
}

/// One rule that fired: what it found, in a sentence and as figures (counts, percents, hours,
/// minutes, statuses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiredRule {
    /// The rule.
    pub rule: AlertRule,
    /// What it found, e.g. "12 of 100 rows rejected (12.0%, more than 5%)".
    pub summary: String,
    /// The same as numbers, by name.
    pub figures: BTreeMap<String, serde_json::Value>,
}

impl Notification {
    /// Short one-line texts of an alert, one per fired rule (the terminal, chat webhooks).
    pub fn alert_lines(&self) -> Vec<String> {
        let Notification::Alert {
            sync,
            run_id,
            fired,
            ..
        } = self
        else {
            return Vec::new();
        };
        let run = run_id
            .as_deref()
            .map(|r| format!(" run {r}"))
            .unwrap_or_default();
        fired
            .iter()
            .map(|f| {
                format!(
                    "alert: sync {sync}{run}: {}: {}",
                    f.rule.as_str(),
                    f.summary
                )
            })
            .collect()
    }
}

/// Delivers notifications. Local: the terminal (stderr). AWS: an SNS topic.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one notification; failures are reported but never fail a run.
    async fn notify(&self, notification: &Notification) -> Result<(), String>;
}
