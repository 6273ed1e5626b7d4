//! The contract of [`Secrets`]: connection secrets by name, a missing one named with how to
//! set it on this host. Every backend runs every function here.

use std::sync::Arc;

use async_trait::async_trait;
use retl_shared::ports::{SecretError, Secrets};

/// A secrets backend under test: the port, and how a user sets a secret on that host.
#[async_trait]
pub trait SecretsBackend: Sync {
    /// The port.
    fn secrets(&self) -> Arc<dyn Secrets>;
    /// Sets secret `name` to `value` as a user would (an environment variable, a secret in
    /// Secrets Manager).
    async fn set(&self, name: &str, value: &str);
    /// What the hint for a missing `name` must say (the variable to export, the secret id).
    fn hint_for(&self, name: &str) -> String;
}

/// A set secret is read back exactly, whatever its characters.
pub async fn reads_set_secrets(b: &dyn SecretsBackend) {
    let values = [
        ("CONTRACT_PLAIN", "postgres://u:p@db.example:5432/app"),
        ("CONTRACT_ODD", "ünï=cödé; \"quoted\" 'single' $HOME %s \\n"),
    ];
    for (name, value) in values {
        b.set(name, value).await;
    }
    let secrets = b.secrets();
    for (name, value) in values {
        assert_eq!(secrets.get(name).await.unwrap(), value, "{name}");
    }
}

/// A missing secret is `Missing`, named, with a hint saying how to set it; a secret set
/// after the miss is found (misses are not remembered).
pub async fn reports_missing_and_finds_it_once_set(b: &dyn SecretsBackend) {
    let secrets = b.secrets();
    let name = "CONTRACT_LATE";
    match secrets.get(name).await {
        Err(e @ SecretError::Missing { .. }) => {
            assert_eq!(e.error_name(), "Retl.SecretMissing");
            let SecretError::Missing { name: got, hint } = e else {
                unreachable!()
            };
            assert_eq!(got, name);
            assert!(hint.contains(&b.hint_for(name)), "{hint}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    b.set(name, "late").await;
    assert_eq!(secrets.get(name).await.unwrap(), "late");
}

/// Every function above, in order.
pub async fn all(b: &dyn SecretsBackend) {
    reads_set_secrets(b).await;
    reports_missing_and_finds_it_once_set(b).await;
}
