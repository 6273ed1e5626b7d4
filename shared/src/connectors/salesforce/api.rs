//! Authenticated calls to the org's REST API: the bearer token on every request, one token
//! refresh and retry on 401, and, for reads outside the delivery framework (prepare, list,
//! lookup, job polling), retries of transient and throttled answers.

use std::time::Duration;

use rand::Rng;

use super::auth::{Session, Token};
use super::errors::classify;
use crate::delivery::http::{excerpt, send, HttpResponse};
use crate::ports::SendError;

/// Attempts of a read before its error is returned.
const READ_ATTEMPTS: u32 = 6;
/// First wait between read attempts; doubles up to [`READ_MAX_BACKOFF`].
const READ_BASE_BACKOFF: Duration = Duration::from_millis(250);
const READ_MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` a read waits for; a daily allocation's wait is not worth it.
const READ_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The REST API of one org.
pub(crate) struct Api {
    /// Connection name, for errors.
    pub connection: String,
    http: reqwest::Client,
    session: Session,
    version: String,
    request_timeout: Duration,
}

impl Api {
    /// An API client using `session` for tokens and REST API `version` (`v62.0`).
    pub(crate) fn new(
        connection: &str,
        http: reqwest::Client,
        session: Session,
        version: String,
        request_timeout: Duration,
    ) -> Self {
        Api {
            connection: connection.to_string(),
            http,
            session,
            version,
            request_timeout,
        }
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
        send(
            build(token)
                .bearer_auth(&token.access_token)
                .timeout(self.request_timeout),
        )
        .await
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

    /// [`Api::call_ok`] retried on transient and throttled answers with jittered backoff
    /// (honouring `Retry-After`): reads have no delivery framework to retry them.
    pub(crate) async fn read<F>(&self, build: F) -> Result<HttpResponse, SendError>
    where
        F: Fn(&Token) -> reqwest::RequestBuilder,
    {
        let mut attempt = 1;
        loop {
            let err = match self.call_ok(&build).await {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let asked = match &err {
                SendError::Transient { retry_after, .. }
                | SendError::RateLimited { retry_after, .. } => *retry_after,
                _ => return Err(err),
            };
            if attempt >= READ_ATTEMPTS {
                return Err(err);
            }
            tokio::time::sleep(read_backoff(attempt, asked)).await;
            attempt += 1;
        }
    }
}

fn read_backoff(attempt: u32, asked: Option<Duration>) -> Duration {
    let exp = READ_BASE_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(10))
        .min(READ_MAX_BACKOFF);
    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
    match asked {
        Some(a) => a.min(READ_MAX_RETRY_AFTER).max(jittered),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_backoff_grows_and_honours_retry_after() {
        assert!(read_backoff(1, None) <= READ_BASE_BACKOFF);
        assert!(read_backoff(10, None) <= READ_MAX_BACKOFF);
        assert!(read_backoff(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert_eq!(
            read_backoff(1, Some(Duration::from_secs(86_400))),
            READ_MAX_RETRY_AFTER
        );
    }
}
