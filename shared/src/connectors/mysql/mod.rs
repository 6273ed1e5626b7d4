//! MySQL 8 and MariaDB as a warehouse: model SQL over the native protocol (`mysql_async`),
//! rows streamed from prepared statements in the binary protocol, TLS by `tls`. See
//! `README.md` in this folder.
//!
//! The config, its checks and its docs page are always compiled (so `retl validate` and the
//! schemas know the connector in every build); the driver is behind the `mysql` feature.

#[cfg(feature = "mysql")]
mod error;
#[cfg(feature = "mysql")]
mod source;
#[cfg(feature = "mysql")]
mod sql;
#[cfg(feature = "mysql")]
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Connector, DeployCheck, DestinationConnector, OpenContext, Problem, SourceConnector};
use crate::ports::{Source, SourceError};
#[cfg(feature = "mysql")]
pub use source::MySqlSource;

/// A MySQL 8 or MariaDB database as a warehouse.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlConnection {
    /// Connection URL (`mysql://user:password@host:3306/database`, the password
    /// percent-encoded). Stored in clear: prefer `url_env`.
    #[serde(default)]
    pub url: Option<String>,
    /// Name of the secret holding the URL (an environment variable locally, a Secrets
    /// Manager secret on AWS).
    #[serde(default)]
    pub url_env: Option<String>,
    /// Another server to reach with the URL's user and database: `host:port` or
    /// `mysql://host:port` (a tunnel, a proxy, a test server). Replaces the URL's host and port.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// TLS, with the MySQL client's `--ssl-mode` meanings: `disabled`, `preferred` (the
    /// default: encrypted when the server offers TLS), `required` (encrypted, certificate not
    /// checked), `verify_ca` (certificate chain checked), `verify_identity` (chain and host
    /// name checked).
    #[serde(default)]
    pub tls: MySqlTls,
    /// A PEM file of root certificates to verify the server with (the Amazon RDS bundle),
    /// besides the built-in web roots; relative to the project folder.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Cancel the model SQL after this many seconds (MariaDB `max_statement_time`, MySQL
    /// `MAX_EXECUTION_TIME`, then `KILL QUERY`).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// How a MySQL connection uses TLS (the MySQL client's `--ssl-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MySqlTls {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    #[default]
    Preferred,
    /// TLS or fail; the certificate is not checked.
    Required,
    /// TLS with the certificate chain checked against the roots (`ca_file` and web roots).
    VerifyCa,
    /// TLS with the chain and the server's host name checked.
    VerifyIdentity,
}

impl MySqlConnection {
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    async fn url(&self, ctx: &OpenContext<'_>) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(name)) => ctx.secret(name).await,
            (None, None) => Err("needs `url` or `url_env`".into()),
        }
    }
}

/// Whether `url` names a MySQL server (`mysql://` or `mariadb://`).
fn is_mysql_url(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// The problem with `endpoint`, if it is neither `host:port` nor `mysql://host:port`.
fn endpoint_problem(endpoint: &str) -> Option<Problem> {
    let rest = endpoint
        .strip_prefix("mysql://")
        .or_else(|| endpoint.strip_prefix("mariadb://"))
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    let ok = rest
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    (!ok).then(|| {
        Problem::new(format!("endpoint `{endpoint}` is not host:port"))
            .hint("write `endpoint: 127.0.0.1:3306` or `endpoint: mysql://db.internal:3306`")
    })
}

impl Connector for MySqlConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => vec![Problem::new("sets both `url` and `url_env`")
                .hint("keep one: `url_env` names the secret that holds the URL")],
            (None, None) => vec![Problem::new("needs `url` or `url_env`").hint(
                "add `url_env: MYSQL_URL` and export MYSQL_URL=mysql://user:pw@host:3306/db",
            )],
            (Some(u), None) if !is_mysql_url(u) => {
                vec![Problem::new("`url` is not a MySQL URL")
                    .hint("write mysql://user@host:3306/database")]
            }
            _ => Vec::new(),
        };
        problems.extend(self.endpoint.as_deref().and_then(endpoint_problem));
        if self.ca_file.is_some() && self.tls == MySqlTls::Disabled {
            problems.push(
                Problem::new("sets `ca_file` with `tls: disabled`")
                    .hint("use `tls: verify_ca` or `tls: verify_identity` to check the server"),
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
        if self.url.is_some() {
            return DeployCheck::Warn(
                "the connection URL is stored in the config table in clear; prefer url_env \
                 (a Secrets Manager secret)"
                    .into(),
            );
        }
        if self.ca_file.is_some() {
            return DeployCheck::Refuse(
                "`ca_file` is a file on this machine; the Lambda functions cannot read it".into(),
            );
        }
        DeployCheck::Ok
    }
}

#[async_trait]
impl SourceConnector for MySqlConnection {
    #[cfg(feature = "mysql")]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let url = self
            .url(ctx)
            .await
            .map_err(|m| ctx.source_config_error(m))?;
        let source = MySqlSource::new(ctx, self, &url)?;
        Ok(Arc::new(source))
    }

    #[cfg(not(feature = "mysql"))]
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        Err(ctx.source_config_error(
            "this retl was built without the `mysql` feature; build with `--features mysql` \
             (or the default features)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(yaml: &str) -> MySqlConnection {
        serde_saphyr::from_str(yaml).expect("a mysql connection")
    }

    #[test]
    fn checks_name_what_is_wrong() {
        assert!(connection("{ url_env: MYSQL_URL }").check().is_empty());
        assert_eq!(connection("{}").check().len(), 1);
        assert_eq!(connection("{ url: 'postgres://x' }").check().len(), 1);
        let c = connection("{ url: 'mysql://u@h/db', url_env: X, endpoint: 'nope' }");
        assert_eq!(c.check().len(), 2);
        assert!(
            connection("{ url_env: X, endpoint: 'mysql://127.0.0.1:3307' }")
                .check()
                .is_empty()
        );
        assert_eq!(
            connection("{ url_env: X, tls: disabled, ca_file: ca.pem }")
                .check()
                .len(),
            1
        );
    }

    #[test]
    fn tls_modes_parse_and_default_to_preferred() {
        assert_eq!(connection("{ url_env: X }").tls, MySqlTls::Preferred);
        assert_eq!(
            connection("{ url_env: X, tls: verify_identity }").tls,
            MySqlTls::VerifyIdentity
        );
        assert!(serde_saphyr::from_str::<MySqlConnection>("{ tls: maybe }").is_err());
    }
}
