//! Adapters of the ports: `local` (files, SQLite, environment, terminal) and, with the `aws`
//! feature, `aws` (S3, DynamoDB, Secrets Manager, SNS).

pub mod local;
