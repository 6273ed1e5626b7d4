use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{Notification, Notifier};

/// Prints notifications to stderr (the CLI shows results itself; this adds the alert line),
/// or appends them to a buffer ([`TerminalNotifier::into_buffer`]).
#[derive(Debug, Default, Clone)]
pub struct TerminalNotifier {
    buffer: Option<Arc<Mutex<Vec<String>>>>,
}

impl TerminalNotifier {
    /// A notifier that appends each notification's text to `buffer` instead of printing it
    /// (for a host that shows them its own way, and for tests).
    pub fn into_buffer(buffer: Arc<Mutex<Vec<String>>>) -> Self {
        TerminalNotifier {
            buffer: Some(buffer),
        }
    }
}

/// What the terminal shows for `n`.
fn text(n: &Notification) -> String {
    match n {
        Notification::ApprovalNeeded {
            run_id,
            reason,
            preview,
            ..
        } => format!(
            "approval needed for run {run_id}: {reason}\n  deletion preview: {preview}\n  \
             approve with `retl approve {run_id}` or reject with `retl reject {run_id}`"
        ),
        Notification::RunProblem {
            run_id,
            sync,
            status,
            error,
            ..
        } => format!(
            "alert: run {run_id} of {sync} ended {status}{}",
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    }
}

#[async_trait]
impl Notifier for TerminalNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), String> {
        let text = text(n);
        match &self.buffer {
            // A poisoned buffer still holds whole lines: pushing cannot leave it half-written.
            Some(b) => b.lock().unwrap_or_else(|p| p.into_inner()).push(text),
            None => eprintln!("{text}"),
        }
        Ok(())
    }
}
