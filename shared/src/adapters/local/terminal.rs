use async_trait::async_trait;

use crate::ports::{Notification, Notifier};

/// Prints notifications to stderr (the CLI shows results itself; this adds the alert line).
#[derive(Debug, Default, Clone)]
pub struct TerminalNotifier;

#[async_trait]
impl Notifier for TerminalNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), String> {
        match n {
            Notification::ApprovalNeeded {
                run_id,
                reason,
                preview,
                ..
            } => eprintln!(
                "approval needed for run {run_id}: {reason}\n  deletion preview: {preview}\n  \
                 approve with `retl approve {run_id}` or reject with `retl reject {run_id}`"
            ),
            Notification::RunProblem {
                run_id,
                sync,
                status,
                error,
                ..
            } => eprintln!(
                "alert: run {run_id} of {sync} ended {status}{}",
                error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        }
        Ok(())
    }
}
