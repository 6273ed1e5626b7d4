//! The trigger's payloads. Three shapes reach it:
//! - `{"sync": "name", "trigger": "schedule" | "event" | "manual"}` from EventBridge Scheduler,
//!   the per-sync upstream rules `retl deploy` creates (their target input), or a direct call;
//! - an EventBridge event `{"detail-type": "retl.trigger", "detail": {"sync": "name"}}`
//!   (optionally `"stack"`);
//! - an EventBridge event `{"detail-type": "retl.run.completed", "detail": {"stack", "sync",
//!   "status"}}`.

use retl_shared::ports::RunStatus;
use serde::{Deserialize, Serialize};

/// What asked for a run (recorded on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// The sync's EventBridge Scheduler schedule.
    Schedule,
    /// An upstream event (a per-sync rule, or a `retl.trigger` event).
    Event,
    /// A direct invocation.
    Manual,
}

impl TriggerKind {
    /// The name recorded on the run.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Schedule => "schedule",
            TriggerKind::Event => "event",
            TriggerKind::Manual => "manual",
        }
    }
}

/// What the trigger is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Wire")]
pub enum TriggerRequest {
    /// Start a run of `sync`.
    Start {
        /// The sync.
        sync: String,
        /// What asked.
        trigger: TriggerKind,
        /// The stack a `retl.trigger` event names, if it names one.
        stack: Option<String>,
    },
    /// A run of `sync` ended with `status`: start the syncs that follow it if it succeeded.
    RunCompleted {
        /// The sync whose run ended.
        sync: String,
        /// How it ended.
        status: RunStatus,
        /// The stack the run belongs to, if the event names it.
        stack: Option<String>,
    },
}

impl TriggerRequest {
    /// The stack an event names; `None` for direct calls and events that name none.
    pub fn stack(&self) -> Option<&str> {
        match self {
            TriggerRequest::Start { stack, .. } | TriggerRequest::RunCompleted { stack, .. } => {
                stack.as_deref()
            }
        }
    }

    /// The sync the request is about.
    pub fn sync(&self) -> &str {
        match self {
            TriggerRequest::Start { sync, .. } | TriggerRequest::RunCompleted { sync, .. } => sync,
        }
    }
}

/// Every field any of the shapes has; EventBridge's other fields are ignored.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    detail: Option<Detail>,
    sync: Option<String>,
    trigger: Option<TriggerKind>,
}

#[derive(Deserialize, Default)]
struct Detail {
    sync: Option<String>,
    status: Option<RunStatus>,
    stack: Option<String>,
}

