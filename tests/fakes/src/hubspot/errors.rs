//! HubSpot's error bodies: the top-level error (`ModelError`) of non-2xx answers and the
//! per-input `StandardError` of 207 multi-status answers.
//! Shapes: <https://developers.hubspot.com/docs/api-reference/latest/error-handling>
//! (fields `status`, `message`, `correlationId`, `category`, `subCategory`, `errors[]` of
//! `{message, code, in, subCategory, context}`, `context`, `links`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::util::uuid_like;

/// Why one input of a batch failed.
#[derive(Clone, Debug)]
pub(crate) struct ItemError {
    pub category: &'static str,
    pub message: String,
    /// `ErrorDetail`s; their `in` names the offending input (`inputs[3].properties.email`).
    pub details: Vec<Value>,
    /// `context`, e.g. `{"ids": ["123"]}` or `{"objectWriteTraceId": ["t-1"]}`.
    pub context: Map<String, Value>,
}

impl ItemError {
    pub(crate) fn new(category: &'static str, message: String) -> Self {
        Self {
            category,
            message,
            details: Vec::new(),
            context: Map::new(),
        }
    }

    /// Adds `key: [value]` to the context.
    pub(crate) fn context(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_string(), json!([value]));
        self
    }

    /// The per-input error of a 207 answer.
    pub(crate) fn standard_error(&self) -> Value {
        json!({
            "status": "error",
            "category": self.category,
            "message": self.message,
            "errors": self.details,
            "context": self.context,
        })
    }
}

/// One `ErrorDetail`.
pub(crate) fn detail(message: &str, code: &str, location: String, property: &str) -> Value {
    json!({
        "message": message,
        "code": code,
        "in": location,
        "context": {"propertyName": [property]},
    })
}

/// A top-level error answer.
pub(crate) fn error(status: StatusCode, category: &str, message: &str) -> Response {
    error_with(status, category, message, Vec::new(), Map::new())
}

fn error_with(
    status: StatusCode,
    category: &str,
    message: &str,
    errors: Vec<Value>,
    context: Map<String, Value>,
) -> Response {
    let mut body = json!({
        "status": "error",
        "message": message,
        "correlationId": uuid_like(),
        "category": category,
    });
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    if !context.is_empty() {
        body["context"] = Value::Object(context);
    }
    (status, Json(body)).into_response()
}

/// `400 VALIDATION_ERROR` with `message`.
pub(crate) fn validation(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// The whole batch fails because of `items`: status follows the first failure's category
/// (VALIDATION_ERROR 400, CONFLICT 409, OBJECT_NOT_FOUND 404); every failing input is named
/// in `errors[]` and `context`, so a connector can tell which input broke the batch.
pub(crate) fn whole_batch(items: &[ItemError]) -> Response {
    let first = &items[0];
    let status = match first.category {
        "CONFLICT" => StatusCode::CONFLICT,
        "OBJECT_NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut context = Map::new();
    for item in items {
        for (k, v) in &item.context {
            let list = context.entry(k.clone()).or_insert_with(|| json!([]));
            if let (Some(list), Some(new)) = (list.as_array_mut(), v.as_array()) {
                list.extend(new.iter().cloned());
            }
        }
    }
    let errors = items.iter().flat_map(|i| i.details.clone()).collect();
    error_with(status, first.category, &first.message, errors, context)
}

/// The documented 401 body of a missing or unknown token. Source:
/// <https://developers.hubspot.com/changelog/improvements-to-authentication-errors-for-v3-endpoints-in-developer-preview-program>
pub(crate) fn unauthorized(missing: bool) -> Response {
    let message = if missing {
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
    } else {
        "Authentication credentials are invalid. Check that the private app access token is correct and has not been rotated."
    };
    error(StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION", message)
}

/// The documented 429 body (`errorType: RATE_LIMIT`, `policyName`). Source:
/// <https://developers.hubspot.com/docs/api/usage-details> (quoted at
/// <https://community.hubspot.com/t5/APIs-Integrations/Hubspot-User-experience/m-p/511719>).
pub(crate) fn rate_limited(policy: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": uuid_like(),
        "policyName": policy,
        "requestId": uuid_like(),
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}
