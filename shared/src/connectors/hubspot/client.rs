//! The HTTP side of the HubSpot connector: bearer authentication on every call. Pacing,
//! retries and timeouts are the request framework's ([`Requester`]), shared with the
//! deliverer, so reads, listings and writes draw from one request budget.

use std::sync::Arc;

use serde_json::Value;

use super::errors::{read_error, request_error};
use crate::delivery::http::{send, HttpResponse};
use crate::delivery::Requester;
use crate::ports::{DestinationError, SendError};

/// The calls a connection makes, with its token.
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
    /// The connection's request framework.
    pub requests: Arc<Requester>,
}

impl Api {
    /// A client for `base_url` with `token`, whose requests go through `requests`.
    pub fn new(
        connection: &str,
        token_env: &str,
        base_url: &str,
        token: String,
        requests: Arc<Requester>,
    ) -> Result<Self, DestinationError> {
        let http = crate::delivery::http::client_builder()
            .build()
            .map_err(|e| DestinationError::Invalid {
                connection: connection.to_string(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Api {
            connection: connection.to_string(),
            token_env: token_env.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            token,
            http,
            requests,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// One `POST path` with a JSON body (inside a batch write, which the framework paces);
    /// network failures and timeouts are transient.
    pub async fn post(&self, path: &str, body: &Value) -> Result<HttpResponse, SendError> {
        let req = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body);
        let resp = send(req).await?;
        tracing::debug!(path, status = resp.status.as_u16(), "hubspot request");
        Ok(resp)
    }

    /// One `GET path?query`.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<HttpResponse, SendError> {
        let req = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .query(query);
        let resp = send(req).await?;
        tracing::debug!(path, status = resp.status.as_u16(), "hubspot request");
        Ok(resp)
    }

    /// A read (`GET`, or `POST` when `body` is given) through the request framework, which
    /// retries throttled, 5xx and network failures; a success (2xx, including 207) or the
    /// error that will not heal.
    pub async fn read(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<HttpResponse, DestinationError> {
        let answer = self
            .requests
            .call(|| async {
                let resp = match body {
                    Some(b) => self.post(path, b).await?,
                    None => self.get(path, query).await?,
                };
                if resp.status.is_success() {
                    return Ok(Ok(resp));
                }
                match request_error(&resp) {
                    e @ (SendError::RateLimited { .. } | SendError::Transient { .. }) => Err(e),
                    _ => Ok(Err(resp)),
                }
            })
            .await;
        match answer {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(resp)) => Err(read_error(self, &resp)),
            Err(e) => Err(DestinationError::Unavailable {
                connection: self.connection.clone(),
                message: e.to_string(),
            }),
        }
    }
}
