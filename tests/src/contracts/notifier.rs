//! The contract of [`Notifier`]: every notification reaches its audience once, saying which
//! run and sync it is about and what is asked. Every backend runs every function here.

use std::sync::Arc;

use async_trait::async_trait;
use retl_shared::ports::{AlertRule, Counts, FiredRule, Notification, Notifier};
use serde_json::json;

/// A notifier backend under test: the port, and what reached the audience.
#[async_trait]
pub trait NotifierBackend: Sync {
    /// The port.
    fn notifier(&self) -> Arc<dyn Notifier>;
    /// The text of every notification delivered so far (waiting for `at_least` of them when
    /// delivery is asynchronous), in any order.
    async fn delivered(&self, at_least: usize) -> Vec<String>;
}

/// An alert: a failed run's `failure` rule fired.
pub fn alert() -> Notification {
    Notification::Alert {
        run_id: Some("run-1".into()),
        sync: "people".into(),
        status: Some("failed".into()),
        error_name: Some("Retl.SourceUnavailable".into()),
        fired: vec![FiredRule {
            rule: AlertRule::Failure,
            summary: "the run failed (Retl.SourceUnavailable)".into(),
            figures: [("status".to_string(), json!("failed"))].into(),
        }],
    }
}

/// A run waiting for approval.
pub fn approval() -> Notification {
    Notification::ApprovalNeeded {
        run_id: "run-2".into(),
        sync: "people".into(),
        counts: Counts {
            deletes: 9,
            ..Counts::default()
        },
        reason: "9 deletes".into(),
        sample: vec!["7".into()],
        preview: "runs/run-2/preview.json".into(),
        message: "retl: run run-2 of sync `people` waits for approval before it writes.\n".into(),
    }
}

/// Both kinds are delivered, once each: the alert with its sync, run, rule and what it found;
/// the approval request with its run, reason and where the deletion preview is.
pub async fn delivers_every_kind_once(b: &dyn NotifierBackend) {
    let n = b.notifier();
    n.notify(&alert()).await.unwrap();
    n.notify(&approval()).await.unwrap();
    let mut got = b.delivered(2).await;
    got.sort_by_key(|t| !t.contains("run-1"));
    assert_eq!(got.len(), 2, "{got:#?}");
    for part in ["run-1", "people", "failure", "Retl.SourceUnavailable"] {
        assert!(got[0].contains(part), "the alert says {part}: {}", got[0]);
    }
    for part in ["run-2", "9 deletes", "runs/run-2/preview.json"] {
        assert!(
            got[1].contains(part),
            "the approval request says {part}: {}",
            got[1]
        );
    }
}

/// Every function above, in order.
pub async fn all(b: &dyn NotifierBackend) {
    delivers_every_kind_once(b).await;
}
