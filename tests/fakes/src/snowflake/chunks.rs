//! `GET {CHUNK_PREFIX}{token}`: result chunks as cloud storage serves them, gzip-compressed
//! (`Content-Encoding: gzip`). Like S3 with SSE-C: the `x-amz-server-side-encryption-customer-*`
//! headers (from `chunkHeaders`, or derived from `qrmk`) are required, and a Snowflake
//! `Authorization` header is refused.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::{locked, SfState};

fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>");
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

/// The chunk's gzip bytes.
pub(crate) async fn download(
    State(s): State<Arc<SfState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.contains_key("authorization") {
        return storage_error(StatusCode::BAD_REQUEST, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified");
    }
    let chunks = locked(&s.chunks);
    let Some(file) = chunks.get(&token) else {
        return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied");
    };
    for (name, value) in &file.required {
        match headers.get(name).and_then(|v| v.to_str().ok()) {
            None => return storage_error(StatusCode::BAD_REQUEST, "InvalidRequest", "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."),
            Some(sent) if sent != value => return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "The calculated MD5 hash of the key did not match the hash that was provided."),
            Some(_) => {}
        }
    }
    let mut resp = (StatusCode::OK, file.gzipped.clone()).into_response();
    resp.headers_mut()
        .insert("content-encoding", HeaderValue::from_static("gzip"));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("binary/octet-stream"),
    );
    resp
}
