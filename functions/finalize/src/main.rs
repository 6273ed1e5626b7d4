//! Lambda `finalize`: records the run's end state and counts exactly once, releases the lock,
//! alerts on failure (SNS), prints the run's metrics (CloudWatch embedded metric format) and
//! publishes `retl.run.completed` on EventBridge.

use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::{emit_run_completed, metrics_line, AwsHost};
use retl_shared::engine::steps::{step_finalize, Ending};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct FinalizeEvent {
    run_id: String,
    sync: String,
    ending: Ending,
    /// A state machine Catch's error: `{"Error": name, "Cause": text}`.
    #[serde(default)]
    error: Option<StepError>,
}

/// Either part may be null (a task failure sent without a cause).
#[derive(Debug, Deserialize)]
struct StepError {
    #[serde(rename = "Error", default)]
    error: Option<String>,
    #[serde(rename = "Cause", default)]
    cause: Option<String>,
}

/// The readable message of a Catch: Lambda errors carry a JSON cause with `errorMessage`.
fn message(e: &StepError) -> String {
    let cause = e.cause.clone().unwrap_or_default();
    serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if cause.is_empty() {
                e.error.clone().unwrap_or_default()
            } else {
                cause
            }
        })
}

async fn handle(host: &AwsHost, event: FinalizeEvent) -> Result<Value, Diagnostic> {
    let (deployed, engine) = load(host, &event.sync).await?;
    let error = event.error.as_ref().map(|e| {
        (
            e.error.clone().unwrap_or_else(|| "Retl.Error".into()),
            message(e),
        )
    });
    let run = step_finalize(&engine, &deployed.def, &event.run_id, event.ending, error)
        .await
        .map_err(diagnostic)?;
    println!("{}", metrics_line(&host.names.stack, &run));
    if let Err(e) = emit_run_completed(&host.events, &host.names.stack, &run).await {
        tracing::warn!(error = %e, "could not publish the run-completed event");
    }
    Ok(json!({"run_id": run.run_id, "status": run.status.as_str()}))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    lambda_runtime::run(service_fn(|e: LambdaEvent<FinalizeEvent>| {
        handle(&host, e.payload)
    }))
    .await
}
