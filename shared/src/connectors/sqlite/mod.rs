//! SQLite: a database file as a local warehouse (the quickstart's), and tables as a
//! destination. See `README.md` in this folder.

mod destination;
mod source;
mod types;

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
pub use destination::SqliteDestination;
pub use source::SqliteSource;

/// An SQLite database file: a local warehouse, or a destination.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteConnection {
    /// Path to the database file, relative to the project folder.
    pub path: String,
    /// As a destination: create a missing table (mapped fields, primary key on the key).
    #[serde(default)]
    pub create_tables: bool,
    /// As a source: interrupt the model SQL after this many seconds.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Delivery tuning (batch size, retries).
    #[serde(default)]
    pub delivery: DeliverySettings,
}

impl Connector for SqliteConnection {
    fn check(&self) -> Vec<Problem> {
        if self.path.trim().is_empty() {
            return vec![Problem::new("`path` is empty").hint("give the database file path")];
        }
        Vec::new()
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
        DeployCheck::Refuse(
            "SQLite connections exist only on this machine; use a network warehouse or \
             database to deploy the sync to AWS"
                .into(),
        )
    }
}

#[async_trait]
impl SourceConnector for SqliteConnection {
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError> {
        let timeout = self.timeout_seconds.map(Duration::from_secs);
        Ok(Arc::new(SqliteSource::new(
            ctx.name,
            ctx.resolve(&self.path),
            timeout,
        )))
    }
}

#[async_trait]
impl DestinationConnector for SqliteConnection {
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
            // One writer at a time: SQLite serialises writes anyway.
            concurrency: 1,
            rate_per_second: None,
            burst: 1,
            max_attempts: 5,
            timeout: Duration::from_secs(120),
            op_max_records: &[],
            op_rates: &[],
        }
    }

    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError> {
        Ok(Arc::new(SqliteDestination::new(
            ctx.name,
            ctx.resolve(&self.path),
            self.create_tables,
        )))
    }
}
