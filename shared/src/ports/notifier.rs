use async_trait::async_trait;
use serde::Serialize;

use super::runs::{Counts, RunRecord};

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
    /// A run ended in failure, partial failure or abort.
    RunProblem {
        /// The run.
        run_id: String,
        /// Its sync.
        sync: String,
        /// End state.
        status: String,
        /// What went wrong.
        error: Option<String>,
        /// Counts.
        counts: Counts,
    },
}

impl Notification {
    /// The notification for a run that ended badly.
    pub fn problem(run: &RunRecord) -> Self {
        Notification::RunProblem {
            run_id: run.run_id.clone(),
            sync: run.sync.clone(),
            status: run.status.as_str().to_string(),
            error: run.error.clone(),
            counts: run.counts.clone(),
        }
    }
}

/// Delivers notifications. Local: the terminal (stderr). AWS: an SNS topic.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one notification; failures are reported but never fail a run.
    async fn notify(&self, notification: &Notification) -> Result<(), String>;
}
