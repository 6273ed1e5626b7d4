//! What every connector provides. A connector is a folder under `connectors/`: its config
//! struct (the `type:` it is selected by, with schema docs), its checks, its role as a source
//! and/or a destination (capabilities, delivery defaults, how it opens from config + secrets),
//! and its docs page (`README.md` in the folder). The registry (`connectors/mod.rs`) has one
//! line per connector; the traits below are the checklist the compiler enforces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::DeliverySettings;
use crate::delivery::Requester;
use crate::modes::Capabilities;
use crate::ports::{DeliveryDefaults, Destination, DestinationError, Secrets, Source, SourceError};

/// A problem with a connection's settings, found by [`Connector::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// What to do, if there is something specific.
    pub hint: Option<String>,
}

impl Problem {
    /// A problem without a hint.
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Whether a connection can be deployed to the AWS stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployCheck {
    /// Yes.
    Ok,
    /// Yes, but the operator should know this.
    Warn(String),
    /// No, for this reason.
    Refuse(String),
}

/// What opening a connection needs besides its config.
pub struct OpenContext<'a> {
    /// The connection's name, for errors.
    pub name: &'a str,
    /// Folder that relative paths (SQLite files) are resolved against.
    pub root: &'a Path,
    /// Where `*_env` secrets are read.
    pub secrets: &'a dyn Secrets,
    /// The connection's request framework: every request goes through it.
    pub requests: Arc<Requester>,
}

impl OpenContext<'_> {
    /// `path` resolved against the project folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// The secret named `secret` (an environment variable locally, a Secrets Manager secret
    /// on AWS), trimmed; an empty secret is an error.
    pub async fn secret(&self, secret: &str) -> Result<String, String> {
        let value = self.secrets.get(secret).await.map_err(|e| e.to_string())?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("the secret `{secret}` is empty"));
        }
        Ok(value.to_string())
    }

    /// A source configuration error of this connection.
    pub fn source_config_error(&self, message: impl Into<String>) -> SourceError {
        SourceError::Config {
            connection: self.name.to_string(),
            message: message.into(),
        }
    }

    /// A destination configuration error of this connection.
    pub fn destination_invalid(&self, message: impl Into<String>) -> DestinationError {
        DestinationError::Invalid {
            connection: self.name.to_string(),
            message: message.into(),
        }
    }
}

/// Every connector.
pub trait Connector: Send + Sync {
    /// Problems with the settings that their shape cannot express (URLs, credentials).
    fn check(&self) -> Vec<Problem>;
    /// The docs page: `include_str!("README.md")` of the connector's folder.
    fn docs(&self) -> &'static str;
    /// The connector as a source, if it can run model SQL.
    fn source(&self) -> Option<&dyn SourceConnector>;
    /// The connector as a destination, if it can be written to.
    fn destination(&self) -> Option<&dyn DestinationConnector>;
    /// Whether it can run on the AWS stack (a local file cannot).
    fn deploy_check(&self) -> DeployCheck {
        DeployCheck::Ok
    }
}

/// A connector that runs model SQL.
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// Opens the connection.
    async fn open_source(&self, ctx: &OpenContext<'_>) -> Result<Arc<dyn Source>, SourceError>;
}

/// A connector that can be a sync's destination.
#[async_trait]
pub trait DestinationConnector: Send + Sync {
    /// What it can do; the modes it supports follow from it ([`crate::modes::supported_modes`]).
    fn capabilities(&self) -> Capabilities;
    /// The user's delivery tuning (`delivery:`).
    fn delivery_settings(&self) -> &DeliverySettings;
    /// The delivery behaviour the connector documents for its API (batch limits, rate,
    /// concurrency, attempts, timeout).
    fn delivery_defaults(&self) -> DeliveryDefaults;
    /// Delivery defaults for a run planning `planned` writes: a connector with a bulk API
    /// (Salesforce Bulk API 2.0) may choose much larger batches for large runs.
    fn delivery_defaults_for(&self, planned: u64) -> DeliveryDefaults {
        let _ = planned;
        self.delivery_defaults()
    }
    /// A problem with a sync's destination `object`, checked by `retl validate`.
    fn check_object(&self, object: &str) -> Option<Problem> {
        let _ = object;
        None
    }
    /// Opens the connection.
    async fn open_destination(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<Arc<dyn Destination>, DestinationError>;
}

/// The problem with an optional URL setting, if it is not an http(s) URL.
pub fn check_http_url(field: &str, url: Option<&str>) -> Option<Problem> {
    let u = url?;
    match url::Url::parse(u) {
        Ok(p) if p.scheme() == "http" || p.scheme() == "https" => None,
        _ => Some(
            Problem::new(format!("{field} `{u}` is not an http(s) URL"))
                .hint("write https://host/path"),
        ),
    }
}
