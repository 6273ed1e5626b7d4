use async_trait::async_trait;

/// A secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No secret has that name.
    #[error("secret `{name}` is not set: {hint}")]
    Missing {
        /// The secret name.
        name: String,
        /// How to provide it on this host.
        hint: String,
    },
    /// The secret store failed.
    #[error("cannot read secret `{name}`: {message}")]
    Unavailable {
        /// The secret name.
        name: String,
        /// The cause.
        message: String,
    },
}

impl SecretError {
    /// Stable error name.
    pub fn error_name(&self) -> &'static str {
        match self {
            SecretError::Missing { .. } => "Retl.SecretMissing",
            SecretError::Unavailable { .. } => "Retl.SecretUnavailable",
        }
    }
}

/// Connection secrets by name. Local: environment variables. AWS: Secrets Manager (cached).
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The secret's value. Never log it.
    async fn get(&self, name: &str) -> Result<String, SecretError>;
}
