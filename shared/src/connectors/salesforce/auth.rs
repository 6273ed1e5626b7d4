//! OAuth 2.0 access tokens: the JWT bearer flow (an RS256 assertion signed with the connected
//! app's private key) or the client credentials flow, both posted form-encoded to
//! `{login_url}/services/oauth2/token`.
//!
//! Salesforce answers with `access_token` and `instance_url` but no `expires_in` (the token
//! lives as long as the org's session timeout), so a token is reused for the configured
//! session lifetime and replaced shortly before it ends; a token refused with 401 is replaced
//! at once (see [`super::api::Api::call`]).
//!
//! The engine opens a destination several times per run (planning shards, applying), and a
//! Lambda container serves many runs: tokens are cached per process and credentials, so they
//! are not requested again for each (Salesforce also limits logins per user and hour).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::delivery::http::{excerpt, retry_after, send};
use crate::ports::SendError;

/// The assertion's `exp`: Salesforce wants it within 3 minutes of now.
const ASSERTION_LIFETIME_SECS: i64 = 180;
/// The longest a token is kept short of its lifetime's end.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How this connection proves who it is.
pub(crate) enum Credentials {
    /// JWT bearer flow.
    Jwt {
        /// Consumer key (`iss`).
        client_id: String,
        /// Salesforce username (`sub`).
        username: String,
        /// `aud`.
        audience: String,
        /// The app certificate's private key.
        key: EncodingKey,
    },
    /// Client credentials flow.
    ClientCredentials {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: String,
    },
}

/// An access token and the org's API host.
#[derive(Debug)]
pub(crate) struct Token {
    /// Bearer token.
    pub access_token: String,
    /// `https://MyDomain.my.salesforce.com`, without a trailing slash.
    pub instance_url: String,
    expires_at: Instant,
    generation: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    instance_url: String,
}

