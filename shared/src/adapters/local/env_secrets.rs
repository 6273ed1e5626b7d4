use async_trait::async_trait;

use crate::ports::{SecretError, Secrets};

/// Secrets from environment variables: `url_env: APP_DB_URL` reads `$APP_DB_URL`.
#[derive(Debug, Default, Clone)]
pub struct EnvSecrets;

#[async_trait]
impl Secrets for EnvSecrets {
    async fn get(&self, name: &str) -> Result<String, SecretError> {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(SecretError::Missing {
                name: name.to_string(),
                hint: format!("export {name}=... before running retl"),
            }),
        }
    }
}
