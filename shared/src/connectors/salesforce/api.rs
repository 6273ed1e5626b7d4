//! Authenticated calls to the org's REST API: the bearer token on every request and one token
//! refresh and retry on 401. Reads (prepare, list, lookup, job polling) go through the
//! request framework, which paces them and retries transient and throttled answers.

use std::sync::Arc;

use super::auth::{Session, Token};
use super::errors::classify;
use crate::delivery::http::{excerpt, send, HttpResponse};
use crate::delivery::Requester;
use crate::ports::SendError;

/// The REST API of one org.
pub(crate) struct Api {
    /// Connection name, for errors.
    pub connection: String,
    http: reqwest::Client,
    session: Session,
    version: String,
    requests: Arc<Requester>,
}

impl Api {
    /// An API client using `session` for tokens and REST API `version` (`v62.0`), whose
    /// reads go through `requests`.
    pub(crate) fn new(
        connection: &str,
        http: reqwest::Client,
        session: Session,
        version: String,
        requests: Arc<Requester>,
    ) -> Self {
        Api {
            connection: connection.to_string(),
            http,
            session,
            version,
            requests,
        }
    }

    /// [`Api::call_ok`] for a request beyond the first that one batch needs (a bulk job's
    /// upload, close and polls): it pays its own token of the connection's rate.
    pub(crate) async fn paced<F>(&self, build: F) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        self.requests.pace().await;
        self.call_ok(build).await
    }

    /// The HTTP client.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The API version path segment.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// `{instance_url}/services/data/{version}{path}`.
    pub(crate) fn data_url(&self, token: &Token, path: &str) -> String {
        format!(
            "{}/services/data/{}{}",
            token.instance_url, self.version, path
        )
    }

    /// A URL the API gave as a path (`nextRecordsUrl`, `contentUrl`), on the instance.
    pub(crate) fn instance_url(&self, token: &Token, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_string();
        }
        format!("{}/{}", token.instance_url, path.trim_start_matches('/'))
    }

    /// Sends the request `build` makes for a token. A 401 drops the token and sends once more
    /// with a new one; a second 401 is fatal. Other answers are returned as they are.
    pub(crate) async fn call<F>(&self, build: F) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        let token = self.session.token().await?;
        let resp = self.send_with(&build, &token).await?;
        if resp.status.as_u16() != 401 {
            return Ok(resp);
        }
        self.session.invalidate(&token).await;
        let token = self.session.token().await?;
        let resp = self.send_with(&build, &token).await?;
        if resp.status.as_u16() == 401 {
            return Err(SendError::Fatal {
                code: "INVALID_SESSION_ID".into(),
                message: format!(
                    "Salesforce refused a freshly issued access token: {}",
                    excerpt(&resp.body)
                ),
            });
        }
        Ok(resp)
    }

    async fn send_with<F>(&self, build: &F, token: &Token) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        send(build(token).bearer_auth(&token.access_token)).await
    }

    /// [`Api::call`], with a non-2xx answer classified as an error.
    pub(crate) async fn call_ok<F>(&self, build: F) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        let resp = self.call(build).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(classify(&resp))
        }
    }

    /// [`Api::call_ok`] through the request framework: paced, and retried on transient and
    /// throttled answers (honouring `Retry-After`).
    pub(crate) async fn read<F>(&self, build: F) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        self.requests.call(|| self.call_ok(&build)).await
    }
}
