//! BigQuery as a warehouse, over the REST API v2 (`jobs.query`, `jobs.getQueryResults`,
//! `jobs.cancel`). See `README.md` in this folder. The config, its checks and its docs are
//! always built; the driver code only with the `bigquery` feature.

#[cfg(feature = "bigquery")]
mod auth;
#[cfg(feature = "bigquery")]
mod cells;
#[cfg(feature = "bigquery")]
mod source;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::ports::{Source, SourceError};

/// A Google Cloud project's BigQuery as a warehouse.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConnection {
    /// The project the query jobs run (and are billed) in.
    pub project: String,
    /// Where the jobs run (`EU`, `US`, `europe-west1`); BigQuery infers it from the tables when
    /// absent.
    #[serde(default)]
    pub location: Option<String>,
    /// Name of the secret holding a service account key (the JSON file Google gives); without
    /// it, and with an `endpoint`, no credentials are sent (an emulator).
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// Base URL instead of `https://bigquery.googleapis.com` (an emulator in tests).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Fail a model that would bill more than this many bytes (`maximumBytesBilled`).
    #[serde(default)]
    pub maximum_bytes_billed: Option<u64>,
    /// Cancel the model SQL after this many seconds (`jobs.cancel`).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl BigQueryConnection {
    /// The REST root the connector talks to.
    pub fn base_url(&self) -> String {
        self.endpoint
            .as_deref()
            .unwrap_or("https://bigquery.googleapis.com")
            .trim_end_matches('/')
            .to_string()
    }
}

impl Connector for BigQueryConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let project_ok = !self.project.is_empty()
            && self
                .project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'));
        if !project_ok {
            problems.push(
                Problem::new(format!(
                    "`{}` is not a Google Cloud project id",
                    self.project
                ))
                .hint("write the project id, e.g. my-proj"),
            );
        }
        if self.credentials_env.is_none() && self.endpoint.is_none() {
            problems.push(
                Problem::new("needs `credentials_env`")
                    .hint("add `credentials_env: GOOGLE_SA_JSON` and export GOOGLE_SA_JSON with the service account key JSON"),
            );
        }
        problems.extend(check_http_url("endpoint", self.endpoint.as_deref()));
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
}

#[async_trait]
impl SourceConnector for BigQueryConnection {
    #[cfg(feature = "bigquery")]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let tokens = match &self.credentials_env {
            Some(name) => {
                let json = ctx
                    .secret(name)
                    .await
                    .map_err(|m| ctx.source_config_error(m))?;
                Some(auth::Tokens::from_key(&json).map_err(|m| {
                    ctx.source_config_error(format!("the secret `{name}` (credentials_env): {m}"))
                })?)
            }
            None if self.endpoint.is_some() => None,
            None => {
                return Err(ctx.source_config_error(
                    "needs `credentials_env`: name the secret holding the service account key",
                ))
            }
        };
        Ok(Arc::new(source::BigQuerySource::new(self, ctx, tokens)))
    }

    #[cfg(not(feature = "bigquery"))]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        Err(ctx.source_config_error(
            "this retl was built without the `bigquery` feature; build with `--features \
             bigquery` (or the default features)",
        ))
    }
}
