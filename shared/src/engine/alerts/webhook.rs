//! Posting an alert to a Slack-compatible incoming webhook: `{"text": ...}` sent through the
//! request framework (timeout, jittered retries of 5xx, 429 and network errors). The URL is a
//! secret (it carries the webhook's token): no message here ever includes it.

use std::time::Duration;

use serde_json::json;

use crate::delivery::http::{classify, client_builder, excerpt, HttpResponse};
use crate::delivery::{RequestPolicy, Requester};
use crate::ports::SendError;

/// How an alert post is paced and retried: a few attempts within half a minute, so a chat
/// service that is down cannot hold up the end of a run for long.
fn policy() -> RequestPolicy {
    RequestPolicy {
        rate_per_second: None,
        burst: 1,
        op_rates: Vec::new(),
        concurrency: 1,
        max_attempts: 4,
        retry_budget: 3,
        timeout: Duration::from_secs(10),
        base_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(4),
        max_retry_after: Duration::from_secs(10),
    }
}

/// Sends one attempt; network errors are reported without the URL.
async fn attempt(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), SendError> {
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| SendError::Transient {
            code: if e.is_timeout() { "timeout" } else { "network" }.to_string(),
            message: e.without_url().to_string(),
            retry_after: None,
        })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let answer = HttpResponse {
        status,
        headers,
        body: text,
    };
    Err(classify(&answer, excerpt(&answer.body)))
}

/// Posts `lines` as one message to the webhook at `url`.
pub async fn post(url: &str, lines: &[String]) -> Result<(), String> {
    let client = client_builder()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", e.without_url()))?;
    let body = json!({ "text": lines.join("\n") });
    let requester = Requester::new(policy());
    requester
        .call(|| attempt(&client, url, &body))
        .await
        .map_err(|e| match e {
            SendError::Transient { code, message, .. } => format!("{code}: {message}"),
            SendError::RateLimited { message, .. } => format!("429: {message}"),
            SendError::BatchRejected { code, message } | SendError::Fatal { code, message } => {
                format!("HTTP {code}: {message}")
            }
        })
}
