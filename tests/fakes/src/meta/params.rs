//! Graph API parameters: read from the query string and from a form-encoded or JSON body,
//! as the Graph API accepts both; `payload` and `session` may arrive as JSON text (form
//! field) or as JSON objects (JSON body). Source: the vendor example posts
//! `payload=<url-encoded JSON>`
//! (<https://developers.facebook.com/documentation/ads-commerce/marketing-api/reference/custom-audience/users>).

use std::collections::HashMap;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::util::bearer;

/// Parameters of one Graph call.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, Value>);

impl Params {
    /// Query first, then the body (body values win).
    pub(crate) fn gather(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Self {
        let mut map = HashMap::new();
        if let Some(q) = query {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap_or_default();
            map.extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        let is_json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if is_json {
            if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
                map.extend(obj);
            }
        } else if !body.is_empty() {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).unwrap_or_default();
            map.extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        Params(map)
    }

    /// The access token: `access_token` parameter, else `Authorization: Bearer`.
    pub(crate) fn access_token(&self, headers: &HeaderMap) -> Option<String> {
        self.0
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| bearer(headers).map(str::to_string))
    }

    /// A JSON-valued parameter, decoding JSON text when it was sent as a string.
    pub(crate) fn json(&self, name: &str) -> Option<Result<Value, String>> {
        match self.0.get(name)? {
            Value::String(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("(#100) param {name} must be JSON: {e}")),
            ),
            other => Some(Ok(other.clone())),
        }
    }
}
