//! Reading Graph API errors (<https://developers.facebook.com/docs/graph-api/guides/error-handling>):
//! `{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}`.
//! Meta answers throttling with HTTP 400 and a throttling code rather than 429, so errors
//! are classified by `code`, never by status alone.

use std::time::Duration;

use serde_json::Value;

use crate::delivery::http::{classify as classify_http, excerpt, retry_after, HttpResponse};
use crate::ports::SendError;

/// Codes that mean "too many calls, wait": 4 application limit, 17 user limit, 32 page
/// limit, 613 calls from this ad account, 80000-80014 business-use-case limits (80003 being
/// the custom-audience one as clients map it), 368 temporarily blocked.
fn throttling(code: u64) -> bool {
    matches!(code, 4 | 17 | 32 | 368 | 613 | 80_000..=80_014)
}

/// Codes that no retry fixes: 190 invalid or expired token, 102 session, 104 no token,
/// 10 and 200-299 permissions (294 is the missing `ads_management`).
fn auth(code: u64) -> bool {
    matches!(code, 10 | 102 | 104 | 190 | 200..=299)
}

/// Subcodes of 100 that mean the audience cannot be written at all: 33 (missing object or
/// no access) and 1713230 (audience upload blocked).
fn audience_unusable(code: u64, subcode: Option<u64>) -> bool {
    code == 100 && matches!(subcode, Some(33 | 1_713_230))
}

fn number(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The longest `estimated_time_to_regain_access` (minutes) of `X-Business-Use-Case-Usage`.
fn regain_access(resp: &HttpResponse) -> Option<Duration> {
    let text = resp
        .headers
        .get("x-business-use-case-usage")?
        .to_str()
        .ok()?;
    let usage: Value = serde_json::from_str(text).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|e| number(e.get("estimated_time_to_regain_access")))
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.min(60) * 60))
}

/// The framework's reading of a non-2xx Graph answer.
pub(super) fn classify(resp: &HttpResponse) -> SendError {
    let parsed: Option<Value> = serde_json::from_str(&resp.body).ok();
    let Some(err) = parsed.as_ref().and_then(|v| v.get("error")) else {
        let message = format!("HTTP {}: {}", resp.status.as_u16(), excerpt(&resp.body));
        return classify_http(resp, message);
    };
    let code = number(err.get("code")).unwrap_or(0);
    let subcode = number(err.get("error_subcode"));
    let text = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let mut message = format!("HTTP {}: (#{code}) {}", resp.status.as_u16(), excerpt(text));
    if let Some(sub) = subcode {
        message.push_str(&format!(" [subcode {sub}]"));
    }
    if let Some(trace) = err.get("fbtrace_id").and_then(Value::as_str) {
        message.push_str(&format!(" fbtrace_id {}", excerpt(trace)));
    }
    let transient = err
        .get("is_transient")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if throttling(code) || resp.status.as_u16() == 429 {
        return SendError::RateLimited {
            message,
            // Meta does not document Retry-After; the usage header's estimate is the next best.
            retry_after: retry_after(&resp.headers).or_else(|| regain_access(resp)),
        };
    }
    if auth(code) || audience_unusable(code, subcode) {
        return SendError::Fatal {
            code: code.to_string(),
            message,
        };
    }
    // 1 unknown, 2 service, 2650 failed to update the audience: retrying an upload is
    // harmless, since adding or removing the same identifiers again changes nothing.
    if transient || matches!(code, 1 | 2 | 2650) || resp.status.is_server_error() {
        return SendError::Transient {
            code: code.to_string(),
            message,
            retry_after: retry_after(&resp.headers),
        };
    }
    match resp.status.as_u16() {
        401 | 403 | 404 => SendError::Fatal {
            code: code.to_string(),
            message,
        },
        _ => SendError::BatchRejected {
            code: code.to_string(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;
    use serde_json::json;

    fn resp(status: u16, body: Value) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.to_string(),
        }
    }

    fn err(code: u64, subcode: Option<u64>) -> Value {
        json!({"error": {"message": "m", "type": "OAuthException", "code": code,
                         "error_subcode": subcode, "fbtrace_id": "Abc"}})
    }

    #[test]
    fn throttling_comes_as_400_with_a_code() {
        for code in [17, 613, 80_003, 80_000, 4] {
            assert!(
                matches!(
                    classify(&resp(400, err(code, None))),
                    SendError::RateLimited { .. }
                ),
                "{code}"
            );
        }
        let mut r = resp(400, err(17, Some(2_446_079)));
        r.headers.insert(
            "x-business-use-case-usage",
            r#"{"1": [{"type": "custom_audience", "estimated_time_to_regain_access": 2}]}"#
                .parse()
                .unwrap(),
        );
        assert!(matches!(
            classify(&r),
            SendError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(120)
        ));
        r.headers.insert("retry-after", "3".parse().unwrap());
        assert!(matches!(
            classify(&r),
            SendError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn tokens_and_missing_audiences_are_fatal_other_400s_split() {
        match classify(&resp(400, err(190, Some(460)))) {
            SendError::Fatal { code, message } => {
                assert_eq!(code, "190");
                assert_eq!(message, "HTTP 400: (#190) m [subcode 460] fbtrace_id Abc");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&resp(400, err(100, Some(33)))),
            SendError::Fatal { .. }
        ));
        assert!(matches!(
            classify(&resp(400, err(100, None))),
            SendError::BatchRejected { code, .. } if code == "100"
        ));
        assert!(matches!(
            classify(&resp(500, err(1, None))),
            SendError::Transient { .. }
        ));
        assert!(matches!(
            classify(&resp(503, json!("down"))),
            SendError::Transient { .. }
        ));
    }
}
