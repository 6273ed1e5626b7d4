//! Opening a sync's connections through the registry, each with its request framework, once
//! per engine: planning's lookups and apply's writes then share one rate limit, one
//! `Retry-After` pause and one retry budget, and a connector authenticates once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Engine, EngineError};
use crate::config::{ConnectionConfig, SyncDef};
use crate::connectors::{DestinationConnector, OpenContext};
use crate::delivery::{Deliverer, DeliveryConfig, RequestPolicy, Requester};
use crate::modes::Capabilities;
use crate::ports::{Destination, Source};

/// A destination opened for this engine, with its request framework.
#[derive(Clone)]
pub struct OpenedDestination {
    /// The connector's runtime side.
    pub dest: Arc<dyn Destination>,
    /// Every request of the connection goes through it.
    pub requests: Arc<Requester>,
}

/// Destinations already opened, by connection name.
#[derive(Clone, Default)]
pub struct OpenedConnections {
    destinations: Arc<Mutex<HashMap<String, OpenedDestination>>>,
}

impl Engine {
    fn connection(&self, name: &str) -> Result<&ConnectionConfig, EngineError> {
        self.connections
            .get(name)
            .ok_or_else(|| EngineError::Invalid(format!("connection `{name}` is not defined")))
    }

    fn destination_connector(
        &self,
        sync: &SyncDef,
    ) -> Result<&dyn DestinationConnector, EngineError> {
        let conn = self.connection(&sync.destination_connection)?;
        conn.as_destination().ok_or_else(|| {
            EngineError::Invalid(format!(
                "connection `{}` ({}) cannot be a destination",
                sync.destination_connection,
                conn.type_name()
            ))
        })
    }

    /// The sync's source, with a request framework of its own.
    pub async fn source(&self, sync: &SyncDef) -> Result<Arc<dyn Source>, EngineError> {
        let name = &sync.source_connection;
        let conn = self.connection(name)?;
        let source = conn.as_source().ok_or_else(|| {
            EngineError::Invalid(format!(
                "connection `{name}` ({}) cannot run model SQL",
                conn.type_name()
            ))
        })?;
        let ctx = OpenContext {
            name,
            root: &self.root,
            secrets: self.secrets.as_ref(),
            requests: Arc::new(Requester::new(RequestPolicy::for_source())),
        };
        Ok(source.open_source(&ctx).await?)
    }

    /// The sync's destination, opened once per engine.
    pub async fn opened_destination(
        &self,
        sync: &SyncDef,
    ) -> Result<OpenedDestination, EngineError> {
        let name = &sync.destination_connection;
        if let Some(d) = self.opened.lock().get(name) {
            return Ok(d.clone());
        }
        let connector = self.destination_connector(sync)?;
        let mut policy = DeliveryConfig::resolve(
            &connector.delivery_defaults(),
            connector.delivery_settings(),
        )
        .policy;
        // Parallel apply invocations share the destination's rate limit.
        policy.rate_per_second = policy
            .rate_per_second
            .map(|r| r / self.rate_share.max(1) as f64);
        let requests = Arc::new(Requester::new(policy));
        let ctx = OpenContext {
            name,
            root: &self.root,
            secrets: self.secrets.as_ref(),
            requests: Arc::clone(&requests),
        };
        let opened = OpenedDestination {
            dest: connector.open_destination(&ctx).await?,
            requests,
        };
        self.opened.lock().insert(name.clone(), opened.clone());
        Ok(opened)
    }

    /// The sync's destination.
    pub async fn destination(&self, sync: &SyncDef) -> Result<Arc<dyn Destination>, EngineError> {
        Ok(self.opened_destination(sync).await?.dest)
    }

    /// What the sync's destination can do.
    pub fn capabilities(&self, sync: &SyncDef) -> Result<Capabilities, EngineError> {
        Ok(self.destination_connector(sync)?.capabilities())
    }

    /// A deliverer for a run planning `planned` writes to the sync's destination, sharing the
    /// connection's request framework (a bulk run's longer timeouts and fewer attempts apply
    /// to its writes only).
    pub async fn deliverer(
        &self,
        sync: &SyncDef,
        planned: u64,
    ) -> Result<Arc<Deliverer>, EngineError> {
        let opened = self.opened_destination(sync).await?;
        let connector = self.destination_connector(sync)?;
        let defaults = connector.delivery_defaults_for(planned);
        let cfg = DeliveryConfig::resolve(&defaults, connector.delivery_settings());
        let mut policy = cfg.policy;
        policy.rate_per_second = opened.requests.policy().rate_per_second;
        Ok(Deliverer::new(
            opened.dest,
            Arc::new(sync.clone()),
            cfg.limits,
            defaults.op_max_records.to_vec(),
            Arc::new(opened.requests.derive(policy)),
        ))
    }
}

impl OpenedConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OpenedDestination>> {
        self.destinations.lock().unwrap_or_else(|p| p.into_inner())
    }
}
