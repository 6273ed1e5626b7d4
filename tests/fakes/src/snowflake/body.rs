//! Request bodies: JSON, optionally gzip-compressed (`Content-Encoding: gzip`), as the
//! Snowflake drivers may send them (the Python connector compresses its requests).

use std::io::Read;

use axum::http::HeaderMap;
use flate2::read::GzDecoder;
use serde_json::Value;

/// The JSON body, decompressed first when the request says it is gzip.
pub(crate) fn json_body(headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gzip {
        let mut text = Vec::new();
        GzDecoder::new(body).read_to_end(&mut text).ok()?;
        serde_json::from_slice(&text).ok()
    } else {
        serde_json::from_slice(body).ok()
    }
}
