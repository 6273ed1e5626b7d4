//! What a finished run tells the world: CloudWatch metrics in the embedded metric format, and
//! a `retl.run.completed` EventBridge event (which chains `after_sync` triggers).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::json;

use super::event_schemas::{RunCompletedDetail, EVENT_SOURCE, RUN_COMPLETED_EVENT};
use crate::ports::{RunRecord, RunStatus};

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
    })
    .to_string()
}

/// Publishes `retl.run.completed` ([`RunCompletedDetail`]) on the default bus.
pub async fn emit_run_completed(
    events: &aws_sdk_eventbridge::Client,
    stack: &str,
    run: &RunRecord,
) -> Result<(), String> {
    let detail = serde_json::to_string(&RunCompletedDetail::of(stack, run))
        .map_err(|e| format!("the run-completed event does not serialise: {e}"))?;
    let entry = PutEventsRequestEntry::builder()
        .source(EVENT_SOURCE)
        .detail_type(RUN_COMPLETED_EVENT)
        .detail(detail)
        .build();
    let out = events
        .put_events()
        .entries(entry)
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
        return Err(format!("the run-completed event was refused: {why}"));
    }
    Ok(())
}
