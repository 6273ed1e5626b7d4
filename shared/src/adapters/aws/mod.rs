//! The AWS host: S3 for objects, DynamoDB for key sets and runs, Secrets Manager for
//! connection secrets, SNS for notifications.
//!
//! Clients are built once per process (a Lambda's cold start, a CLI invocation) and cloned
//! into the adapters: a client clone shares its connection pool and credential cache.

mod dynamo_batch;
mod dynamo_item;
mod dynamo_keyset;
mod dynamo_runs;
pub(crate) mod error;
mod s3;
mod secrets;
mod sns;

pub use dynamo_keyset::{CapacityUsed, DynamoKeySetStore};
pub use dynamo_runs::DynamoRunStore;
pub use s3::S3ObjectStore;
pub use secrets::SecretsManagerSecrets;
pub use sns::SnsNotifier;

use aws_config::SdkConfig;

/// The service clients the adapters use, built from one SDK configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// S3 (path-style addressing when an endpoint override is configured).
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
}

impl AwsClients {
    /// Clients for `config`. With an endpoint override (moto, LocalStack) S3 uses path-style
    /// URLs, because `bucket.localhost` does not resolve.
    pub fn new(config: &SdkConfig) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        AwsClients {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
        }
    }

    /// Clients from the standard environment (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn from_env() -> Self {
        let config = crate::aws_http::sdk_defaults().load().await;
        Self::new(&config)
    }
}
