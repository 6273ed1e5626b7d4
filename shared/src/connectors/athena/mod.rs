//! Amazon Athena as a warehouse: StartQueryExecution, GetQueryExecution polling and
//! GetQueryResults pages, or the result file from S3. See `README.md` in this folder.

#[cfg(feature = "athena")]
mod cells;
#[cfg(feature = "athena")]
mod csv;
#[cfg(feature = "athena")]
mod result_file;
#[cfg(feature = "athena")]
mod source;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DestinationConnector, OpenContext, Problem, SourceConnector,
};
use crate::ports::{Source, SourceError};
#[cfg(feature = "athena")]
pub use source::AthenaSource;

fn primary() -> String {
    "primary".into()
}

/// Where a query's rows are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsFrom {
    /// `GetQueryResults` pages of 1,000 rows.
    #[default]
    Api,
    /// The CSV file Athena writes to the output location, read with S3 `GetObject` in one
    /// streamed request (needs `s3:GetObject` on the output location).
    S3,
}

/// An Amazon Athena workgroup and database (tables in the Glue Data Catalog over S3).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AthenaConnection {
    /// The workgroup queries run in (default `primary`).
    #[serde(default = "primary")]
    pub workgroup: String,
    /// The database of the model SQL's unqualified table names.
    pub database: String,
    /// The data catalog (default `AwsDataCatalog`, the Glue Data Catalog).
    #[serde(default)]
    pub catalog: Option<String>,
    /// Where Athena writes result files, `s3://bucket/prefix/` (default: the workgroup's
    /// setting).
    #[serde(default)]
    pub output_location: Option<String>,
    /// AWS region (default: the standard chain's, e.g. `AWS_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// Base URL of the Athena API (a VPC endpoint, or an emulator in tests). With an endpoint
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
    /// Stop the query (`StopQueryExecution`) after this many seconds.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Read rows from `GetQueryResults` pages (`api`, the default) or from the result file
    /// in S3 (`s3`).
    #[serde(default)]
    pub results_from: ResultsFrom,
    /// Base URL of S3 for the result file (a VPC endpoint, or an emulator in tests; default
    /// AWS's). Unsigned without `access_key_id_env`, as `endpoint`.
    #[serde(default)]
    pub s3_endpoint: Option<String>,
}

impl Connector for AthenaConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.database.trim().is_empty() {
            problems.push(
                Problem::new("`database` is empty")
                    .hint("name the Glue database, e.g. `analytics`"),
            );
        }
        if self.workgroup.trim().is_empty() {
            problems.push(Problem::new("`workgroup` is empty").hint("leave it out for `primary`"));
        }
        if let Some(o) = &self.output_location {
            if !o.starts_with("s3://") {
                problems.push(
                    Problem::new(format!("`output_location` `{o}` is not an S3 URL"))
                        .hint("write s3://bucket/prefix/"),
                );
            }
        }
        if self.access_key_id_env.is_some() != self.secret_access_key_env.is_some() {
            problems.push(
                Problem::new("sets only one of `access_key_id_env` and `secret_access_key_env`")
                    .hint("set both, or neither to use the standard AWS credential chain"),
            );
        }
        problems.extend(check_http_url("endpoint", self.endpoint.as_deref()));
        problems.extend(check_http_url("s3_endpoint", self.s3_endpoint.as_deref()));
        if self.s3_endpoint.is_some() && self.results_from != ResultsFrom::S3 {
            problems.push(
                Problem::new("sets `s3_endpoint` but reads results with GetQueryResults")
                    .hint("add `results_from: s3`, or remove `s3_endpoint`"),
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
}

#[async_trait]
impl SourceConnector for AthenaConnection {
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        open(self, ctx).await
    }
}

#[cfg(feature = "athena")]
async fn open(c: &AthenaConnection, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
    Ok(Arc::new(AthenaSource::open(c, ctx).await?))
}

#[cfg(not(feature = "athena"))]
async fn open(
    _c: &AthenaConnection,
    ctx: &OpenContext<'_>,
) -> Result<Arc<dyn Source>, SourceError> {
    Err(ctx.source_config_error(
        "this retl was built without the `athena` feature; build with `--features athena` \
         (or the default features)",
    ))
}
