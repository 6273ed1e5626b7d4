//! The two payloads finalize takes: the state machine's end of a run, and the schedule's
//! `{"action": "check_alerts", "every_minutes": 15}` (told apart by `action`, so a malformed
//! run payload is still reported by its own fields).

use retl_shared::aws_host::AlertCheck;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{FinalizeRequest, FinalizeResponse};

/// What finalize is invoked with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum FinalizeEvent {
    /// A run ended (the state machine).
    Finalize(FinalizeRequest),
    /// The periodic alert check (the template's schedule).
    Check(CheckRequest),
}

/// The only action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckAction {
    /// Check every deployed sync's last delivery and approvals waiting.
    CheckAlerts,
}

/// The schedule's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// `check_alerts`.
    pub action: CheckAction,
    /// Minutes between two checks (the schedule's rate): a stale sync is alerted by the one
    /// check of each period. Default 15.
    #[serde(default = "default_every_minutes")]
    pub every_minutes: f64,
}

fn default_every_minutes() -> f64 {
    15.0
}

impl TryFrom<Value> for FinalizeEvent {
    type Error = serde_json::Error;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        if value.get("action").is_some() {
            serde_json::from_value(value).map(FinalizeEvent::Check)
        } else {
            serde_json::from_value(value).map(FinalizeEvent::Finalize)
        }
    }
}

/// What finalize answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FinalizeOutput {
    /// The run's end state.
    Finalized(FinalizeResponse),
    /// What the check found.
    Checked(AlertCheck),
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_check_and_a_run_payload_are_told_apart_by_action() {
        let check: FinalizeEvent = parse(json!({"action": "check_alerts"})).unwrap();
        assert_eq!(
            check,
            FinalizeEvent::Check(CheckRequest {
                action: CheckAction::CheckAlerts,
                every_minutes: 15.0
            })
        );
        let run: FinalizeEvent =
            parse(json!({"run_id": "r1", "sync": "s", "ending": "failed"})).unwrap();
        assert!(matches!(run, FinalizeEvent::Finalize(r) if r.run_id == "r1"));
        let bad = parse::<FinalizeEvent>(json!({"action": "check_everything"})).unwrap_err();
        assert!(
            bad.error_message
                .contains("unknown variant `check_everything`"),
            "{}",
            bad.error_message
        );
        let bad = parse::<FinalizeEvent>(json!({"run_id": "r1", "sync": "s"})).unwrap_err();
        assert!(
            bad.error_message.contains("missing field `ending`"),
            "{}",
            bad.error_message
        );
    }
}
