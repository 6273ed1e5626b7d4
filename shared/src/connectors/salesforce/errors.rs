//! How Salesforce's answers become the framework's outcomes.
//!
//! Request level (<https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html>):
//! the body of a non-2xx answer is a JSON array of `{"message", "errorCode"}`. 403
//! `REQUEST_LIMIT_EXCEEDED` is Salesforce's throttled answer (it sends no 429); 5xx are
//! transient; 401 (after one token refresh), 403, 404 and the 400 codes that name a wrong
//! object, field or permission stop delivery; any other 400 refuses the batch's content and is
//! split to find the record.
//!
//! Record level: the `errors[]` of each SaveResult, `{"statusCode", "message", "fields"}`.

use serde::Deserialize;

use crate::delivery::http::{excerpt, retry_after, HttpResponse};
use crate::ports::{DestinationError, RecordOutcome, SendError, WriteOp};

/// Per-record codes worth another attempt: lock contention and a record rolled back only
/// because another record of its request failed.
const TRANSIENT_RECORD_CODES: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "REQUEST_RUNNING_TOO_LONG",
    "SERVER_UNAVAILABLE",
];

/// 400 codes that mean the sync's object, fields or permissions are wrong, not one record.
const CONFIG_CODES: &[&str] = &[
    "INVALID_TYPE",
    "INVALID_FIELD",
    "NOT_FOUND",
    "INVALID_SESSION_ID",
    "API_DISABLED_FOR_ORG",
    "API_CURRENTLY_DISABLED",
    "INSUFFICIENT_ACCESS",
    "FUNCTIONALITY_NOT_ENABLED",
    "INVALID_OPERATION_WITH_EXPIRED_PASSWORD",
];

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(rename = "errorCode", default)]
    error_code: String,
}

/// One entry of a SaveResult's `errors`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct RecordError {
    /// `StatusCode` value, e.g. `REQUIRED_FIELD_MISSING`.
    #[serde(rename = "statusCode", default)]
    pub status_code: String,
    /// Salesforce's message.
    #[serde(default)]
    pub message: String,
    /// Fields concerned.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// `(errorCode, message)` of an error body (an array, or a single object).
pub(crate) fn api_error(body: &str) -> Option<(String, String)> {
    let first = match serde_json::from_str::<Vec<ApiError>>(body) {
        Ok(list) => list.into_iter().next()?,
        Err(_) => serde_json::from_str::<ApiError>(body).ok()?,
    };
    (!first.error_code.is_empty()).then_some((first.error_code, first.message))
}

/// The framework's reading of a non-success answer of the REST API.
pub(crate) fn classify(resp: &HttpResponse) -> SendError {
    let status = resp.status.as_u16();
    let (code, message) =
        api_error(&resp.body).unwrap_or_else(|| (status.to_string(), excerpt(&resp.body)));
    let message = format!("HTTP {status} {code}: {message}");
    match status {
        429 => SendError::RateLimited {
            message,
            retry_after: retry_after(&resp.headers),
        },
        403 if code == "REQUEST_LIMIT_EXCEEDED" => SendError::RateLimited {
            message,
            retry_after: retry_after(&resp.headers),
        },
        408 | 500..=599 => SendError::Transient {
            code,
            message,
            retry_after: retry_after(&resp.headers),
        },
        401 | 403 | 404 | 405 => SendError::Fatal { code, message },
        400 if CONFIG_CODES.contains(&code.as_str()) => SendError::Fatal { code, message },
        _ => SendError::BatchRejected { code, message },
    }
}

/// An answer the connector cannot read: retried, as a proxy or a partial answer may cause it.
pub(crate) fn unexpected(what: &str, detail: impl std::fmt::Display) -> SendError {
    SendError::Transient {
        code: "unexpected_response".into(),
        message: format!("{what}: {detail}"),
        retry_after: None,
    }
}

