//! PostgreSQL: a warehouse (model SQL) and tables as a destination, over TLS with libpq's
//! `sslmode` semantics. See `README.md` in this folder.

mod destination;
mod source;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Connector, DeployCheck, DestinationConnector, OpenContext, Problem, SourceConnector};
use crate::config::DeliverySettings;
use crate::modes::Capabilities;
use crate::ports::{
    BatchLimits, DeliveryDefaults, Destination, DestinationError, Source, SourceError,
};
pub use destination::PostgresDestination;
pub use source::PostgresSource;

/// A PostgreSQL database: a warehouse or a destination.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnection {
    /// Connection URL (`postgres://user@host:5432/db`). Prefer `url_env` for secrets.
    #[serde(default)]
    pub url: Option<String>,
    /// Name of the secret holding the URL (an environment variable locally, a Secrets
    /// Manager secret on AWS).
    #[serde(default)]
    pub url_env: Option<String>,
    /// As a source: cancel the model SQL after this many seconds (`statement_timeout`).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// As a source: read the model over this many connections at once, each the rows whose
    /// key hashes to it, in one exported snapshot (default 1).
    #[serde(default)]
    pub parallel_reads: Option<u32>,
    /// Delivery tuning (batch size, concurrency, rate, retries).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl PostgresConnection {
    /// What is wrong with `url` / `url_env`.
    fn url_problems(&self) -> Vec<Problem> {
        match (&self.url, &self.url_env) {
            (Some(_), Some(_)) => vec![Problem::new("sets both `url` and `url_env`")
                .hint("keep one: `url_env` names the secret that holds the URL")],
            (None, None) => vec![Problem::new("needs `url` or `url_env`")
                .hint("add `url_env: MY_DB_URL` and export MY_DB_URL=postgres://...")],
            (Some(u), None)
                if !(u.starts_with("postgres://")
                    || u.starts_with("postgresql://")
                    || u.contains("host=")) =>
            {
                vec![Problem::new(format!("`{u}` is not a PostgreSQL URL"))
                    .hint("write postgres://user@host:5432/database")]
            }
            _ => Vec::new(),
        }
    }

    async fn url(&self, ctx: &OpenContext<'_>) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(name)) => ctx.secret(name).await,
            (None, None) => Err("needs `url` or `url_env`".into()),
        }
    }
}

impl Connector for PostgresConnection {
    fn check(&self) -> Vec<Problem> {
        let mut problems = self.url_problems();
        if let Some(n) = self.parallel_reads.filter(|n| !(1..=64).contains(n)) {
            problems.push(
                Problem::new(format!("`parallel_reads` is {n}"))
                    .hint("read over 1 to 64 connections (each is one of the server's backends)"),
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
        Some(self)
    }

    fn deploy_check(&self) -> DeployCheck {
        if self.url.is_some() {
            return DeployCheck::Warn(
                "the connection URL is stored in the config table in clear; prefer url_env \
                 (a Secrets Manager secret)"
                    .into(),
            );
        }
        DeployCheck::Ok
    }
}

#[async_trait]
impl SourceConnector for PostgresConnection {
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let url = self
            .url(ctx)
            .await
            .map_err(|m| ctx.source_config_error(m))?;
        Ok(Arc::new(PostgresSource::new(
            ctx.name,
            url,
            self.timeout_seconds,
            self.parallel_reads.unwrap_or(1),
        )))
    }
}

#[async_trait]
impl DestinationConnector for PostgresConnection {
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn delivery_settings(&self) -> &DeliverySettings {
        &self.delivery
    }

    fn delivery_defaults(&self) -> DeliveryDefaults {
        DeliveryDefaults {
            limits: BatchLimits {
                max_records: 1000,
                max_bytes: 16 << 20,
            },
            concurrency: 4,
            rate_per_second: None,
            burst: 1,
            max_attempts: 5,
            timeout: Duration::from_secs(120),
            op_max_records: &[],
            op_rates: &[],
        }
    }

    fn check_object(&self, object: &str) -> Option<Problem> {
        (!valid_table(object)).then(|| {
            Problem::new(format!("`{object}` is not a table name"))
                .hint("write `table` or `schema.table`")
        })
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        let url = self
            .url(ctx)
            .await
            .map_err(|m| ctx.destination_invalid(m))?;
        Ok(Arc::new(PostgresDestination::new(ctx.name, url)))
    }
}

/// `table` or `schema.table` of plain identifiers.
fn valid_table(object: &str) -> bool {
    let parts: Vec<&str> = object.split('.').collect();
    (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(valid_table("public.contacts"));
        assert!(valid_table("contacts"));
        assert!(!valid_table("a.b.c"));
        assert!(!valid_table("drop table;"));
    }
}
