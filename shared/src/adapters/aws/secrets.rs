//! Connection secrets from AWS Secrets Manager, cached for a while.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::error::describe;
use crate::ports::{SecretError, Secrets};

/// How long a secret read is reused by default. Rotating a secret reaches running functions
/// within this time; a shorter TTL costs more GetSecretValue calls.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(5 * 60);

/// [`Secrets`] read from Secrets Manager: the secret `name` is the secret id `{prefix}{name}`,
/// its SecretString the value.
///
/// A SecretString that is a JSON object is unwrapped when it holds a string under the key
/// `name`, or holds exactly one key with a string value (the console's key/value editor
/// writes such objects). Any other value is returned as stored.
///
/// Values are cached for the TTL; failures are not, so a secret created after a failed read
/// is seen on the next read. Values never appear in logs, errors or `Debug` output.
pub struct SecretsManagerSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    ttl: Duration,
    cache: RwLock<HashMap<String, Cached>>,
}

struct Cached {
    value: String,
    fetched: Instant,
}

impl std::fmt::Debug for SecretsManagerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManagerSecrets")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretsManagerSecrets {
    /// Secrets named `{prefix}{name}` (e.g. prefix `retl/`), cached for [`DEFAULT_SECRET_TTL`].
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        SecretsManagerSecrets {
            client,
            prefix: prefix.into(),
            ttl: DEFAULT_SECRET_TTL,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Sets how long a value is reused; zero reads Secrets Manager every time.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    async fn cached(&self, name: &str) -> Option<String> {
        let cache = self.cache.read().await;
        let hit = cache.get(name)?;
        (hit.fetched.elapsed() < self.ttl).then(|| hit.value.clone())
    }

    async fn fetch(&self, name: &str) -> Result<String, SecretError> {
        let id = format!("{}{name}", self.prefix);
        let missing = |why: &str| SecretError::Missing {
            name: name.to_string(),
            hint: format!(
                "{why}: create the secret `{id}` in AWS Secrets Manager with the value as \
                 its secret string"
            ),
        };
        let out = match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(missing("no such secret"));
            }
            Err(e) => {
                return Err(SecretError::Unavailable {
                    name: name.to_string(),
                    message: describe(&format!("reading secret {id}"), &e),
                })
            }
        };
        let raw = out
            .secret_string()
            .ok_or_else(|| SecretError::Unavailable {
                name: name.to_string(),
                message: format!("secret {id} holds binary data; retl reads only a secret string"),
            })?;
        let value = unwrap_value(name, raw);
        if value.is_empty() {
            return Err(missing("the secret is empty"));
        }
        Ok(value)
    }
}

/// The value inside a one-key JSON object, or under the key `name`; otherwise `raw` itself.
fn unwrap_value(name: &str, raw: &str) -> String {
    let Ok(object) = serde_json::from_str::<Map<String, Value>>(raw) else {
        return raw.to_string();
    };
    let inner = match object.get(name) {
        Some(v) => Some(v),
        None if object.len() == 1 => object.values().next(),
        None => None,
    };
    match inner {
        Some(Value::String(v)) => v.clone(),
        _ => raw.to_string(),
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn get(&self, name: &str) -> Result<String, SecretError> {
        if let Some(v) = self.cached(name).await {
            return Ok(v);
        }
        let value = self.fetch(name).await?;
        if !self.ttl.is_zero() {
            self.cache.write().await.insert(
                name.to_string(),
                Cached {
                    value: value.clone(),
                    fetched: Instant::now(),
                },
            );
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::unwrap_value;

    #[test]
    fn unwraps_one_key_objects_and_the_named_key_only() {
        assert_eq!(unwrap_value("DB", "postgres://x"), "postgres://x");
        assert_eq!(
            unwrap_value("DB", r#"{"url":"postgres://x"}"#),
            "postgres://x"
        );
        assert_eq!(unwrap_value("DB", r#"{"DB":"a","other":"b"}"#), "a");
        let two = r#"{"user":"u","password":"p"}"#;
        assert_eq!(unwrap_value("DB", two), two);
        assert_eq!(unwrap_value("DB", r#"{"port":5432}"#), r#"{"port":5432}"#);
        assert_eq!(unwrap_value("DB", "[1]"), "[1]");
    }
}