/// The outcome of a record Salesforce did not save.
pub(crate) fn record_outcome(
    op: WriteOp,
    key_field: &str,
    errors: &[RecordError],
) -> RecordOutcome {
    let Some(first) = errors.first() else {
        return RecordOutcome::Rejected {
            code: "UNKNOWN".into(),
            message: "Salesforce reported a failure without an error".into(),
        };
    };
    let code = first.status_code.clone();
    let message = errors
        .iter()
        .map(|e| {
            if e.fields.is_empty() {
                e.message.clone()
            } else {
                format!("{} (fields: {})", e.message, e.fields.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    // A trigger that hits a locked row surfaces as its own code with the lock in the message.
    let lock = errors
        .iter()
        .any(|e| e.message.contains("UNABLE_TO_LOCK_ROW"));
    if TRANSIENT_RECORD_CODES.contains(&code.as_str()) || lock {
        return RecordOutcome::Failed { code, message };
    }
    match (op, code.as_str()) {
        (WriteOp::Create, "DUPLICATE_VALUE") if duplicates_key(first, key_field) => {
            RecordOutcome::Skipped {
                reason: format!("a {key_field} record with this key already exists"),
            }
        }
        (WriteOp::Update | WriteOp::Delete, "ENTITY_IS_DELETED" | "NOT_FOUND") => {
            RecordOutcome::Skipped {
                reason: format!("the record no longer exists ({code})"),
            }
        }
        _ => RecordOutcome::Rejected { code, message },
    }
}

/// Whether a `DUPLICATE_VALUE` is about the key field: named in `fields`, or (the API often
/// leaves `fields` empty) in the message "duplicate value found: <field> duplicates ...".
fn duplicates_key(e: &RecordError, key_field: &str) -> bool {
    e.fields.iter().any(|f| f.eq_ignore_ascii_case(key_field))
        || e.message.to_ascii_lowercase().contains(&format!(
            "found: {} duplicates",
            key_field.to_ascii_lowercase()
        ))
}

/// A failure outside a batch (prepare, list, lookup) as the engine's error.
pub(crate) fn destination_error(connection: &str, e: SendError) -> DestinationError {
    let connection = connection.to_string();
    match e {
        SendError::Transient { message, .. } | SendError::RateLimited { message, .. } => {
            DestinationError::Unavailable {
                connection,
                message,
            }
        }
        SendError::BatchRejected { message, .. } | SendError::Fatal { message, .. } => {
            DestinationError::Invalid {
                connection,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;
    use std::time::Duration;

    fn resp(status: u16, body: &str) -> HttpResponse {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            headers,
            body: body.to_string(),
        }
    }

    fn err(code: &str, message: &str, fields: &[&str]) -> RecordError {
        RecordError {
            status_code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn request_errors_follow_the_documented_codes() {
        let limit =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        match classify(&resp(403, limit)) {
            SendError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
        let denied = r#"[{"message":"no","errorCode":"INSUFFICIENT_ACCESS"}]"#;
        assert!(matches!(
            classify(&resp(403, denied)),
            SendError::Fatal { .. }
        ));
        let bad_type =
            r#"[{"message":"sObject type 'X' is not supported","errorCode":"INVALID_TYPE"}]"#;
        assert!(matches!(
            classify(&resp(400, bad_type)),
            SendError::Fatal { .. }
        ));
        let parse = r#"[{"message":"Cannot deserialize","errorCode":"JSON_PARSER_ERROR"}]"#;
        match classify(&resp(400, parse)) {
            SendError::BatchRejected { code, .. } => assert_eq!(code, "JSON_PARSER_ERROR"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&resp(503, "<html>down</html>")),
            SendError::Transient { .. }
        ));
    }

    #[test]
    fn record_errors_map_to_outcomes() {
        let lock = [err(
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
            &[],
        )];
        assert!(matches!(
            record_outcome(WriteOp::Upsert, "Ext__c", &lock),
            RecordOutcome::Failed { .. }
        ));
        let dup = [err(
            "DUPLICATE_VALUE",
            "duplicate value found: Ext__c duplicates value on record with id: 003",
            &[],
        )];
        assert!(matches!(
            record_outcome(WriteOp::Create, "ext__c", &dup),
            RecordOutcome::Skipped { .. }
        ));
        assert!(matches!(
            record_outcome(WriteOp::Upsert, "Ext__c", &dup),
            RecordOutcome::Rejected { .. }
        ));
        let other_dup = [err("DUPLICATE_VALUE", "duplicate", &["Email"])];
        assert!(matches!(
            record_outcome(WriteOp::Create, "Ext__c", &other_dup),
            RecordOutcome::Rejected { .. }
        ));
        let gone = [err("ENTITY_IS_DELETED", "entity is deleted", &[])];
        assert!(matches!(
            record_outcome(WriteOp::Delete, "Ext__c", &gone),
            RecordOutcome::Skipped { .. }
        ));
        let missing = [err(
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing",
            &["LastName"],
        )];
        assert_eq!(
            record_outcome(WriteOp::Upsert, "Ext__c", &missing),
            RecordOutcome::Rejected {
                code: "REQUIRED_FIELD_MISSING".into(),
                message: "Required fields are missing (fields: LastName)".into()
            }
        );
    }
}
