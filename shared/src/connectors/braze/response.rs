//! How Braze answers (<https://www.braze.com/docs/api/errors/>,
//! <https://www.braze.com/docs/api/api_limits/>): non-fatal per-object `errors[]` in a 2xx
//! `/users/track` answer, `{"message": ...}` with a 4xx/5xx for fatal errors, and the
//! `X-RateLimit-Reset` header (UTC epoch seconds) telling when a throttled budget refills.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::delivery::http::{classify as classify_http, excerpt, retry_after, HttpResponse};
use crate::ports::{RecordOutcome, SendError};

/// The code of a record Braze refused in a `/users/track` answer. Braze's per-object errors
/// carry only a text (`type`), so retl names the kind of failure and keeps Braze's text as
/// the message.
pub(super) const INVALID_ATTRIBUTES: &str = "invalid_attributes";

/// Longest wait taken from a rate-limit header (a wrong clock must not park a run for hours).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// An error `index` as a number, whether Braze sends it as a number or as text.
fn index_of(err: &Value) -> Option<usize> {
    match err.get("index")? {
        Value::Number(n) => n.as_u64().and_then(|i| usize::try_from(i).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Outcomes of an accepted `/users/track` request of `n` attributes objects: the objects named
/// in `errors[]` are rejected with Braze's text, every other one is delivered. A body that is
/// not JSON still means accepted (a 2xx is Braze's acceptance).
pub(super) fn track_outcomes(body: &str, n: usize) -> Vec<RecordOutcome> {
    let mut outcomes = vec![RecordOutcome::Delivered; n];
    let Ok(parsed) = serde_json::from_str::<Value>(body) else {
        return outcomes;
    };
    let Some(errors) = parsed.get("errors").and_then(Value::as_array) else {
        return outcomes;
    };
    let mut unplaced = 0usize;
    for err in errors {
        // Only attributes are sent, so an error without `input_array` is about them too.
        let about_attributes = err
            .get("input_array")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "attributes");
        match index_of(err).filter(|i| *i < n && about_attributes) {
            Some(i) => {
                let text = err
                    .get("type")
                    .or_else(|| err.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("Braze refused this attributes object");
                outcomes[i] = RecordOutcome::Rejected {
                    code: INVALID_ATTRIBUTES.into(),
                    message: excerpt(text),
                };
            }
            None => unplaced += 1,
        }
    }
    if unplaced > 0 {
        tracing::warn!(
            unplaced,
            "braze reported errors that name no attributes object of the request"
        );
    }
    outcomes
}

/// `deleted` of a `/users/delete` answer, if present.
pub(super) fn deleted_count(body: &str) -> Option<u64> {
    serde_json::from_str::<Value>(body)
        .ok()?
        .get("deleted")?
        .as_u64()
}

/// The wait until `X-RateLimit-Reset` (UTC epoch seconds), from `now_epoch` seconds.
fn reset_wait(headers: &HeaderMap, now_epoch: f64) -> Option<Duration> {
    let reset: f64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !reset.is_finite() {
        return None;
    }
    let wait = (reset - now_epoch).clamp(0.0, MAX_WAIT.as_secs_f64());
    Some(Duration::from_secs_f64(wait))
}

fn now_epoch() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// The framework's reading of a non-2xx Braze answer: 429 waits for `Retry-After` or, as
/// Braze documents, `X-RateLimit-Reset`; the rest as [`classify_http`] (5xx retried,
/// 401/403/404 fatal, other 4xx split).
pub(super) fn classify(resp: &HttpResponse) -> SendError {
    let text = serde_json::from_str::<Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(excerpt))
        .unwrap_or_else(|| excerpt(&resp.body));
    let message = format!("HTTP {}: {text}", resp.status.as_u16());
    if resp.status.as_u16() == 429 {
        return SendError::RateLimited {
            message,
            retry_after: retry_after(&resp.headers)
                .or_else(|| reset_wait(&resp.headers, now_epoch())),
        };
    }
    classify_http(resp, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use serde_json::json;

    #[test]
    fn errors_reject_the_objects_they_name() {
        let body = json!({"message": "success", "errors": [
            {"type": "'email' is invalid", "input_array": "attributes", "index": 1},
            {"type": "bad event", "input_array": "events", "index": 0},
            {"type": "out of range", "input_array": "attributes", "index": 9},
        ]})
        .to_string();
        let out = track_outcomes(&body, 3);
        assert_eq!(out[0], RecordOutcome::Delivered);
        assert_eq!(
            out[1],
            RecordOutcome::Rejected {
                code: INVALID_ATTRIBUTES.into(),
                message: "'email' is invalid".into()
            }
        );
        assert_eq!(out[2], RecordOutcome::Delivered);
        assert_eq!(
            track_outcomes("not json", 2),
            vec![RecordOutcome::Delivered; 2]
        );
    }

    #[test]
    fn rate_limits_wait_for_retry_after_or_the_reset_instant() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", "1000".parse().unwrap());
        assert_eq!(
            reset_wait(&headers, 997.5),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(reset_wait(&headers, 1001.0), Some(Duration::ZERO));
        let resp = HttpResponse {
            status: StatusCode::TOO_MANY_REQUESTS,
            headers: headers.clone(),
            body: r#"{"message":"Rate Limited"}"#.into(),
        };
        match classify(&resp) {
            SendError::RateLimited {
                message,
                retry_after,
            } => {
                assert_eq!(message, "HTTP 429: Rate Limited");
                assert_eq!(retry_after, Some(Duration::ZERO), "reset is in the past");
            }
            other => panic!("{other:?}"),
        }
        headers.insert("retry-after", "2".parse().unwrap());
        let resp = HttpResponse { headers, ..resp };
        assert!(matches!(
            classify(&resp),
            SendError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        let resp = HttpResponse {
            status: StatusCode::UNAUTHORIZED,
            headers: HeaderMap::new(),
            body: r#"{"message":"Invalid API Key"}"#.into(),
        };
        assert!(matches!(classify(&resp), SendError::Fatal { code, .. } if code == "401"));
    }
}
