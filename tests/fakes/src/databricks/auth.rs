//! `POST /oidc/v1/token`: OAuth machine-to-machine (client credentials) for a service
//! principal (<https://docs.databricks.com/en/dev-tools/auth/oauth-m2m.html>): form body
//! `grant_type=client_credentials&scope=all-apis`, the client id and secret as HTTP Basic
//! auth (or `client_id`/`client_secret` form fields); the answer is
//! `{"access_token", "token_type": "Bearer", "expires_in", "scope"}`. The SDKs find the
//! token endpoint through `GET /oidc/.well-known/oauth-authorization-server` first (newer
//! SDKs find that through the host metadata of `GET /.well-known/databricks-config`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::{json, Value};

use super::state::{locked, DbxState};
use crate::util::alnum;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The token endpoint.
pub(crate) async fn token(
    State(s): State<Arc<DbxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    s.record("POST", "/oidc/v1/token", auth, json!(form));
    let config = s.config();
    let given = basic(&headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let known = config.oauth_client.as_ref();
    if given.is_none() || known.is_none_or(|k| Some((k.0.clone(), k.1.clone())) != given) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only client_credentials is supported",
        );
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope.is_empty() && scope.split(' ').any(|sc| sc != "all-apis" && sc != "sql") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The requested scope is invalid",
        );
    }
    let access = format!("eyJ{}", alnum(120));
    locked(&s.oauth_tokens).insert(access.clone(), Instant::now() + config.oauth_token_ttl);
    let body: Value = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": config.oauth_token_ttl.as_secs(),
        "scope": if scope.is_empty() { "all-apis".to_string() } else { scope },
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// `GET /oidc/.well-known/oauth-authorization-server`: the workspace's OIDC endpoints.
pub(crate) async fn discovery(State(s): State<Arc<DbxState>>) -> Response {
    let oidc = format!("{}/oidc", s.base_url.get().cloned().unwrap_or_default());
    let body = json!({
        "issuer": oidc,
        "authorization_endpoint": format!("{oidc}/v1/authorize"),
        "token_endpoint": format!("{oidc}/v1/token"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
        "scopes_supported": ["all-apis", "sql", "offline_access"],
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// `GET /.well-known/databricks-config`: host metadata naming the OIDC root.
pub(crate) async fn host_metadata(State(s): State<Arc<DbxState>>) -> Response {
    let base = s.base_url.get().cloned().unwrap_or_default();
    let body = json!({"oidc_endpoint": format!("{base}/oidc"), "workspace_id": "1234567890123456", "cloud": "aws"});
    (StatusCode::OK, Json(body)).into_response()
}
