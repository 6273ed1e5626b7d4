//! What the stack tells the world: CloudWatch metrics of a finished run in the embedded metric
//! format, and the events it puts on its own bus: `retl.run.completed` (which chains
//! `after_sync` triggers) and `retl.trigger` (the dbt Cloud webhook's).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::json;

use super::event_schemas::{
    RunCompletedDetail, TriggerDetail, EVENT_SOURCE, RUN_COMPLETED_EVENT, TRIGGER_EVENT,
};
use super::names::StackNames;
use crate::engine::alerts::SyncHealth;
use crate::ports::{RunRecord, RunStatus};

/// Entries one PutEvents call takes at most.
const PUT_EVENTS_MAX_ENTRIES: usize = 10;

/// The `_aws` member of an embedded-metric-format line: `metrics` (name, unit) in the `retl`
/// namespace, by `dimensions`, now.
fn emf_directive(dimensions: serde_json::Value, metrics: &[(&str, &str)]) -> serde_json::Value {
    let metrics: Vec<_> = metrics
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    json!({
        "Timestamp": chrono::Utc::now().timestamp_millis(),
        "CloudWatchMetrics": [{"Namespace": "retl", "Dimensions": dimensions, "Metrics": metrics}],
    })
}

/// One EMF log line with the run's metrics (namespace `retl`, dimensions Stack and Stack+Sync).
pub fn metrics_line(stack: &str, run: &RunRecord) -> String {
    let c = &run.counts;
    let duration = run
        .finished_at
        .map(|f| (f - run.created_at).num_milliseconds().max(0))
        .unwrap_or(0);
    let ok = matches!(run.status, RunStatus::Succeeded);
    let failed = matches!(
        run.status,
        RunStatus::Failed | RunStatus::PartiallyFailed | RunStatus::Aborted | RunStatus::Expired
    );
    let metrics = [
        ("RecordsCreated", "Count"),
        ("RecordsUpdated", "Count"),
        ("RecordsDeleted", "Count"),
        ("RecordsRejected", "Count"),
        ("RecordsFailed", "Count"),
        ("RunsSucceeded", "Count"),
        ("RunsFailed", "Count"),
        ("RunDurationMs", "Milliseconds"),
        ("RowsRead", "Count"),
    ];
    json!({
        "_aws": emf_directive(json!([["Stack"], ["Stack", "Sync"]]), &metrics),
        "Stack": stack,
        "Sync": run.sync,
        "run_id": run.run_id,
        "status": run.status.as_str(),
        "RecordsCreated": c.creates,
        "RecordsUpdated": c.updates,
        "RecordsDeleted": c.deletes,
        "RecordsRejected": c.rejected,
        "RecordsFailed": c.failed,
        "RunsSucceeded": u8::from(ok),
        "RunsFailed": u8::from(failed),
        "RunDurationMs": duration,
        "RowsRead": c.rows,
    })
    .to_string()
}

/// EMF lines of the periodic alert check: per sync (dimensions Stack+Sync) the hours since its
/// last delivery, its approvals waiting and the oldest one's wait; for the stack (dimension
/// Stack) the stale syncs, the approvals waiting and the longest wait, which the template's
/// alarms watch.
pub fn health_metrics_lines(stack: &str, syncs: &[SyncHealth]) -> Vec<String> {
    let mut lines: Vec<String> = syncs
        .iter()
        .map(|h| {
            json!({
                "_aws": emf_directive(
                    json!([["Stack", "Sync"]]),
                    &[("HoursSinceSuccess", "None"), ("PendingApprovals", "Count"), ("ApprovalWaitMinutes", "None")],
                ),
                "Stack": stack,
                "Sync": h.sync,
                "HoursSinceSuccess": h.hours_since_success,
                "PendingApprovals": h.pending_approvals,
                "ApprovalWaitMinutes": h.oldest_approval_wait_minutes.unwrap_or(0.0),
            })
            .to_string()
        })
        .collect();
    let longest_wait = syncs
        .iter()
        .filter_map(|h| h.oldest_approval_wait_minutes)
        .fold(0.0, f64::max);
    lines.push(
        json!({
            "_aws": emf_directive(
                json!([["Stack"]]),
                &[("StaleSyncs", "Count"), ("PendingApprovals", "Count"), ("ApprovalWaitMinutes", "None")],
            ),
            "Stack": stack,
            "StaleSyncs": syncs.iter().filter(|h| h.stale).count(),
            "PendingApprovals": syncs.iter().map(|h| h.pending_approvals).sum::<u64>(),
            "ApprovalWaitMinutes": longest_wait,
        })
        .to_string(),
    );
    lines
}

/// Publishes `retl.run.completed` ([`RunCompletedDetail`]) on the stack's bus.
pub async fn emit_run_completed(
    events: &aws_sdk_eventbridge::Client,
    names: &StackNames,
    run: &RunRecord,
) -> Result<(), String> {
    let detail = serde_json::to_string(&RunCompletedDetail::of(&names.stack, run))
        .map_err(|e| format!("the run-completed event does not serialise: {e}"))?;
    put(events, names, RUN_COMPLETED_EVENT, vec![detail]).await
}

