//! What every retl Lambda function shares: JSON logs, the AWS host built once per cold start,
//! the event every step receives, typed parsing of the payload, and errors converted into
//! `Diagnostic`s whose `errorType` is the engine's stable error name, so that Step Functions
//! `Retry`/`Catch` can match it.

mod errors;
mod serve;

use retl_shared::aws_host::{AwsHost, DeployedSync};
use retl_shared::engine::Engine;
use serde::{Deserialize, Serialize};

pub use errors::{bad_request, diagnostic, parse, BAD_REQUEST};
pub use lambda_runtime;
pub use serve::serve;

/// JSON logs on stdout (CloudWatch), filtered by `RUST_LOG`. Logs carry ids and counts only.
pub fn init_tracing() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for quiet in retl_shared::logging::QUIET_DEPENDENCIES {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
}

/// The host for this function, from the environment the template sets.
pub async fn host() -> Result<AwsHost, lambda_runtime::Error> {
    AwsHost::from_lambda_env().await.map_err(Into::into)
}

/// The input every step of a run receives from the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run.
    pub run_id: String,
    /// Its sync.
    pub sync: String,
}

/// Loads the deployed sync and an engine for it.
pub async fn load(
    host: &AwsHost,
    sync: &str,
) -> Result<(DeployedSync, Engine), lambda_runtime::Diagnostic> {
    host.load(sync).await.map_err(diagnostic)
}
