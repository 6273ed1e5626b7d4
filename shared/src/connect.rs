//! Builds sources and destinations from connection configs, reading secrets through the port.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::ConnectionConfig;
use crate::config::SqsConnection;
use crate::destinations::{
    braze, hubspot, meta, salesforce, PostgresDestination, SqliteDestination, WebhookDestination,
};
use crate::ports::{Destination, DestinationError, Secrets, Source, SourceError};
use crate::sources::{PostgresSource, SqliteSource};

async fn postgres_url(
    url: &Option<String>,
    url_env: &Option<String>,
    secrets: &dyn Secrets,
) -> Result<String, String> {
    match (url, url_env) {
        (Some(u), _) => Ok(u.clone()),
        (None, Some(name)) => secrets.get(name).await.map_err(|e| e.to_string()),
        (None, None) => Err("needs `url` or `url_env`".into()),
    }
}

/// The source behind connection `name`. SQLite paths are relative to `root`.
pub async fn open_source(
    name: &str,
    conn: &ConnectionConfig,
    root: &Path,
    secrets: &dyn Secrets,
) -> Result<Arc<dyn Source>, SourceError> {
    let config_error = |message: String| SourceError::Config {
        connection: name.to_string(),
        message,
    };
    match conn {
        ConnectionConfig::Sqlite { path, .. } => {
            Ok(Arc::new(SqliteSource::new(name, resolve(root, path))))
        }
        ConnectionConfig::Postgres { url, url_env, .. } => {
            let url = postgres_url(url, url_env, secrets)
                .await
                .map_err(config_error)?;
            Ok(Arc::new(PostgresSource::new(name, url)))
        }
        other => Err(config_error(format!(
            "a {} connection cannot be a source",
            other.type_name()
        ))),
    }
}

fn resolve(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// The destination behind connection `name`. SQLite paths are relative to `root`.
pub async fn open_destination(
    name: &str,
    conn: &ConnectionConfig,
    root: &Path,
    secrets: &dyn Secrets,
) -> Result<Arc<dyn Destination>, DestinationError> {
    let invalid = |message: String| DestinationError::Invalid {
        connection: name.to_string(),
        message,
    };
    match conn {
        ConnectionConfig::Sqlite {
            path,
            create_tables,
            ..
        } => Ok(Arc::new(SqliteDestination::new(
            name,
            resolve(root, path),
            *create_tables,
        ))),
        ConnectionConfig::Postgres { url, url_env, .. } => {
            let url = postgres_url(url, url_env, secrets).await.map_err(invalid)?;
            Ok(Arc::new(PostgresDestination::new(name, url)))
        }
        ConnectionConfig::Webhook {
            url,
            secret_env,
            headers,
            ..
        } => {
            let secret = match secret_env {
                Some(s) => Some(secrets.get(s).await.map_err(|e| invalid(e.to_string()))?),
                None => None,
            };
            Ok(Arc::new(WebhookDestination::new(
                name,
                url.clone(),
                secret,
                headers.clone(),
            )?))
        }
        ConnectionConfig::Hubspot(c) => hubspot::open(name, c, secrets).await,
        ConnectionConfig::Salesforce(c) => salesforce::open(name, c, secrets).await,
        ConnectionConfig::Braze(c) => braze::open(name, c, secrets).await,
        ConnectionConfig::MetaAudience(c) => meta::open(name, c, secrets).await,
        ConnectionConfig::Sqs(c) => open_sqs(name, c).await,
    }
}

#[cfg(feature = "aws")]
async fn open_sqs(name: &str, c: &SqsConnection) -> Result<Arc<dyn Destination>, DestinationError> {
    crate::destinations::sqs::open(name, c).await
}

#[cfg(not(feature = "aws"))]
async fn open_sqs(
    name: &str,
    _c: &SqsConnection,
) -> Result<Arc<dyn Destination>, DestinationError> {
    Err(DestinationError::Invalid {
        connection: name.to_string(),
        message: "this retl was built without AWS support (the `aws` feature), which SQS needs"
            .into(),
    })
}
