//! `POST /session/v1/login-request` (password, or key-pair `SNOWFLAKE_JWT`),
//! `POST /session/token-request` (renewal with the master token) and
//! `POST /session?delete=true` (logout), with the request and response members of
//! gosnowflake's `auth.go` / `restful.go`.
//!
//! Key-pair JWT (<https://docs.snowflake.com/en/developer-guide/sql-api/authenticating>):
//! RS256, `iss` = `ACCOUNT.USER.SHA256:<base64 of SHA-256 of the public key's DER>`, `sub` =
//! `ACCOUNT.USER` (account without region, both upper-case), `iat`, `exp` at most one hour
//! after `iat`. Any mismatch is `390144` "JWT token is invalid.".

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::body::json_body;
use super::state::{envelope, failure, locked, snowflake_token, LoginRecord, Session, SfState};
use super::SnowflakeUser;
use crate::util::{alnum, uuid_like};

static NEXT_SESSION: AtomicI64 = AtomicI64::new(1_000_001);

const BAD_PASSWORD: (&str, &str) = ("390100", "Incorrect username or password was specified.");

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
}

/// `SHA256:<base64>` of a PEM `PUBLIC KEY` (SubjectPublicKeyInfo DER).
pub(crate) fn fingerprint(public_key_pem: &str) -> Option<String> {
    let body: String = public_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der))
    ))
}

