//! Salesforce's REST error envelope: a JSON *array* of `{message, errorCode, fields?}`
//! (<https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html>), and the
//! OAuth token endpoint's `{error, error_description}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `[{"message": message, "errorCode": code}]` with `status`.
pub(crate) fn rest_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

/// 401 for a missing, unknown or expired access token.
pub(crate) fn invalid_session() -> Response {
    rest_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

/// 404 for an unknown resource.
pub(crate) fn not_found() -> Response {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// 400 `{"error": error, "error_description": description}` from the token endpoint.
pub(crate) fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// API version of a `vXX.X` path segment.
pub(crate) fn api_version(segment: &str) -> Option<f64> {
    let number = segment.strip_prefix('v')?;
    number.contains('.').then_some(())?;
    number.parse().ok()
}