/// Publishes one `retl.trigger` ([`TriggerDetail`], naming the stack) per sync on the stack's
/// bus, where its rule hands them to the trigger function.
pub async fn emit_triggers(
    events: &aws_sdk_eventbridge::Client,
    names: &StackNames,
    syncs: &[String],
) -> Result<(), String> {
    let details = syncs
        .iter()
        .map(|sync| {
            let detail = TriggerDetail {
                sync: sync.clone(),
                stack: Some(names.stack.clone()),
            };
            serde_json::to_string(&detail)
                .map_err(|e| format!("the trigger event does not serialise: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    put(events, names, TRIGGER_EVENT, details).await
}

/// Puts events of `detail_type` with these details on the stack's bus, ten per call.
async fn put(
    events: &aws_sdk_eventbridge::Client,
    names: &StackNames,
    detail_type: &str,
    details: Vec<String>,
) -> Result<(), String> {
    for chunk in details.chunks(PUT_EVENTS_MAX_ENTRIES) {
        let entries = chunk.iter().map(|detail| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&names.event_bus)
                .source(EVENT_SOURCE)
                .detail_type(detail_type)
                .detail(detail)
                .build()
        });
        let out = events
            .put_events()
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!(
                "the {detail_type} event was refused by the bus {}: {why}",
                names.event_bus
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::ports::RunRecord;

    fn parsed(line: &str) -> Value {
        serde_json::from_str(line).expect("an EMF line is JSON")
    }

    fn directive(line: &Value) -> (&Value, Vec<(String, String)>) {
        let cw = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "retl", "{line}");
        assert!(line["_aws"]["Timestamp"].as_i64().is_some(), "{line}");
        let metrics = cw["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| {
                let field = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                (field("Name"), field("Unit"))
            })
            .collect();
        (&cw["Dimensions"], metrics)
    }

    #[test]
    fn a_run_line_declares_every_metric_it_carries() {
        let mut run = RunRecord::new("r1".into(), "people", "manual", 1);
        run.counts.creates = 3;
        run.finish(RunStatus::Succeeded);
        let line = parsed(&metrics_line("stk", &run));
        let (dimensions, metrics) = directive(&line);
        assert_eq!(dimensions, &json!([["Stack"], ["Stack", "Sync"]]));
        for (name, unit) in &metrics {
            assert!(
                line.get(name).is_some(),
                "{name} declared but absent: {line}"
            );
            let expected = if name == "RunDurationMs" {
                "Milliseconds"
            } else {
                "Count"
            };
            assert_eq!(unit, expected, "{name}");
        }
        assert_eq!(metrics.len(), 9);
        assert_eq!(
            (line["Stack"].clone(), line["Sync"].clone()),
            (json!("stk"), json!("people"))
        );
        assert_eq!(
            (
                line["RecordsCreated"].clone(),
                line["RunsSucceeded"].clone()
            ),
            (json!(3), json!(1))
        );
    }

    #[test]
    fn the_health_lines_give_each_sync_and_the_stack_what_the_alarms_watch() {
        let health = |sync: &str, stale: bool, pending: u64, wait: Option<f64>| SyncHealth {
            sync: sync.into(),
            hours_since_success: 30.0,
            never_delivered: false,
            stale,
            alerted: stale,
            pending_approvals: pending,
            oldest_approval_wait_minutes: wait,
        };
        let syncs = [
            health("a", true, 1, Some(90.0)),
            health("b", false, 2, Some(15.0)),
        ];
        let lines: Vec<Value> = health_metrics_lines("stk", &syncs)
            .iter()
            .map(|l| parsed(l))
            .collect();
        assert_eq!(lines.len(), 3);
        let (dimensions, metrics) = directive(&lines[0]);
        assert_eq!(dimensions, &json!([["Stack", "Sync"]]));
        let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "HoursSinceSuccess",
                "PendingApprovals",
                "ApprovalWaitMinutes"
            ]
        );
        assert_eq!(lines[0]["Sync"], "a");
        assert_eq!(lines[0]["ApprovalWaitMinutes"], json!(90.0));
        let stack = &lines[2];
        let (dimensions, metrics) = directive(stack);
        assert_eq!(dimensions, &json!([["Stack"]]));
        assert_eq!(
            metrics,
            [
                ("StaleSyncs", "Count"),
                ("PendingApprovals", "Count"),
                ("ApprovalWaitMinutes", "None")
            ]
            .map(|(n, u)| (n.to_string(), u.to_string()))
        );
        assert_eq!(
            (
                stack["StaleSyncs"].clone(),
                stack["PendingApprovals"].clone(),
                stack["ApprovalWaitMinutes"].clone()
            ),
            (json!(1), json!(3), json!(90.0))
        );
    }
}
