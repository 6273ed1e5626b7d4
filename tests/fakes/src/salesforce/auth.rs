//! `POST /services/oauth2/token`: the OAuth 2.0 JWT bearer flow and the client credentials
//! flow. Sources: <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm>
//! (claims `iss` = consumer key, `sub` = username (`prn` accepted, and preferred when both
//! are present), `aud` = login/test/community URL, `exp` within 3 minutes; RS256),
//! <https://help.salesforce.com/apex/HTViewHelpDoc?id=xcloud.remoteaccess_oauth_client_credentials_flow.htm>
//! (`client_id` + `client_secret`; the response sample with `token_format`, `signature`,
//! `issued_at`). Neither response carries `expires_in` or a refresh token.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::oauth_error;
use super::state::SfState;
use super::SalesforceConfig;
use crate::util::unique_u64;

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A refused grant: `(error, error_description)`.
type Denied = (&'static str, &'static str);

/// On success, the `token_format` to report (client credentials only).
type Granted = Result<Option<&'static str>, Denied>;

const INVALID_ASSERTION: Denied = ("invalid_grant", "invalid assertion");
const INVALID_CLIENT_ID: Denied = ("invalid_client_id", "client identifier invalid");

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    prn: Option<String>,
    aud: Option<Value>,
    exp: Option<u64>,
}

/// The token endpoint.
pub(crate) async fn token(
    State(s): State<Arc<SfState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let config = s.config();
    let granted = match form.get("grant_type").map(String::as_str) {
        Some(JWT_GRANT) => jwt_bearer(&config, form.get("assertion").map(String::as_str)),
        Some("client_credentials") => client_credentials(&config, &form, &headers),
        _ => Err(("unsupported_grant_type", "grant type not supported")),
    };
    match granted {
        Ok(token_format) => issue(&s, &config, token_format),
        Err((error, description)) => oauth_error(error, description),
    }
}

fn issue(s: &SfState, config: &SalesforceConfig, token_format: Option<&str>) -> Response {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .to_string();
    let signature = base64::engine::general_purpose::STANDARD
        .encode([unique_u64().to_be_bytes(), unique_u64().to_be_bytes()].concat());
    let mut body = json!({
        "access_token": s.issue_token(),
        "signature": signature,
        "scope": "api",
        "instance_url": s.base_url(),
        "id": format!("https://login.salesforce.com/id/{}/{}", config.org_id, config.user_id),
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let Some(f) = token_format {
        body["token_format"] = json!(f);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn jwt_bearer(config: &SalesforceConfig, assertion: Option<&str>) -> Granted {
    let invalid = || INVALID_ASSERTION;
    let Some(client) = &config.jwt else {
        return Err(INVALID_CLIENT_ID);
    };
    let assertion = assertion.ok_or_else(invalid)?;
    let header = decode_header(assertion).map_err(|_| invalid())?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid());
    }
    let key = DecodingKey::from_rsa_pem(client.public_key_pem.as_bytes())
        .map_err(|_| ("invalid_client", "the configured certificate is unusable"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = decode::<Claims>(assertion, &key, &validation)
        .map_err(|_| invalid())?
        .claims;
    if claims.iss.as_deref() != Some(client.client_id.as_str()) {
        return Err(INVALID_CLIENT_ID);
    }
    if claims.prn.or(claims.sub).as_deref() != Some(client.username.as_str()) {
        return Err(invalid());
    }
    let audiences: Vec<&str> = match &claims.aud {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let allowed = |a: &str| {
        config
            .jwt_audiences
            .iter()
            .any(|x| x.trim_end_matches('/') == a.trim_end_matches('/'))
    };
    if !audiences.iter().any(|a| allowed(a)) {
        return Err(("invalid_grant", "audience is invalid"));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let exp = claims.exp.ok_or_else(invalid)?;
    if exp <= now {
        return Err(("invalid_grant", "expired authorization code"));
    }
    if exp > now + config.max_assertion_lifetime.as_secs() {
        return Err(invalid());
    }
    Ok(None)
}

fn client_credentials(
    config: &SalesforceConfig,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Granted {
    let Some(expected) = &config.client_credentials else {
        return Err(("invalid_grant", "no client credentials user enabled"));
    };
    let (id, secret) = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => basic_credentials(headers).unwrap_or_default(),
    };
    if id != expected.client_id {
        return Err(INVALID_CLIENT_ID);
    }
    if secret != expected.client_secret {
        return Err(("invalid_client", "invalid client credentials"));
    }
    Ok(Some("opaque"))
}

/// `Authorization: Basic base64(id:secret)`, an accepted variant of sending the credentials.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}
