//! The AWS JSON 1.1 error envelope: HTTP status plus `{"__type": "<Shape>", "Message": ...}`
//! and the shape's other members (botocore's redshift-data service model names them;
//! SDKs read the message from `message` or `Message`, so the model's spelling is used).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `{"__type": shape, "Message": message}` with `status`, plus `extra` members.
pub(crate) fn aws_error(status: StatusCode, shape: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({"__type": shape, "Message": message});
    if let (Some(b), Value::Object(more)) = (body.as_object_mut(), extra) {
        b.extend(more);
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    resp
}

/// 400 `ValidationException`.
pub(crate) fn validation(message: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        message,
        Value::Null,
    )
}

/// 400 `ResourceNotFoundException` naming the statement id.
pub(crate) fn not_found(message: &str, id: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        message,
        json!({"ResourceId": id}),
    )
}
