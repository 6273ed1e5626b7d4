//! The HTTP side of the HubSpot connector: bearer authentication, a request pace shared by
//! every call of the connection, and retries for reads (schema, listing, lookups), which run
//! outside the delivery framework.

use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use serde_json::Value;

use super::errors::{read_error, request_error};
use crate::delivery::http::{send, HttpResponse};
use crate::delivery::rate_limiter;
use crate::ports::{DestinationError, SendError};

/// Attempts of one read before giving up.
const READ_ATTEMPTS: u32 = 8;

/// The calls a connection makes, with its token and pace.
///
/// Not `Debug`: it holds the access token.
pub(super) struct Api {
    /// Connection name, for errors.
    pub connection: String,
    /// Name of the secret holding the token, for error messages (never the token).
    pub token_env: String,
    base_url: String,
    token: String,
    http: reqwest::Client,
    /// Paces every request of the connection. The delivery framework paces batches, but a
    /// delete costs two requests (read, then archive) and listings run outside it, so the
    /// connector keeps the account's request budget itself.
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Api {
    /// A client for `base_url` with `token`, `timeout` per request and `rate` requests per
    /// second with `burst`.
    pub fn new(
        connection: &str,
        token_env: &str,
        base_url: &str,
        token: String,
        timeout: Duration,
        rate: Option<f64>,
        burst: u32,
    ) -> Result<Self, DestinationError> {
        let http = crate::delivery::http::client_builder()
            .timeout(timeout)
            .build()
            .map_err(|e| DestinationError::Invalid {
                connection: connection.to_string(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let limiter = rate_limiter(rate, burst);
        Ok(Api {
            connection: connection.to_string(),
            token_env: token_env.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            http,
            limiter,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn pace(&self) {
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
    }

    /// `POST path` with a JSON body; network failures and timeouts are transient.
    pub async fn post(&self, path: &str, body: &Value) -> Result<HttpResponse, SendError> {
        self.pace().await;
        let req = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        let resp = send(req).await?;
        tracing::debug!(path, status = resp.status.as_u16(), "hubspot request");
        Ok(resp)
    }

    /// `GET path?query`.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<HttpResponse, SendError> {
        self.pace().await;
        let req = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .query(query);
        let resp = send(req).await?;
        tracing::debug!(path, status = resp.status.as_u16(), "hubspot request");
        Ok(resp)
    }

    /// A read (`GET`, or `POST` when `body` is given) retried on throttling, 5xx and network
    /// failures; a success (2xx, including 207) or the error that will not heal.
    pub async fn read(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<HttpResponse, DestinationError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = match body {
                Some(b) => self.post(path, b).await,
                None => self.get(path, query).await,
            };
            let err = match res {
                Ok(resp) if resp.status.is_success() => return Ok(resp),
                Ok(resp) => match request_error(&resp) {
                    e @ (SendError::RateLimited { .. } | SendError::Transient { .. }) => e,
                    _ => return Err(read_error(self, &resp)),
                },
                Err(e) => e,
            };
            let wait = match &err {
                SendError::RateLimited { retry_after, .. } => {
                    retry_after.unwrap_or(super::errors::DEFAULT_RATE_LIMIT_WAIT)
                }
                SendError::Transient { retry_after, .. } => retry_after.unwrap_or_else(|| {
                    Duration::from_millis(500 * (1u64 << attempt.min(5)))
                        .min(Duration::from_secs(10))
                }),
                _ => Duration::ZERO,
            };
            if attempt >= READ_ATTEMPTS {
                return Err(DestinationError::Unavailable {
                    connection: self.connection.clone(),
                    message: format!("{err} (gave up after {attempt} attempts)"),
                });
            }
            tracing::debug!(
                path,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "hubspot read retried"
            );
            tokio::time::sleep(wait).await;
        }
    }
}
