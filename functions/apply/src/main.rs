//! Lambda `apply`: sends one apply unit of the plan through the delivery framework. A retried
//! invocation (`retry` > 0) resumes after the records an earlier attempt delivered.

use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::{step_apply_unit, ApplyStep};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct ApplyEvent {
    run_id: String,
    sync: String,
    unit: usize,
    #[serde(default)]
    retry: u32,
}

async fn handle(
    host: &AwsHost,
    parallel: usize,
    event: ApplyEvent,
) -> Result<ApplyStep, Diagnostic> {
    let (deployed, engine) = load(host, &event.sync).await?;
    step_apply_unit(
        &engine,
        &deployed.def,
        &event.run_id,
        event.unit,
        event.retry > 0,
        parallel,
    )
    .await
    .map_err(diagnostic)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    // The state machine runs this many units at once; they share the destination's rate limit.
    let parallel = std::env::var("RETL_APPLY_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    lambda_runtime::run(service_fn(|e: LambdaEvent<ApplyEvent>| {
        handle(&host, parallel, e.payload)
    }))
    .await
}
