//! Snowflake as a warehouse, over the connector protocol the official drivers use
//! (`login-request`, `query-request`, Arrow or JSON result chunks). See `README.md` in this
//! folder. The config, its checks and its docs are always built; the driver code only with the
//! `snowflake` feature.

#[cfg(feature = "snowflake")]
mod arrow;
#[cfg(feature = "snowflake")]
mod auth;
#[cfg(feature = "snowflake")]
mod client;
#[cfg(feature = "snowflake")]
mod json;
#[cfg(feature = "snowflake")]
mod source;
#[cfg(feature = "snowflake")]
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    check_http_url, Connector, DeployCheck, DestinationConnector, OpenContext, Problem,
    SourceConnector,
};
use crate::ports::{Source, SourceError};

/// A Snowflake account as a warehouse.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConnection {
    /// Account identifier as in the account URL: `xy12345.eu-west-1` or `myorg-myaccount`
    /// (the URL is `https://<account>.snowflakecomputing.com`).
    pub account: String,
    /// Login name of the (service) user.
    pub user: String,
    /// Role of the session (the user's default role when absent).
    #[serde(default)]
    pub role: Option<String>,
    /// Virtual warehouse that runs the model (the user's default when absent).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// Database of the session, for unqualified names in the model.
    #[serde(default)]
    pub database: Option<String>,
    /// Schema of the session, for unqualified names in the model.
    #[serde(default)]
    pub schema: Option<String>,
    /// Name of the secret holding the user's RSA private key in PEM form (PKCS#8 or PKCS#1,
    /// unencrypted): key-pair authentication, the default for service users.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// Name of the secret holding the user's password (legacy password authentication).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Base URL instead of `https://<account>.snowflakecomputing.com` (a private link host, or
    /// an emulator in tests; with neither key nor password set, an emulator gets an empty
    /// password).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Cancel the model SQL after this many seconds (`STATEMENT_TIMEOUT_IN_SECONDS`, and an
    /// abort request when the answer takes longer).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl SnowflakeConnection {
    /// The account URL the connector talks to.
    pub fn base_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!(
                "https://{}.snowflakecomputing.com",
                self.account.trim().to_ascii_lowercase()
            ),
        }
    }
}

impl Connector for SnowflakeConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let account_ok = !self.account.trim().is_empty()
            && self
                .account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !account_ok {
            problems.push(
                Problem::new(format!("`{}` is not a Snowflake account identifier", self.account))
                    .hint("write the part before .snowflakecomputing.com, e.g. xy12345.eu-west-1 or myorg-myaccount"),
            );
        }
        if self.user.trim().is_empty() {
            problems.push(
                Problem::new("`user` is empty").hint("write the login name of the service user"),
            );
        }
        match (&self.private_key_env, &self.password_env, &self.endpoint) {
            (Some(_), Some(_), _) => problems.push(
                Problem::new("sets both `private_key_env` and `password_env`")
                    .hint("keep one: `private_key_env` (key-pair authentication) is preferred"),
            ),
            (None, None, None) => problems.push(
                Problem::new("needs `private_key_env` or `password_env`")
                    .hint("add `private_key_env: SF_KEY` and export SF_KEY with the user's PEM private key"),
            ),
            _ => {}
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

    fn deploy_check(&self) -> DeployCheck {
        DeployCheck::Ok
    }
}

#[async_trait]
impl SourceConnector for SnowflakeConnection {
    #[cfg(feature = "snowflake")]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let credentials = auth::Credentials::from_config(self, ctx).await?;
        Ok(Arc::new(source::SnowflakeSource::new(
            self,
            ctx,
            credentials,
        )))
    }

    #[cfg(not(feature = "snowflake"))]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        Err(ctx.source_config_error(
            "this retl was built without the `snowflake` feature; build with `--features \
             snowflake` (or the default features)",
        ))
    }
}
