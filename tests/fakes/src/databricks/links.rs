//! The pre-signed-style URLs of EXTERNAL_LINKS results, standing in for cloud storage.
//! Like a pre-signed S3 URL, a link needs no Databricks credential and refuses one: a request
//! carrying `Authorization` is 400 (S3: "Only one auth mechanism allowed"), an expired link
//! is 403 "Request has expired", and the headers listed in `http_headers` must be sent.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::state::{locked, DbxState};

/// An S3-style XML error.
fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

/// `GET {LINK_PREFIX}{token}`: the chunk's bytes.
pub(crate) async fn fetch(
    State(s): State<Arc<DbxState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if headers.contains_key("authorization") {
        return storage_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    let (statement, chunk) = {
        let links = locked(&s.links);
        match links.get(&token) {
            None => return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied"),
            Some(l) if l.expires <= Instant::now() => {
                return storage_error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
            }
            Some(l) => (l.statement.clone(), l.chunk),
        }
    };
    for (name, value) in s.config().link_headers {
        if headers.get(&name).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
            return storage_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("Missing or wrong header {name}"),
            );
        }
    }
    let body = s
        .statements()
        .get(&statement)
        .and_then(|st| st.result.clone())
        .and_then(|r| r.bodies.get(chunk).cloned());
    match body {
        Some(bytes) => (StatusCode::OK, bytes).into_response(),
        None => storage_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ),
    }
}
