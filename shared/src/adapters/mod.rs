//! Adapters of the ports: `local` (files, SQLite, environment, terminal) and, with the `aws`
//! feature, `aws` (S3, DynamoDB, Secrets Manager, SNS).

#[cfg(feature = "aws")]
pub mod aws;
pub mod local;
