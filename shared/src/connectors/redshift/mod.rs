//! Amazon Redshift as a warehouse, through the Redshift Data API (no VPC connection needed,
//! which suits Lambda). See `README.md` in this folder.

#[cfg(feature = "redshift")]
mod fields;
#[cfg(feature = "redshift")]
mod source;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::ports::{Source, SourceError};
#[cfg(feature = "redshift")]
pub use source::RedshiftSource;

/// An Amazon Redshift warehouse (Serverless workgroup or provisioned cluster), read through
/// the Redshift Data API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedshiftConnection {
    /// Redshift Serverless workgroup name (or give `cluster`).
    #[serde(default)]
    pub workgroup: Option<String>,
    /// Provisioned cluster identifier (or give `workgroup`); needs `db_user` or
    /// `secret_arn_env`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Database user of a provisioned cluster (temporary credentials from
    /// `redshift:GetClusterCredentials`).
    #[serde(default)]
    pub db_user: Option<String>,
    /// The database the model SQL runs in.
    pub database: String,
    /// Secret holding the ARN of a Secrets Manager secret with the database credentials
    /// (instead of `db_user` / the role's IAM identity).
    #[serde(default)]
    pub secret_arn_env: Option<String>,
    /// AWS region (default: the standard chain's, e.g. `AWS_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// Base URL of the Data API (a VPC endpoint, or an emulator in tests). With an endpoint
    /// and no `access_key_id_env`, requests are sent unsigned, as to an emulator.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Secret holding an access key id (default: the standard AWS credential chain, e.g. the
    /// Lambda function's role).
    #[serde(default)]
    pub access_key_id_env: Option<String>,
    /// Secret holding the secret access key of `access_key_id_env`.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// Cancel the model SQL (`CancelStatement`) after this many seconds.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl Connector for RedshiftConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match (&self.workgroup, &self.cluster) {
            (Some(_), Some(_)) => {
                problems.push(Problem::new("sets both `workgroup` and `cluster`").hint(
                    "keep `workgroup` for Redshift Serverless, `cluster` for a provisioned cluster",
                ))
            }
            (None, None) => problems
                .push(Problem::new("needs `workgroup` or `cluster`").hint(
                    "add `workgroup: <name>` (Serverless) or `cluster: <id>` with `db_user`",
                )),
            (None, Some(_)) if self.db_user.is_none() && self.secret_arn_env.is_none() => problems
                .push(
                    Problem::new("a `cluster` connection needs `db_user` or `secret_arn_env`")
                        .hint(
                            "add `db_user: <user>` or `secret_arn_env: <secret holding the ARN>`",
                        ),
                ),
            _ => {}
        }
        if self.database.trim().is_empty() {
            problems
                .push(Problem::new("`database` is empty").hint("name the database, e.g. `dev`"));
        }
        if self.access_key_id_env.is_some() != self.secret_access_key_env.is_some() {
            problems.push(
                Problem::new("sets only one of `access_key_id_env` and `secret_access_key_env`")
                    .hint("set both, or neither to use the standard AWS credential chain"),
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
impl SourceConnector for RedshiftConnection {
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        open(self, ctx).await
    }
}

#[cfg(feature = "redshift")]
async fn open(
    c: &RedshiftConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Source>, SourceError> {
    Ok(Arc::new(RedshiftSource::open(c, ctx).await?))
}

#[cfg(not(feature = "redshift"))]
async fn open(
    _c: &RedshiftConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Source>, SourceError> {
    Err(ctx.source_config_error(
        "this retl was built without the `redshift` feature; build with `--features redshift` \
         (or the default features)",
    ))
}
