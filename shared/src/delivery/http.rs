//! What HTTP-based connectors share: sending a request and classifying failures the way the
//! framework understands (429 -> rate limited, 5xx/408/timeouts -> transient, 401/403/404 ->
//! fatal, other 4xx -> batch rejected, to be split).

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::ports::SendError;

/// An HTTP client builder that identifies retl (`User-Agent: retl/<version>`).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().user_agent(concat!("retl/", env!("CARGO_PKG_VERSION")))
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

/// Sends a request; network failures and timeouts are transient.
pub async fn send(request: reqwest::RequestBuilder) -> Result<HttpResponse, SendError> {
    let resp = request.send().await.map_err(|e| SendError::Transient {
        code: if e.is_timeout() { "timeout" } else { "network" }.to_string(),
        message: e.to_string(),
        retry_after: None,
    })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.map_err(|e| SendError::Transient {
        code: "network".into(),
        message: format!("reading the response failed: {e}"),
        retry_after: None,
    })?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Longest `Retry-After` taken literally (a week); the delivery framework decides what to do
/// with long waits.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(604_800);

/// The server's requested wait: `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(
                secs.min(MAX_RETRY_AFTER.as_secs_f64()),
            ));
        }
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// The framework's reading of a non-success response. `message` should come from the body.
pub fn classify(resp: &HttpResponse, message: String) -> SendError {
    let code = resp.status.as_u16().to_string();
    match resp.status.as_u16() {
        429 => SendError::RateLimited {
            message,
            retry_after: retry_after(&resp.headers),
        },
        408 | 500..=599 => SendError::Transient {
            code,
            message,
            retry_after: retry_after(&resp.headers),
        },
        401 | 403 | 404 | 405 => SendError::Fatal { code, message },
        _ => SendError::BatchRejected { code, message },
    }
}

/// The first 300 characters of a body, for messages (never a full payload).
pub fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if body.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn classifies_statuses() {
        let r = |s: u16| HttpResponse {
            status: StatusCode::from_u16(s).unwrap(),
            headers: HeaderMap::new(),
            body: String::new(),
        };
        assert!(matches!(
            classify(&r(429), "x".into()),
            SendError::RateLimited { .. }
        ));
        assert!(matches!(
            classify(&r(503), "x".into()),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify(&r(401), "x".into()),
            SendError::Fatal { .. }
        ));
        assert!(matches!(
            classify(&r(400), "x".into()),
            SendError::BatchRejected { .. }
        ));
    }
}
