use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{Notification, Notifier};

/// Prints notifications to stderr (an alert as one line per rule that fired), appends them to a
/// buffer ([`TerminalNotifier::into_buffer`]), or leaves approval requests to a caller that
/// shows every run itself ([`TerminalNotifier::shown_by_caller`]).
#[derive(Debug, Default, Clone)]
pub struct TerminalNotifier {
    buffer: Option<Arc<Mutex<Vec<String>>>>,
    quiet: bool,
}

impl TerminalNotifier {
    /// A notifier for a host that prints every run it starts or decides (the CLI: its run
    /// summary gives the approval commands and the reason), so an approval request would say
    /// the same thing twice. Alerts are still printed.
    pub fn shown_by_caller() -> Self {
        TerminalNotifier {
            buffer: None,
            quiet: true,
        }
    }

    /// A notifier that appends each notification's text to `buffer` instead of printing it
    /// (for a host that shows them its own way, and for tests).
    pub fn into_buffer(buffer: Arc<Mutex<Vec<String>>>) -> Self {
        TerminalNotifier {
            buffer: Some(buffer),
            quiet: false,
        }
    }
}

/// What the terminal shows for `n`.
fn text(n: &Notification) -> String {
    match n {
        Notification::ApprovalNeeded {
            run_id,
            reason,
            message,
            preview,
            ..
        } => format!(
            "approval needed for run {run_id}: {reason}\n{message}  deletion preview: {preview}\n  \
             approve with `retl approve {run_id}` or reject with `retl reject {run_id}`"
        ),
        Notification::Alert { .. } => n.alert_lines().join("\n"),
    }
}

#[async_trait]
impl Notifier for TerminalNotifier {
    async fn notify(&self, n: &Notification) -> Result<(), String> {
        if self.quiet && matches!(n, Notification::ApprovalNeeded { .. }) {
            return Ok(());
        }
        let text = text(n);
        match &self.buffer {
            // A poisoned buffer still holds whole lines: pushing cannot leave it half-written.
            Some(b) => b.lock().unwrap_or_else(|p| p.into_inner()).push(text),
            None => eprintln!("{text}"),
        }
        Ok(())
    }
}