impl TryFrom<Wire> for TriggerRequest {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Self, String> {
        let detail = wire.detail.unwrap_or_default();
        match wire.detail_type.as_deref() {
            Some("retl.run.completed") => Ok(TriggerRequest::RunCompleted {
                sync: detail
                    .sync
                    .ok_or("a retl.run.completed event needs detail.sync")?,
                status: detail
                    .status
                    .ok_or("a retl.run.completed event needs detail.status")?,
                stack: detail.stack,
            }),
            Some("retl.trigger") => Ok(TriggerRequest::Start {
                sync: detail.sync.ok_or("a retl.trigger event needs detail.sync")?,
                trigger: TriggerKind::Event,
                stack: detail.stack,
            }),
            Some(other) => Err(format!(
                "unexpected detail-type `{other}`: the trigger takes retl.trigger and retl.run.completed events"
            )),
            None => Ok(TriggerRequest::Start {
                sync: wire.sync.ok_or(
                    "expected {\"sync\": \"name\", \"trigger\": \"schedule\" | \"event\" | \"manual\"} \
                     or an EventBridge retl.trigger event",
                )?,
                trigger: wire.trigger.unwrap_or(TriggerKind::Manual),
                stack: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    fn start(sync: &str, trigger: TriggerKind) -> TriggerRequest {
        TriggerRequest::Start {
            sync: sync.into(),
            trigger,
            stack: None,
        }
    }

    #[test]
    fn direct_calls_name_the_sync_and_default_to_manual() {
        let scheduled = parse::<TriggerRequest>(json!({"sync": "people", "trigger": "schedule"}));
        assert_eq!(scheduled.unwrap(), start("people", TriggerKind::Schedule));
        let manual = parse::<TriggerRequest>(json!({"sync": "people"}));
        assert_eq!(manual.unwrap(), start("people", TriggerKind::Manual));
    }

    #[test]
    fn eventbridge_events_are_read_from_their_detail() {
        let event = json!({
            "version": "0", "id": "6a7e8feb", "source": "retl", "account": "123456789012",
            "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail-type": "retl.trigger", "detail": {"sync": "people"}
        });
        assert_eq!(
            parse::<TriggerRequest>(event).unwrap(),
            start("people", TriggerKind::Event)
        );
        let completed = json!({
            "detail-type": "retl.run.completed", "source": "retl",
            "detail": {"stack": "retl", "sync": "people", "run_id": "r1", "status": "partially_failed",
                       "counts": {"creates": 1}, "finished_at": null, "error_name": null}
        });
        assert_eq!(
            parse::<TriggerRequest>(completed).unwrap(),
            TriggerRequest::RunCompleted {
                sync: "people".into(),
                status: RunStatus::PartiallyFailed,
                stack: Some("retl".into()),
            }
        );
    }

    /// The events as the published schemas' types write them (`aws_host::event_schemas`) are
    /// what the trigger reads.
    #[test]
    fn events_of_the_published_types_are_read() {
        use retl_shared::aws_host::event_schemas::{
            RunCompletedDetail, TriggerDetail, EVENT_SOURCE, RUN_COMPLETED_EVENT, TRIGGER_EVENT,
        };
        use retl_shared::ports::RunRecord;

        let detail = TriggerDetail {
            sync: "people".into(),
            stack: Some("stack".into()),
        };
        let event = json!({"source": EVENT_SOURCE, "detail-type": TRIGGER_EVENT, "detail": detail});
        let request = parse::<TriggerRequest>(event).unwrap();
        assert_eq!(request.stack(), Some("stack"));
        assert_eq!(request.sync(), "people");
        let mut run = RunRecord::new("r1".into(), "people", "schedule", 1);
        run.status = RunStatus::Succeeded;
        let detail = RunCompletedDetail::of("stack", &run);
        let event =
            json!({"source": EVENT_SOURCE, "detail-type": RUN_COMPLETED_EVENT, "detail": detail});
        assert_eq!(
            parse::<TriggerRequest>(event).unwrap(),
            TriggerRequest::RunCompleted {
                sync: "people".into(),
                status: RunStatus::Succeeded,
                stack: Some("stack".into()),
            }
        );
    }

    #[test]
    fn payloads_it_cannot_act_on_are_bad_requests_saying_why() {
        let cases = [
            (json!({"name": "people"}), "expected {\"sync\": \"name\""),
            (
                json!({"sync": "people", "trigger": "cron"}),
                "unknown variant `cron`",
            ),
            (
                json!({"detail-type": "retl.trigger", "detail": {}}),
                "needs detail.sync",
            ),
            (
                json!({"detail-type": "retl.run.completed", "detail": {"sync": "p"}}),
                "needs detail.status",
            ),
            (
                json!({"detail-type": "Object Created", "detail": {"sync": "p"}}),
                "unexpected detail-type `Object Created`",
            ),
            (json!("people"), "invalid type"),
        ];
        for (payload, says) in cases {
            let err = parse::<TriggerRequest>(payload.clone()).unwrap_err();
            assert_eq!(err.error_type, "Retl.BadRequest", "{payload}");
            assert!(
                err.error_message.contains(says),
                "{payload}: {}",
                err.error_message
            );
        }
    }
}
