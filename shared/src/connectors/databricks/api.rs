//! The workspace's REST API as the source uses it: every request through the connection's
//! requester, authenticated with a personal access token or an OAuth M2M token (fetched from
//! `/oidc/v1/token`, cached and refreshed a minute before it expires), answers classified
//! for the request framework, and Databricks' `{"error_code", "message"}` errors kept.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use crate::delivery::http::{client_builder, excerpt, retry_after, send, HttpResponse};
use crate::delivery::Requester;
use crate::ports::{SendError, SourceError};

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(super) enum Auth {
    /// No `Authorization` (an emulator endpoint without credentials).
    None,
    /// A personal access token.
    Token(String),
    /// OAuth machine-to-machine with a service principal.
    ServicePrincipal {
        client_id: String,
        client_secret: String,
    },
}

/// An OAuth token and when to stop using it.
#[derive(Debug, Clone)]
struct Cached {
    token: String,
    until: Instant,
}

/// The workspace API of one connection.
#[derive(Debug, Clone)]
pub(super) struct Api {
    connection: String,
    base: String,
    http: reqwest::Client,
    auth: Auth,
    oauth: Arc<Mutex<Option<Cached>>>,
    requests: Arc<Requester>,
}

/// Codes that mean the credentials or the grants were refused.
const AUTH_CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "invalid_client",
    "unauthorized_client",
    "401",
    "403",
];

impl Api {
    /// The API at `base` (`https://<host>` or the endpoint).
    pub(super) fn new(connection: &str, base: &str, auth: Auth, requests: Arc<Requester>) -> Self {
        Api {
            connection: connection.to_string(),
            base: base.trim_end_matches('/').to_string(),
            // Requests are bounded by the requester; a stuck connection still gives up.
            http: client_builder()
                .connect_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            auth,
            oauth: Arc::new(Mutex::new(None)),
            requests,
        }
    }

    /// The source error of a request that failed for good.
    pub(super) fn fail(&self, e: SendError) -> SourceError {
        let connection = self.connection.clone();
        match e {
            SendError::Fatal { code, message } | SendError::BatchRejected { code, message }
                if AUTH_CODES.contains(&code.as_str()) =>
            {
                SourceError::Auth {
                    connection,
                    code,
                    message,
                }
            }
            SendError::Fatal { code, message } | SendError::BatchRejected { code, message } => {
                SourceError::Query {
                    connection,
                    code,
                    message,
                }
            }
            other => SourceError::Unavailable {
                connection,
                message: other.to_string(),
            },
        }
    }

    /// `Authorization` for the next request, fetching an OAuth token when needed.
    async fn authorization(&self) -> Result<Option<String>, SendError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Token(t) => Ok(Some(format!("Bearer {t}"))),
            Auth::ServicePrincipal {
                client_id,
                client_secret,
            } => {
                let cached = self.oauth.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(c) = cached.filter(|c| c.until > Instant::now()) {
                    return Ok(Some(format!("Bearer {}", c.token)));
                }
                let fresh = self.oauth_token(client_id, client_secret).await?;
                let header = format!("Bearer {}", fresh.token);
                *self.oauth.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
                Ok(Some(header))
            }
        }
    }

    /// One client-credentials token from the workspace's OIDC endpoint.
    async fn oauth_token(&self, id: &str, secret: &str) -> Result<Cached, SendError> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let req = self
            .http
            .post(format!("{}/oidc/v1/token", self.base))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=all-apis");
        let resp = send(req).await?;
        if !resp.status.is_success() {
            let body: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
            let code = body["error"].as_str().unwrap_or("oauth").to_string();
            let message = body["error_description"]
                .as_str()
                .map_or_else(|| excerpt(&resp.body), str::to_string);
            return Err(classified(&resp, code, message));
        }
        let body: Value = serde_json::from_str(&resp.body).map_err(|e| SendError::Fatal {
            code: "oauth".into(),
            message: format!("the token answer is not JSON: {e}"),
        })?;
        let token = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let lifetime = body["expires_in"].as_u64().unwrap_or(3600);
        Ok(Cached {
            token,
            until: Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1)),
        })
    }

    /// One API request (`path` from the workspace root), retried by the requester; the
    /// answer's JSON.
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SourceError> {
        self.requests
            .call(|| async {
                let mut req = self
                    .http
                    .request(method.clone(), format!("{}{path}", self.base));
                if let Some(a) = self.authorization().await? {
                    req = req.header("authorization", a);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let resp = send(req).await?;
                if !resp.status.is_success() {
                    return Err(api_error(&resp));
                }
                serde_json::from_str(&resp.body).map_err(|e| SendError::Transient {
                    code: "bad_json".into(),
                    message: format!("the answer is not JSON: {e}"),
                    retry_after: None,
                })
            })
            .await
            .map_err(|e| self.fail(e))
    }

    /// The bytes behind an external link: fetched without the workspace's `Authorization`
    /// (it is a pre-signed cloud-storage URL), with the headers the link lists.
    pub(super) async fn download(
        &self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<bytes::Bytes, SourceError> {
        self.requests
            .call(|| async {
                let mut req = self.http.get(url);
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let resp = req.send().await.map_err(|e| SendError::Transient {
                    code: "network".into(),
                    message: format!("downloading a result chunk failed: {e}"),
                    retry_after: None,
                })?;
                let status = resp.status();
                if !status.is_success() {
                    let code = status.as_u16().to_string();
                    let message =
                        "downloading a result chunk from its external link failed".to_string();
                    return Err(if status.is_server_error() || status.as_u16() == 429 {
                        SendError::Transient {
                            code,
                            message,
                            retry_after: retry_after(resp.headers()),
                        }
                    } else {
                        SendError::Fatal { code, message }
                    });
                }
                resp.bytes().await.map_err(|e| SendError::Transient {
                    code: "network".into(),
                    message: format!("reading a result chunk failed: {e}"),
                    retry_after: None,
                })
            })
            .await
            .map_err(|e| self.fail(e))
    }
}

/// A Databricks error answer (`{"error_code", "message"}`) for the framework.
fn api_error(resp: &HttpResponse) -> SendError {
    let body: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
    let code = body["error_code"]
        .as_str()
        .map_or_else(|| resp.status.as_u16().to_string(), str::to_string);
    let message = body["message"]
        .as_str()
        .map_or_else(|| excerpt(&resp.body), str::to_string);
    classified(resp, code, message)
}

/// The framework's reading of a failed answer, with the vendor's code.
fn classified(resp: &HttpResponse, code: String, message: String) -> SendError {
    match resp.status.as_u16() {
        429 => SendError::RateLimited {
            message: format!("{message} ({code})"),
            retry_after: retry_after(&resp.headers),
        },
        408 | 500..=599 => SendError::Transient {
            code,
            message,
            retry_after: retry_after(&resp.headers),
        },
        _ => SendError::Fatal { code, message },
    }
}
