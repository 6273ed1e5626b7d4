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
    let names = [
        "RecordsCreated",
        "RecordsUpdated",
        "RecordsDeleted",
        "RecordsRejected",
        "RecordsFailed",
        "RunsSucceeded",
        "RunsFailed",
        "RunDurationMs",
        "RowsRead",
    ];
    let metrics: Vec<_> = names
        .iter()
        .map(|n| json!({"Name": n, "Unit": if *n == "RunDurationMs" { "Milliseconds" } else { "Count" }}))
        .collect();
    json!({
        "_aws": {
            "Timestamp": chrono::Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "retl",
                "Dimensions": [["Stack"], ["Stack", "Sync"]],
                "Metrics": metrics,
            }],
        },
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
    let now = chrono::Utc::now().timestamp_millis();
    let directive = |dimensions: serde_json::Value, names: &[(&str, &str)]| {
        let metrics: Vec<_> = names
            .iter()
            .map(|(n, unit)| json!({"Name": n, "Unit": unit}))
            .collect();
        json!({
            "Timestamp": now,
            "CloudWatchMetrics": [{"Namespace": "retl", "Dimensions": dimensions, "Metrics": metrics}],
        })
    };
    let mut lines: Vec<String> = syncs
        .iter()
        .map(|h| {
            json!({
                "_aws": directive(
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
            "_aws": directive(
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
