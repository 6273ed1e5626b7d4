//! Notifications published to an SNS topic.

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;

use super::error::describe;
use crate::ports::{Notification, Notifier};

/// SNS refuses subjects of 100 characters or more.
const MAX_SUBJECT_CHARS: usize = 99;

/// A [`Notifier`] that publishes each notification to one SNS topic: the message is the
/// notification as JSON, the `Subject` a one-line summary for e-mail subscribers, and the
/// message attribute `kind` (`approval_needed`, `alert`) lets subscriptions filter.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// A notifier publishing to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn kind(n: &Notification) -> &'static str {
    match n {
        Notification::ApprovalNeeded { .. } => "approval_needed",
        Notification::Alert { .. } => "alert",
    }
}

/// A subject SNS accepts: printable ASCII only, shortened with `...` past the limit.
fn subject(n: &Notification) -> String {
    let text = match n {
        Notification::ApprovalNeeded { sync, run_id, .. } => {
            format!("retl: approval needed for sync {sync} (run {run_id})")
        }
        Notification::Alert {
            sync,
            run_id,
            fired,
            ..
        } => {
            let rules: Vec<&str> = fired.iter().map(|f| f.rule.as_str()).collect();
            let run = run_id
                .as_deref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default();
            format!("retl: alert for sync {sync}{run}: {}", rules.join(", "))
        }
    };
    let clean: Vec<char> = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if clean.len() <= MAX_SUBJECT_CHARS {
        return clean.into_iter().collect();
    }
    let mut short: String = clean[..MAX_SUBJECT_CHARS - 3].iter().collect();
    short.push_str("...");
    short
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, notification: &Notification) -> Result<(), String> {
        let message = serde_json::to_string(notification).map_err(|e| e.to_string())?;
        let kind = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(kind(notification))
            .build()
            .map_err(|e| e.to_string())?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(notification))
            .message(message)
            .message_attributes("kind", kind)
            .send()
            .await
            .map_err(|e| describe(&format!("publishing to {}", self.topic_arn), &e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_short_printable_ascii() {
        let n = Notification::Alert {
            run_id: Some("r1".into()),
            sync: format!("ünïcode\n{}", "x".repeat(200)),
            status: Some("failed".into()),
            error_name: None,
            fired: Vec::new(),
        };
        let s = subject(&n);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.starts_with("retl: alert for sync ?n?code?xxx"), "{s}");
        assert!(s.ends_with("..."));
        assert_eq!(kind(&n), "alert");
    }
}