/// The account part the JWT names: upper-case, without a `.region` suffix.
fn account_name(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

fn verify_jwt(account: &str, user: &SnowflakeUser, token: &str) -> bool {
    let (Some(pem), Ok(header)) = (&user.public_key_pem, decode_header(token)) else {
        return false;
    };
    let (Some(fp), Ok(key)) = (fingerprint(pem), DecodingKey::from_rsa_pem(pem.as_bytes())) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.required_spec_claims = HashSet::new();
    if header.alg != Algorithm::RS256 {
        return false;
    }
    let Ok(data) = decode::<Claims>(token, &key, &validation) else {
        return false;
    };
    let c = data.claims;
    let subject = format!(
        "{}.{}",
        account_name(account),
        user.name.to_ascii_uppercase()
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (iat, exp) = (c.iat.unwrap_or(0), c.exp.unwrap_or(0));
    c.sub.as_deref() == Some(subject.as_str())
        && c.iss.as_deref() == Some(format!("{subject}.{fp}").as_str())
        && exp > now
        && exp <= iat + 3600
        && iat <= now + 60
}

/// Checks the credentials of a login body; `Err` is the error code and message.
fn authenticate(s: &SfState, data: &Map<String, Value>) -> Result<SnowflakeUser, (String, String)> {
    let config = s.config();
    let field = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("");
    let login = field("LOGIN_NAME");
    let bad = || (BAD_PASSWORD.0.to_string(), BAD_PASSWORD.1.to_string());
    let user = config
        .users
        .iter()
        .find(|u| u.name.eq_ignore_ascii_case(login))
        .cloned();
    let account_ok = account_name(field("ACCOUNT_NAME")) == account_name(&config.account);
    match field("AUTHENTICATOR").to_ascii_uppercase().as_str() {
        "SNOWFLAKE_JWT" => match user {
            Some(u) if account_ok && verify_jwt(&config.account, &u, field("TOKEN")) => Ok(u),
            _ => Err((
                "390144".into(),
                format!("JWT token is invalid. [{}]", uuid_like()),
            )),
        },
        "" | "SNOWFLAKE" => match user {
            Some(u)
                if account_ok
                    && u.password
                        .as_deref()
                        .is_some_and(|p| p == field("PASSWORD")) =>
            {
                Ok(u)
            }
            _ => Err(bad()),
        },
        other => Err((
            "390100".into(),
            format!("Authenticator {other} is not supported by this account."),
        )),
    }
}

/// A fresh session for `user`: parameters from `SESSION_PARAMETERS`, context from the
/// login URL's query (upper-cased, as Snowflake resolves unquoted names).
fn new_session(
    config: &super::SnowflakeConfig,
    user: &SnowflakeUser,
    data: &Map<String, Value>,
    query: &BTreeMap<String, String>,
) -> Session {
    let params = data
        .get("SESSION_PARAMETERS")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
        .collect();
    let pick = |key: &str, default: &str| {
        query
            .get(key)
            .map_or(default, String::as_str)
            .to_ascii_uppercase()
    };
    let id = NEXT_SESSION.fetch_add(1, Ordering::SeqCst);
    let now = Instant::now();
    Session {
        id,
        user: user.name.to_ascii_uppercase(),
        token: format!("ver:1-hint:{id}-ETMsDgAAA{}", alnum(48)),
        token_expires: now + config.session_ttl,
        master: format!("ver:1-hint:master-ETMsDgAAA{}", alnum(48)),
        master_expires: now + config.master_ttl,
        params,
        database: pick("databaseName", &config.database),
        schema: pick("schemaName", &config.schema),
        warehouse: pick("warehouse", &config.warehouse),
        role: pick("roleName", &config.role),
    }
}

/// `POST /session/v1/login-request`.
pub(crate) async fn login(
    State(s): State<Arc<SfState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let data = json_body(&headers, &body)
        .and_then(|v| v.get("data").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    let mut record = LoginRecord {
        user: text("LOGIN_NAME").unwrap_or_default(),
        account: text("ACCOUNT_NAME").unwrap_or_default(),
        authenticator: text("AUTHENTICATOR"),
        session_parameters: data
            .get("SESSION_PARAMETERS")
            .cloned()
            .unwrap_or(Value::Null),
        query: query.clone(),
        code: None,
    };
    let user = match authenticate(&s, &data) {
        Ok(u) => u,
        Err((code, message)) => {
            record.code = Some(code.clone());
            locked(&s.logins).push(record);
            return failure(&code, &message);
        }
    };
    locked(&s.logins).push(record);
    let config = s.config();
    let session = new_session(&config, &user, &data, &query);
    let data = json!({
        "masterToken": session.master,
        "token": session.token,
        "validityInSeconds": config.session_ttl.as_secs(),
        "masterValidityInSeconds": config.master_ttl.as_secs(),
        "displayUserName": session.user,
        "serverVersion": "9.0.0",
        "firstLogin": false,
        "remMeToken": null,
        "remMeValidityInSeconds": 0,
        "healthCheckInterval": 45,
        "newClientForUpgrade": null,
        "sessionId": session.id,
        "parameters": session_parameters(&session),
        "sessionInfo": {"databaseName": session.database, "schemaName": session.schema, "warehouseName": session.warehouse, "roleName": session.role},
        "idToken": null,
        "idTokenValidityInSeconds": 0,
        "mfaToken": null,
        "mfaTokenValidityInSeconds": 0,
    });
    locked(&s.sessions).insert(session.id, session);
    envelope(data, None, None, true)
}

/// The `parameters` list answered at login and with results.
pub(crate) fn session_parameters(session: &Session) -> Value {
    let mut list = vec![json!({"name": "TIMEZONE", "value": "UTC"})];
    for (k, v) in &session.params {
        list.push(json!({"name": k, "value": v}));
    }
    Value::Array(list)
}

/// `POST /session/token-request`: `{"oldSessionToken", "requestType": "RENEW"}` with the
/// master token in `Authorization`.
pub(crate) async fn renew(
    State(s): State<Arc<SfState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = json_body(&headers, &body).unwrap_or(Value::Null);
    let master = snowflake_token(&headers).unwrap_or_default();
    let config = s.config();
    let mut sessions = locked(&s.sessions);
    let Some(session) = sessions.values_mut().find(|x| x.master == master) else {
        return failure(
            "390111",
            "Session no longer exists.  New login required to access the service.",
        );
    };
    if session.master_expires <= Instant::now() {
        return failure(
            "390114",
            "Authentication token has expired.  The user must authenticate again.",
        );
    }
    if req["requestType"] != "RENEW" || req["oldSessionToken"] != session.token.as_str() {
        return failure(
            "390113",
            "The session token sent does not match the master token.",
        );
    }
    session.token = format!("ver:1-hint:{}-ETMsDgAAA{}", session.id, alnum(48));
    session.token_expires = Instant::now() + config.session_ttl;
    let data = json!({
        "sessionToken": session.token,
        "validityInSecondsST": config.session_ttl.as_secs(),
        "masterToken": session.master,
        "validityInSecondsMT": config.master_ttl.as_secs(),
        "sessionId": session.id,
    });
    envelope(data, None, None, true)
}

/// `POST /session?delete=true`: closes the session of the token sent.
pub(crate) async fn logout(
    State(s): State<Arc<SfState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let token = snowflake_token(&headers).unwrap_or_default();
    if query.get("delete").map(String::as_str) != Some("true") {
        return failure("390100", "Unsupported session request.");
    }
    locked(&s.sessions).retain(|_, x| x.token != token);
    envelope(Value::Null, None, None, true)
}
