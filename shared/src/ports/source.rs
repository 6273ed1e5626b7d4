use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::record::Values;

/// A stream of model rows.
pub type RowStream = Pin<Box<dyn Stream<Item = Result<Values, SourceError>> + Send>>;

/// The warehouse failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Could not connect or lost the connection; retrying may succeed.
    #[error("cannot reach the source `{connection}`: {message}")]
    Unavailable {
        /// Connection name.
        connection: String,
        /// The cause.
        message: String,
    },
    /// The SQL failed.
    #[error("the model SQL failed on `{connection}`: {message}")]
    Query {
        /// Connection name.
        connection: String,
        /// The database's message.
        message: String,
    },
    /// Configuration problem (missing secret, bad URL).
    #[error("source `{connection}` is misconfigured: {message}")]
    Config {
        /// Connection name.
        connection: String,
        /// What to fix.
        message: String,
    },
}

impl SourceError {
    /// Stable error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            SourceError::Unavailable { .. } => "Retl.SourceUnavailable",
            SourceError::Query { .. } => "Retl.SourceQueryFailed",
            SourceError::Config { .. } => "Retl.ConfigError",
        }
    }
}

/// A warehouse that runs model SQL.
#[async_trait]
pub trait Source: Send + Sync {
    /// The result columns of `sql`, without running it to completion.
    async fn columns(&self, sql: &str) -> Result<Vec<String>, SourceError>;
    /// The result rows of `sql`, streamed in bounded memory.
    async fn rows(&self, sql: &str) -> Result<RowStream, SourceError>;
}