#[derive(Deserialize)]
struct Denied {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The cached token of one set of credentials. A tokio mutex, held across the token request:
/// concurrent batches that find the token stale wait for one refresh instead of each
/// requesting their own.
type Slot = Arc<Mutex<Option<Arc<Token>>>>;

/// Tokens by credentials (a digest of them, never the secret itself), for this process.
fn slots() -> &'static std::sync::Mutex<HashMap<[u8; 32], Slot>> {
    static SLOTS: OnceLock<std::sync::Mutex<HashMap<[u8; 32], Slot>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// Numbers tokens, so that a refused token is only dropped if it is still the cached one.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Tokens of one connection, shared by every request (and every connection with the same
/// credentials) of this process.
pub(crate) struct Session {
    http: reqwest::Client,
    token_url: String,
    credentials: Credentials,
    lifetime: Duration,
    current: Slot,
}

impl Credentials {
    /// What identifies these credentials at `token_url`, hashed.
    fn fingerprint(&self, token_url: &str, lifetime: Duration, secret: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        let (flow, id, user) = match self {
            Credentials::Jwt {
                client_id,
                username,
                audience,
                ..
            } => ("jwt", client_id.as_str(), format!("{username}\n{audience}")),
            Credentials::ClientCredentials { client_id, .. } => {
                ("client_credentials", client_id.as_str(), String::new())
            }
        };
        for part in [
            flow,
            token_url,
            id,
            &user,
            secret,
            &lifetime.as_millis().to_string(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

impl Session {
    /// A session requesting tokens from `login_url`; `secret` (the private key PEM or the
    /// consumer secret) only tells sessions of different credentials apart.
    pub(crate) fn new(
        http: reqwest::Client,
        login_url: &str,
        credentials: Credentials,
        secret: &str,
        lifetime: Duration,
    ) -> Self {
        let token_url = format!("{}/services/oauth2/token", login_url.trim_end_matches('/'));
        let key = credentials.fingerprint(&token_url, lifetime, secret);
        let current = Arc::clone(
            slots()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_default(),
        );
        Session {
            http,
            token_url,
            credentials,
            lifetime,
            current,
        }
    }

    /// A valid token: the cached one unless it is about to reach the session lifetime.
    pub(crate) async fn token(&self) -> Result<Arc<Token>, SendError> {
        let mut current = self.current.lock().await;
        let margin = MAX_REFRESH_MARGIN.min(self.lifetime / 10);
        if let Some(t) = current.as_ref() {
            if Instant::now() + margin < t.expires_at {
                return Ok(Arc::clone(t));
            }
        }
        let fresh = Arc::new(self.request().await?);
        *current = Some(Arc::clone(&fresh));
        Ok(fresh)
    }

    /// Forgets `used` after Salesforce refused it; a token another request already replaced
    /// is left alone, so a burst of 401s leads to a single new token.
    pub(crate) async fn invalidate(&self, used: &Token) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.generation == used.generation)
        {
            *current = None;
        }
    }

    async fn request(&self) -> Result<Token, SendError> {
        let form: Vec<(&str, String)> = match &self.credentials {
            Credentials::Jwt { .. } => vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
                ),
                ("assertion", self.assertion()?),
            ],
            Credentials::ClientCredentials {
                client_id,
                client_secret,
            } => vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.clone()),
            ],
        };
        let started = Instant::now();
        let resp = send(self.http.post(&self.token_url).form(&form)).await?;
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            let granted: Granted =
                serde_json::from_str(&resp.body).map_err(|e| SendError::Transient {
                    code: "invalid_token_response".into(),
                    message: format!("the token endpoint answered without a token: {e}"),
                    retry_after: None,
                })?;
            let instance_url = granted.instance_url.trim_end_matches('/').to_string();
            if !(instance_url.starts_with("https://") || instance_url.starts_with("http://")) {
                return Err(SendError::Fatal {
                    code: "invalid_token_response".into(),
                    message: "the token endpoint answered without an http(s) instance_url".into(),
                });
            }
            return Ok(Token {
                access_token: granted.access_token,
                instance_url,
                expires_at: started + self.lifetime,
                generation: GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
            });
        }
        let (code, message) = match serde_json::from_str::<Denied>(&resp.body) {
            Ok(d) => (
                d.error,
                d.error_description
                    .unwrap_or_else(|| "no description".into()),
            ),
            Err(_) => (status.to_string(), excerpt(&resp.body)),
        };
        let message = format!("the token request was refused ({code}): {message}");
        Err(match status {
            429 => SendError::RateLimited {
                message,
                retry_after: retry_after(&resp.headers),
            },
            408 | 500..=599 => SendError::Transient {
                code,
                message,
                retry_after: retry_after(&resp.headers),
            },
            // invalid_grant, invalid_client_id, unsupported_grant_type...: the credentials or
            // the connected app's settings are wrong; retrying cannot help.
            _ => SendError::Fatal { code, message },
        })
    }

    fn assertion(&self) -> Result<String, SendError> {
        let Credentials::Jwt {
            client_id,
            username,
            audience,
            key,
        } = &self.credentials
        else {
            return Err(SendError::Fatal {
                code: "no_private_key".into(),
                message: "the JWT bearer flow needs a private key".into(),
            });
        };
        let claims = Claims {
            iss: client_id,
            sub: username,
            aud: audience,
            exp: chrono::Utc::now().timestamp() + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key).map_err(|e| {
            SendError::Fatal {
                code: "jwt_signing_failed".into(),
                message: format!("cannot sign the JWT assertion: {e}"),
            }
        })
    }
}

/// The JWT `aud` for a login URL: Salesforce accepts its login hosts (not My Domain hosts),
/// so a My Domain URL maps to the production or sandbox login host.
pub(crate) fn audience_for(login_url: &str) -> String {
    let Ok(url) = url::Url::parse(login_url) else {
        return login_url.trim_end_matches('/').to_string();
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if host.ends_with(".sandbox.my.salesforce.com") {
        return "https://test.salesforce.com".into();
    }
    if host.ends_with(".my.salesforce.com") {
        return "https://login.salesforce.com".into();
    }
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Reads a PEM private key as secret stores often hold it: with literal `\n` for newlines.
pub(crate) fn parse_private_key(pem: &str) -> Result<EncodingKey, String> {
    let text = if pem.contains('\n') {
        pem.to_string()
    } else {
        pem.replace("\\n", "\n")
    };
    EncodingKey::from_rsa_pem(text.trim().as_bytes())
        .map_err(|e| format!("it is not an RSA private key in PEM form ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_the_login_host() {
        assert_eq!(
            audience_for("https://login.salesforce.com/"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience_for("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience_for("https://acme.my.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience_for("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience_for("http://127.0.0.1:8080/x"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_without_echoing_it() {
        let err = parse_private_key("not a key").err().unwrap_or_default();
        assert!(err.contains("not an RSA private key"), "{err}");
        assert!(!err.contains("not a key"), "{err}");
    }
}
