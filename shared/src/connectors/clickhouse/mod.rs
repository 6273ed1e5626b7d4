//! ClickHouse as a warehouse over its HTTP interface: the model's columns from `DESCRIBE`,
//! rows streamed as `TabSeparatedWithNamesAndTypes`, a query id per run, settings, and the
//! server's error codes. See `README.md` in this folder.
//!
//! The config, its checks and its docs page are always compiled (so `retl validate` and the
//! schemas know the connector in every build); the client is behind the `clickhouse` feature.

#[cfg(feature = "clickhouse")]
mod error;
#[cfg(feature = "clickhouse")]
mod export;
#[cfg(feature = "clickhouse")]
mod source;
#[cfg(feature = "clickhouse")]
mod sql;
#[cfg(feature = "clickhouse")]
mod types;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DeployCheck, DestinationConnector, OpenContext, Problem,
    SourceConnector,
};
use crate::ports::{Source, SourceError};
#[cfg(feature = "clickhouse")]
pub use source::ClickHouseSource;

/// A ClickHouse server (or cluster behind one HTTP endpoint) as a warehouse.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConnection {
    /// The HTTP(S) interface: `https://ch.example.com:8443` (8123 plain, 8443 TLS).
    #[serde(default)]
    pub url: Option<String>,
    /// Another base URL for the same interface (a proxy, a test server); takes the place of
    /// `url`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// User (`X-ClickHouse-User`); without it and without a password the server's `default`
    /// user answers.
    #[serde(default)]
    pub user: Option<String>,
    /// Name of the secret holding the user's password (`X-ClickHouse-Key`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Database that unqualified table names in the model resolve in.
    #[serde(default)]
    pub database: Option<String>,
    /// Cancel the model SQL after this many seconds (`max_execution_time`, then `KILL QUERY`).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// ClickHouse settings for the model's query (`max_memory_usage: "10000000000"`), sent as
    /// URL parameters.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// How the server compresses the model's rows: `gzip` (the default:
    /// `enable_http_compression=1` with `Accept-Encoding: gzip`) or `none`.
    #[serde(default)]
    pub compression: ChCompression,
    /// A PEM file of root certificates to verify an `https` server with (a private CA, a
    /// self-signed server), besides the built-in web roots; relative to the project folder.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Runs on AWS write the model's results to the stack's bucket from the server
    /// (`INSERT INTO FUNCTION s3`, several files at once) instead of streaming them over
    /// one connection; see `README.md`.
    #[serde(default)]
    pub export: Option<ChExport>,
}

/// How the server writes a model's results to S3.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChExport {
    /// The server's named collection holding the S3 credentials (or `role_arn`) it writes
    /// with: the credentials stay in the server's configuration, never in a query.
    pub named_collection: String,
    /// Files the results are split into, written and read in parallel (default 16).
    #[serde(default = "default_slices")]
    pub slices: u32,
}

fn default_slices() -> u32 {
    16
}

/// How the model's rows travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChCompression {
    /// gzip, decoded as it arrives.
    #[default]
    Gzip,
    /// Uncompressed.
    None,
}

impl ClickHouseConnection {
    /// The base URL queries go to.
    fn base_url(&self) -> Option<&str> {
        self.endpoint.as_deref().or(self.url.as_deref())
    }
}

/// A setting name ClickHouse could have: letters, digits and underscores.
fn valid_setting(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Settings the connector sets itself.
const OWN_SETTINGS: &[&str] = &[
    "query_id",
    "database",
    "max_execution_time",
    "query",
    "enable_http_compression",
];

impl Connector for ClickHouseConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.url.is_none() && self.endpoint.is_none() {
            problems.push(
                Problem::new("needs `url`").hint("write `url: \"https://ch.example.com:8443\"`"),
            );
        }
        problems.extend(check_http_url("url", self.url.as_deref()));
        problems.extend(check_http_url("endpoint", self.endpoint.as_deref()));
        if self.password_env.is_some() && self.user.is_none() {
            problems.push(
                Problem::new("sets `password_env` without `user`")
                    .hint("add `user:` (the password is that user's)"),
            );
        }
        for name in self.settings.keys() {
            if !valid_setting(name) || OWN_SETTINGS.contains(&name.as_str()) {
                problems.push(
                    Problem::new(format!("`settings` cannot set `{name}`")).hint(
                        "settings are ClickHouse setting names; use `timeout_seconds`, \
                         `database` and `compression` for those",
                    ),
                );
            }
        }
        if let Some(export) = &self.export {
            if !valid_setting(&export.named_collection) {
                problems.push(
                    Problem::new(format!(
                        "`export.named_collection` `{}` is not a ClickHouse name",
                        export.named_collection
                    ))
                    .hint("letters, digits and underscores: the collection's name on the server"),
                );
            }
            if !(1..=1024).contains(&export.slices) {
                problems.push(
                    Problem::new(format!("`export.slices` is {}", export.slices))
                        .hint("split the results into 1 to 1024 files"),
                );
            }
        }
        let plain = self.base_url().is_some_and(|u| u.starts_with("http://"));
        if self.ca_file.is_some() && plain {
            problems.push(
                Problem::new("sets `ca_file` for a plain `http://` URL")
                    .hint("use the `https://` interface (port 8443), or remove `ca_file`"),
            );
        }
        problems
    }

    fn docs(&self) -> &'static str {
        include_str!("README.md")
    }

    fn source(&self) -> Option<&dyn SourceConnector> {
        Some(self)
    }

    fn destination(&self) -> Option<&dyn DestinationConnector> {
        None
    }

    fn deploy_check(&self) -> DeployCheck {
        if self.ca_file.is_some() {
            return DeployCheck::Refuse(
                "`ca_file` is a file on this machine; the Lambda functions cannot read it".into(),
            );
        }
        DeployCheck::Ok
    }
}

#[async_trait]
impl SourceConnector for ClickHouseConnection {
    #[cfg(feature = "clickhouse")]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let password = match &self.password_env {
            Some(name) => Some(
                ctx.secret(name)
                    .await
                    .map_err(|m| ctx.source_config_error(m))?,
            ),
            None => None,
        };
        let base = self
            .base_url()
            .ok_or_else(|| ctx.source_config_error("needs `url`"))?;
        Ok(Arc::new(ClickHouseSource::new(ctx, self, base, password)?))
    }

    #[cfg(not(feature = "clickhouse"))]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        Err(ctx.source_config_error(
            "this retl was built without the `clickhouse` feature; build with \
             `--features clickhouse` (or the default features)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(yaml: &str) -> ClickHouseConnection {
        serde_saphyr::from_str(yaml).expect("a clickhouse connection")
    }

    #[test]
    fn checks_name_what_is_wrong() {
        assert!(
            connection("{ url: 'https://ch:8443', user: retl, password_env: P }")
                .check()
                .is_empty()
        );
        assert_eq!(connection("{}").check().len(), 1);
        assert_eq!(connection("{ url: 'ch:8443' }").check().len(), 1);
        assert_eq!(
            connection("{ url: 'http://ch', password_env: P }")
                .check()
                .len(),
            1
        );
        assert_eq!(
            connection("{ url: 'http://ch', settings: { query_id: x, 'a b': y } }")
                .check()
                .len(),
            2
        );
        assert!(
            connection("{ url: 'http://ch', export: { named_collection: s3_w } }")
                .check()
                .is_empty()
        );
        assert_eq!(
            connection("{ url: 'http://ch', export: { named_collection: 'a b', slices: 0 } }")
                .check()
                .len(),
            2
        );
    }
}
