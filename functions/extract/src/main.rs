//! Lambda `extract`: prepares the plan (destination check, baseline on a first run) and streams
//! the model into S3 part files. Returns the shard list's key for the plan Map.

use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_lambda::{diagnostic, load, RunEvent};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::{step_extract, ExtractStep};

async fn handle(host: &AwsHost, event: RunEvent) -> Result<ExtractStep, Diagnostic> {
    let (deployed, engine) = load(host, &event.sync).await?;
    step_extract(&engine, &deployed.def, &event.run_id)
        .await
        .map_err(diagnostic)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    lambda_runtime::run(service_fn(|e: LambdaEvent<RunEvent>| {
        handle(&host, e.payload)
    }))
    .await
}
