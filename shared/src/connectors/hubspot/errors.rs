//! HubSpot's error answers and how retl reads them.
//!
//! Shapes (<https://developers.hubspot.com/docs/api-reference/latest/error-handling>): a
//! non-2xx answer carries `{status, message, correlationId, category, errors[{message,
//! code, in, context}], context}`; a 207 carries per-input `StandardError`s in `errors[]`
//! with `category`, `message`, `errors[]` and `context` (`ids`, `objectWriteTraceId`); a
//! 429 carries `errorType: RATE_LIMIT` and `policyName`. HubSpot says every field may be
//! absent, so everything is read leniently from untyped JSON.

use std::time::Duration;

use serde_json::Value;

use super::client::Api;
use crate::delivery::http::{excerpt, retry_after, HttpResponse};
use crate::ports::{DestinationError, SendError};

/// Wait after a 429 without `Retry-After` (HubSpot does not document sending one): a
/// rolling 10-second window frees about a fifth of its budget in two seconds.
pub(super) const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(2);

/// The body as JSON (`Null` when it is not JSON).
pub(super) fn json_body(resp: &HttpResponse) -> Value {
    serde_json::from_str(&resp.body).unwrap_or(Value::Null)
}

/// A string field of a JSON object.
pub(super) fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// `context[key]` as strings: HubSpot sends lists of strings, but one string is accepted.
pub(super) fn context_list(v: &Value, key: &str) -> Vec<String> {
    match v.get("context").and_then(|c| c.get(key)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// The `errors[]` details of an error (`ErrorDetail`s), or of a 207 body (`StandardError`s).
pub(super) fn details(v: &Value) -> &[Value] {
    v.get("errors")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The input position an `ErrorDetail.in` names: `inputs[3].properties.email` -> 3.
pub(super) fn input_index(location: &str) -> Option<usize> {
    let rest = location.trim().strip_prefix("inputs[")?;
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

/// The error's category (`VALIDATION_ERROR`, `CONFLICT`, ...) or `errorType` on a 429.
pub(super) fn category(v: &Value) -> Option<&str> {
    text(v, "category").or_else(|| text(v, "errorType"))
}

/// A one-line message: the category, HubSpot's message (shortened) and the correlation id
/// HubSpot support asks for.
pub(super) fn describe(status: u16, v: &Value, raw: &str) -> String {
    let message = text(v, "message").map_or_else(|| excerpt(raw), excerpt);
    let mut out = match category(v) {
        Some(c) => format!("HTTP {status} {c}: {message}"),
        None => format!("HTTP {status}: {message}"),
    };
    if let Some(id) = text(v, "correlationId") {
        out.push_str(&format!(" (correlationId {id})"));
    }
    out
}

/// The framework's reading of a non-2xx answer to a request as a whole.
///
/// 429 -> rate limited (except the daily quota, which no retry within the day can fix);
/// 408/5xx -> transient; 401/403 -> fatal (token or scopes); 404 and "unknown object type"
/// -> fatal (the sync names no object HubSpot has); other 4xx -> the batch's content was
/// refused, so the framework splits it to isolate the record at fault.
pub(super) fn request_error(resp: &HttpResponse) -> SendError {
    let status = resp.status.as_u16();
    let body = json_body(resp);
    let message = describe(status, &body, &resp.body);
    let code = category(&body)
        .map(str::to_string)
        .unwrap_or_else(|| status.to_string());
    match status {
        429 if text(&body, "policyName") == Some("DAILY") => SendError::Fatal {
            code: "RATE_LIMIT_DAILY".into(),
            message: format!(
                "{message}; the account's daily API limit resets at midnight in its time zone"
            ),
        },
        429 => SendError::RateLimited {
            message,
            retry_after: retry_after(&resp.headers).or(Some(DEFAULT_RATE_LIMIT_WAIT)),
        },
        408 | 500..=599 => SendError::Transient {
            code,
            message,
            retry_after: retry_after(&resp.headers),
        },
        401 | 403 | 404 | 405 => SendError::Fatal { code, message },
        _ if is_unknown_object(&body) => SendError::Fatal { code, message },
        _ if is_non_unique_id_property(&body) => SendError::Fatal { code, message },
        _ => SendError::BatchRejected { code, message },
    }
}

/// "Unable to infer object type from: X": the sync's object is not a HubSpot object type.
pub(super) fn is_unknown_object(body: &Value) -> bool {
    text(body, "message").is_some_and(|m| m.contains("Unable to infer object type"))
}

/// "Unable to perform update/upsert by non-unique ... property": the key is not unique,
/// which no record change fixes (prepare normally catches it first).
fn is_non_unique_id_property(body: &Value) -> bool {
    text(body, "message").is_some_and(|m| m.contains("by non-unique"))
}

/// A failed read (schema, listing, lookup) as a [`DestinationError`], with what to do.
pub(super) fn read_error(api: &Api, resp: &HttpResponse) -> DestinationError {
    let status = resp.status.as_u16();
    let body = json_body(resp);
    let message = describe(status, &body, &resp.body);
    let connection = api.connection.clone();
    match status {
        401 => DestinationError::Invalid {
            connection,
            message: format!(
                "HubSpot refused the access token from `{}` ({message}); check that it holds \
                 the private app's current token",
                api.token_env
            ),
        },
        403 => {
            let scopes: Vec<String> = details(&body)
                .iter()
                .flat_map(|d| context_list(d, "requiredGranularScopes"))
                .chain(
                    details(&body)
                        .iter()
                        .flat_map(|d| context_list(d, "missingScopes")),
                )
                .collect();
            let hint = if scopes.is_empty() {
                "grant the private app the object's read and write scopes and its schema read \
                 scope (e.g. crm.objects.contacts.read, crm.objects.contacts.write, \
                 crm.schemas.contacts.read)"
                    .to_string()
            } else {
                format!("grant the private app the scopes {}", scopes.join(", "))
            };
            DestinationError::Invalid {
                connection,
                message: format!("HubSpot refused the request ({message}); {hint}"),
            }
        }
        429 | 408 | 500..=599 => DestinationError::Unavailable {
            connection,
            message,
        },
        _ => DestinationError::Invalid {
            connection,
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

    #[test]
    fn reads_input_positions() {
        assert_eq!(input_index("inputs[3].properties.email"), Some(3));
        assert_eq!(input_index("inputs[12]"), Some(12));
        assert_eq!(input_index("properties.email"), None);
        assert_eq!(input_index("inputs[x]"), None);
    }

    #[test]
    fn classifies_answers() {
        let limited = resp(
            429,
            json!({"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", "message": "m"}),
        );
        assert!(matches!(
            request_error(&limited),
            SendError::RateLimited { retry_after: Some(d), .. } if d == DEFAULT_RATE_LIMIT_WAIT
        ));
        let daily = resp(
            429,
            json!({"errorType": "RATE_LIMIT", "policyName": "DAILY", "message": "m"}),
        );
        assert!(matches!(request_error(&daily), SendError::Fatal { .. }));
        let invalid = resp(
            400,
            json!({"category": "VALIDATION_ERROR", "message": "bad"}),
        );
        assert!(matches!(
            request_error(&invalid),
            SendError::BatchRejected { code, .. } if code == "VALIDATION_ERROR"
        ));
        let unknown = resp(
            400,
            json!({"category": "VALIDATION_ERROR", "message": "Unable to infer object type from: nope"}),
        );
        assert!(matches!(request_error(&unknown), SendError::Fatal { .. }));
        assert!(matches!(
            request_error(&resp(401, json!({"category": "INVALID_AUTHENTICATION"}))),
            SendError::Fatal { .. }
        ));
        assert!(matches!(
            request_error(&resp(502, Value::Null)),
            SendError::Transient { .. }
        ));
    }

    #[test]
    fn context_lists_accept_strings_and_lists() {
        let v = json!({"context": {"ids": ["1", 2], "objectWriteTraceId": "t"}});
        assert_eq!(context_list(&v, "ids"), vec!["1", "2"]);
        assert_eq!(context_list(&v, "objectWriteTraceId"), vec!["t"]);
        assert!(context_list(&v, "missing").is_empty());
    }
}
