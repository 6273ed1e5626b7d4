//! retl's shared library: configuration, the sync engine, its ports and their adapters, the
//! delivery framework and the connectors. The `retl` CLI and the Lambda functions are thin
//! shells around it.

pub mod adapters;
#[cfg(feature = "aws")]
pub mod aws_host;
#[cfg(any(feature = "aws", feature = "aws-sources"))]
pub mod aws_http;
pub mod config;
pub mod connectors;
pub mod delivery;
pub mod engine;
pub mod logging;
pub mod modes;
pub mod ports;
pub mod record;
