//! A Lambda function URL's request and response (payload format 2.0), as far as the webhook
//! reads and writes them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The HTTP request a function URL hands the function. No `Debug`: it holds the body and the
/// signature, which are never logged.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlRequest {
    /// Header names (lower-case, as function URLs give them) to values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as received, base64-encoded when `is_base64_encoded`.
    #[serde(default)]
    pub body: Option<String>,
    /// Whether the function URL base64-encoded the body (it does for non-text content types).
    #[serde(default)]
    pub is_base64_encoded: bool,
}

impl UrlRequest {
    /// The header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw body bytes (what the signature covers).
    pub fn raw_body(&self) -> Result<Vec<u8>, &'static str> {
        let body = self.body.as_deref().unwrap_or_default();
        if !self.is_base64_encoded {
            return Ok(body.as_bytes().to_vec());
        }
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "the body is marked base64-encoded but is not base64")
    }
}

/// The HTTP response the function URL sends back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UrlResponse {
    /// The HTTP status.
    pub status_code: u16,
    /// Response headers.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, as text.
    pub body: String,
}

impl UrlResponse {
    /// A JSON response.
    pub fn json(status_code: u16, body: &Value) -> Self {
        UrlResponse {
            status_code,
            headers: BTreeMap::from([("content-type".into(), "application/json".into())]),
            body: body.to_string(),
        }
    }

    /// `{"error": message}` with `status_code`.
    pub fn error(status_code: u16, message: impl std::fmt::Display) -> Self {
        Self::json(status_code, &json!({"error": message.to_string()}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> UrlRequest {
        serde_json::from_value(v).expect("a function URL request")
    }

    #[test]
    fn the_raw_body_is_the_text_or_its_base64_decoding() {
        let plain = request(json!({"headers": {"Authorization": "ab"}, "body": "{\"a\":1}"}));
        assert_eq!(plain.raw_body().unwrap(), br#"{"a":1}"#);
        assert_eq!(plain.header("authorization"), Some("ab"));
        let encoded = request(json!({"body": "eyJhIjoxfQ==", "isBase64Encoded": true}));
        assert_eq!(encoded.raw_body().unwrap(), br#"{"a":1}"#);
        let broken = request(json!({"body": "***", "isBase64Encoded": true}));
        assert!(broken.raw_body().is_err());
        let empty = request(json!({}));
        assert_eq!(empty.raw_body().unwrap(), b"");
        assert_eq!(empty.header("authorization"), None);
    }

    #[test]
    fn responses_are_what_a_function_url_sends_back() {
        let r = serde_json::to_value(UrlResponse::error(401, "no signature")).unwrap();
        assert_eq!(
            r,
            json!({"statusCode": 401, "headers": {"content-type": "application/json"},
                   "body": "{\"error\":\"no signature\"}"})
        );
    }
}
