//! OAuth 2.0 access tokens for a service account: an RS256 JWT assertion signed with the
//! account's key, exchanged at its `token_uri` (the JWT bearer grant Google's client libraries
//! use). A token is cached and replaced five minutes before it expires.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::delivery::http::{classify, excerpt, send};
use crate::delivery::Requester;
use crate::ports::{SendError, SourceError};

const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A token is replaced this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Key {
    client_email: String,
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A service account's tokens.
pub(crate) struct Tokens {
    email: String,
    key: EncodingKey,
    token_uri: String,
    cached: Mutex<Option<(String, Instant)>>,
}

impl Tokens {
    /// The tokens of a service account key file's JSON.
    pub(crate) fn from_key(json: &str) -> Result<Self, String> {
        let key: Key = serde_json::from_str(json).map_err(|e| {
            format!("it is not a service account key JSON (client_email, private_key): {e}")
        })?;
        let pem = EncodingKey::from_rsa_pem(key.private_key.as_bytes())
            .map_err(|e| format!("its private_key is not an RSA key in PEM form ({e})"))?;
        Ok(Tokens {
            email: key.client_email,
            key: pem,
            token_uri: key
                .token_uri
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            cached: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        requests: &Requester,
        connection: &str,
    ) -> Result<String, SourceError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + REFRESH_MARGIN < *expires {
                return Ok(token.clone());
            }
        }
        let assertion = self.assertion().map_err(|message| SourceError::Config {
            connection: connection.to_string(),
            message,
        })?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ];
        let granted = requests
            .call(|| {
                let request = http.post(&self.token_uri).form(&form);
                async move {
                    let resp = send(request).await?;
                    if !resp.status.is_success() {
                        return Err(classify(&resp, excerpt(&resp.body)));
                    }
                    serde_json::from_str::<Granted>(&resp.body).map_err(|e| SendError::Fatal {
                        code: "bad_token_answer".into(),
                        message: format!(
                            "the token endpoint answered without an access_token: {e}"
                        ),
                    })
                }
            })
            .await
            .map_err(|e| match e {
                SendError::Transient { .. } | SendError::RateLimited { .. } => {
                    SourceError::Unavailable {
                        connection: connection.to_string(),
                        message: format!("getting an access token failed: {e}"),
                    }
                }
                SendError::Fatal { code, message } | SendError::BatchRejected { code, message } => {
                    SourceError::Auth {
                        connection: connection.to_string(),
                        code,
                        message: format!(
                            "the token endpoint refused the service account: {message}"
                        ),
                    }
                }
            })?;
        let lifetime = Duration::from_secs(granted.expires_in.unwrap_or(3600));
        *cached = Some((granted.access_token.clone(), Instant::now() + lifetime));
        Ok(granted.access_token)
    }

    fn assertion(&self) -> Result<String, String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: &self.email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the service account's JWT assertion: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_service_account_json() {
        assert!(Tokens::from_key("{}")
            .err()
            .unwrap()
            .contains("client_email"));
        let err = Tokens::from_key(r#"{"client_email": "a@b", "private_key": "nope"}"#)
            .err()
            .unwrap();
        assert!(err.contains("PEM"), "{err}");
    }
}
