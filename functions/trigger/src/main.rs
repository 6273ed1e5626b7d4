//! Lambda `trigger`: starts runs. Accepts
//! - `{"sync": "name", "trigger": "schedule" | "event" | "manual"}` (EventBridge Scheduler,
//!   per-sync upstream rules created by `retl deploy`, or a direct invocation);
//! - an EventBridge event `{"detail-type": "retl.trigger", "detail": {"sync": "name"}}`;
//! - an EventBridge event `{"detail-type": "retl.run.completed", "detail": {"sync", "status"}}`,
//!   which starts the syncs declaring `after_sync` on it.
//!
//! Paused syncs and syncs already running are skipped; the lock makes simultaneous triggers
//! start exactly one run.

use retl_lambda::diagnostic;
use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_shared::aws_host::{start_dependents, start_sync, AwsHost, TriggerOutcome};
use serde_json::{json, Value};

fn bad_request(message: String) -> Diagnostic {
    Diagnostic {
        error_type: "Retl.BadRequest".into(),
        error_message: message,
    }
}

async fn handle(host: &AwsHost, event: Value) -> Result<Value, Diagnostic> {
    let detail_type = event.get("detail-type").and_then(Value::as_str);
    let outcomes: Vec<TriggerOutcome> = match detail_type {
        Some("retl.run.completed") => {
            let detail = &event["detail"];
            let sync = detail["sync"]
                .as_str()
                .ok_or_else(|| bad_request("run-completed event without detail.sync".into()))?;
            if detail["status"] != "succeeded" {
                return Ok(json!({"started": []}));
            }
            start_dependents(host, sync).await.map_err(diagnostic)?
        }
        Some(_) => {
            let sync = event["detail"]["sync"]
                .as_str()
                .ok_or_else(|| bad_request("a retl.trigger event needs detail.sync".into()))?;
            vec![start_sync(host, sync, "event").await.map_err(diagnostic)?]
        }
        None => {
            let sync = event["sync"].as_str().ok_or_else(|| {
                bad_request(format!("expected {{\"sync\": \"name\"}}, got {event}"))
            })?;
            let trigger = event["trigger"].as_str().unwrap_or("manual");
            vec![start_sync(host, sync, trigger).await.map_err(diagnostic)?]
        }
    };
    Ok(json!({ "started": outcomes }))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| handle(&host, e.payload))).await
}
