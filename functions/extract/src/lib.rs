//! Lambda `extract`: prepares the plan (destination check, baseline on a first run) and streams
//! the model into S3 part files. Returns the shard list's key for the plan Map.

use retl_lambda::lambda_runtime::Diagnostic;
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::step_extract;

pub use retl_lambda::RunEvent as ExtractRequest;
pub use retl_shared::engine::steps::ExtractStep as ExtractResponse;

/// Extracts the run's model.
pub async fn handle(
    host: &AwsHost,
    request: ExtractRequest,
) -> Result<ExtractResponse, Diagnostic> {
    let (deployed, engine) = load(host, &request.sync).await?;
    step_extract(&engine, &deployed.def, &request.run_id)
        .await
        .map_err(diagnostic)
}
