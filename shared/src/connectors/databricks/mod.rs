//! Databricks SQL as a warehouse, through the Statement Execution API 2.0. See `README.md`
//! in this folder.

#[cfg(feature = "databricks")]
mod api;
#[cfg(feature = "databricks")]
mod arrow;
#[cfg(feature = "databricks")]
mod source;
#[cfg(feature = "databricks")]
mod text;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::ports::{Source, SourceError};
#[cfg(feature = "databricks")]
pub use source::DatabricksSource;

/// How results are fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disposition {
    /// Arrow IPC chunks downloaded from pre-signed cloud-storage links (any result size;
    /// the default).
    #[default]
    ExternalLinks,
    /// JSON arrays of strings inside the API's answers (results up to 25 MiB).
    Inline,
}

/// A Databricks SQL warehouse, read through the Statement Execution API 2.0.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabricksConnection {
    /// Workspace host name, e.g. `dbc-a1b2345c-d6e7.cloud.databricks.com`.
    pub host: String,
    /// The SQL warehouse id (from its connection details).
    pub warehouse_id: String,
    /// Secret holding a personal access token (or use `client_id` + `client_secret_env`).
    #[serde(default)]
    pub token_env: Option<String>,
    /// OAuth machine-to-machine: the service principal's application id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Secret holding the service principal's OAuth secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Default catalog of the model SQL.
    #[serde(default)]
    pub catalog: Option<String>,
    /// Default schema of the model SQL.
    #[serde(default)]
    pub schema: Option<String>,
    /// Base URL replacing `https://<host>` (a proxy, or an emulator in tests). With an
    /// endpoint and no credentials, requests carry no `Authorization`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `EXTERNAL_LINKS` (Arrow chunks, the default) or `INLINE` (JSON arrays, up to 25 MiB).
    #[serde(default)]
    pub disposition: Disposition,
    /// Cancel the model SQL after this many seconds.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl Connector for DatabricksConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.host.trim().is_empty() || self.host.contains('/') {
            problems.push(
                Problem::new(format!(
                    "`host` `{}` is not a workspace host name",
                    self.host
                ))
                .hint("write the host only, e.g. dbc-a1b2345c-d6e7.cloud.databricks.com"),
            );
        }
        if self.warehouse_id.trim().is_empty() {
            problems.push(Problem::new("`warehouse_id` is empty").hint(
                "copy the id from the SQL warehouse's connection details (HTTP path /sql/1.0/warehouses/<id>)",
            ));
        }
        let oauth = self.client_id.is_some() || self.client_secret_env.is_some();
        if self.token_env.is_some() && oauth {
            problems.push(
                Problem::new("sets both `token_env` and OAuth (`client_id`, `client_secret_env`)")
                    .hint("keep one way to authenticate"),
            );
        }
        if oauth && (self.client_id.is_none() || self.client_secret_env.is_none()) {
            problems.push(
                Problem::new("OAuth needs both `client_id` and `client_secret_env`")
                    .hint("add the service principal's application id and the secret holding its OAuth secret"),
            );
        }
        if self.token_env.is_none() && !oauth && self.endpoint.is_none() {
            problems.push(
                Problem::new("needs credentials: `token_env` or `client_id` + `client_secret_env`")
                    .hint(
                        "add `token_env: DBX_TOKEN` and export DBX_TOKEN=<personal access token>",
                    ),
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
impl SourceConnector for DatabricksConnection {
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        open(self, ctx).await
    }
}

#[cfg(feature = "databricks")]
async fn open(
    c: &DatabricksConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Source>, SourceError> {
    Ok(Arc::new(DatabricksSource::open(c, ctx).await?))
}

#[cfg(not(feature = "databricks"))]
async fn open(
    _c: &DatabricksConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Source>, SourceError> {
    Err(ctx.source_config_error(
        "this retl was built without the `databricks` feature; build with `--features databricks` \
         (or the default features)",
    ))
}
