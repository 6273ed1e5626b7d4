//! How a session proves who it is: key-pair authentication (an RS256 JWT whose `iss` names
//! the SHA-256 fingerprint of the user's public key, as Snowflake's key-pair docs and the
//! drivers do) or a password, sent in the `login-request` body.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::SnowflakeConnection;
use crate::connectors::OpenContext;
use crate::ports::SourceError;

/// A JWT is accepted for at most an hour; a fresh one is made for every login.
const JWT_LIFETIME_SECS: i64 = 3540;

/// The user's credentials.
pub(crate) enum Credentials {
    /// Key-pair authentication.
    KeyPair {
        /// The private key.
        key: EncodingKey,
        /// `SHA256:<base64>` of the public key's SubjectPublicKeyInfo DER.
        fingerprint: String,
    },
    /// Password authentication.
    Password(String),
    /// An emulator endpoint without credentials: an empty password.
    Anonymous,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    iat: i64,
    exp: i64,
}

impl Credentials {
    /// The credentials the connection's secrets hold.
    pub(crate) async fn from_config(
        config: &SnowflakeConnection,
        ctx: &OpenContext<'_>,
    ) -> Result<Self, SourceError> {
        if let Some(name) = &config.private_key_env {
            let pem = ctx
                .secret(name)
                .await
                .map_err(|m| ctx.source_config_error(m))?;
            return key_pair(&pem).map_err(|m| {
                ctx.source_config_error(format!("the secret `{name}` (private_key_env): {m}"))
            });
        }
        if let Some(name) = &config.password_env {
            let password = ctx
                .secret(name)
                .await
                .map_err(|m| ctx.source_config_error(m))?;
            return Ok(Credentials::Password(password));
        }
        if config.endpoint.is_some() {
            return Ok(Credentials::Anonymous);
        }
        Err(ctx.source_config_error(
            "needs `private_key_env` or `password_env`: name the secret holding the user's key",
        ))
    }

    /// Adds the credential members to a login body's `data`.
    pub(crate) fn add_to(
        &self,
        data: &mut Map<String, Value>,
        account: &str,
        user: &str,
    ) -> Result<(), String> {
        match self {
            Credentials::KeyPair { key, fingerprint } => {
                let subject = format!("{}.{}", account_name(account), user.to_ascii_uppercase());
                let issuer = format!("{subject}.{fingerprint}");
                let now = chrono::Utc::now().timestamp();
                let claims = Claims {
                    iss: &issuer,
                    sub: &subject,
                    iat: now,
                    exp: now + JWT_LIFETIME_SECS,
                };
                let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
                    .map_err(|e| format!("cannot sign the key-pair JWT: {e}"))?;
                data.insert("AUTHENTICATOR".into(), json!("SNOWFLAKE_JWT"));
                data.insert("TOKEN".into(), json!(token));
            }
            Credentials::Password(p) => {
                data.insert("PASSWORD".into(), json!(p));
            }
            Credentials::Anonymous => {
                data.insert("PASSWORD".into(), json!(""));
            }
        }
        Ok(())
    }
}

/// The account name a JWT and a login name: upper case, without a `.region` suffix.
pub(crate) fn account_name(account: &str) -> String {
    account
        .trim()
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

/// Key-pair credentials from a PEM private key (`PRIVATE KEY` or `RSA PRIVATE KEY`), as secret
/// stores often hold it: possibly with literal `\n` for newlines.
fn key_pair(pem: &str) -> Result<Credentials, String> {
    let text = if pem.contains('\n') {
        pem.to_string()
    } else {
        pem.replace("\\n", "\n")
    };
    let text = text.trim();
    if text.contains("ENCRYPTED") {
        return Err("the private key is encrypted; store it unencrypted (openssl pkcs8 -topk8 -nocrypt) in the secret".into());
    }
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| "it is not a PEM private key".to_string())?;
    let pair = if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        ring::rsa::KeyPair::from_der(&der)
    } else {
        ring::rsa::KeyPair::from_pkcs8(&der)
    }
    .map_err(|e| format!("it is not an RSA private key ({e})"))?;
    let spki = subject_public_key_info(pair.public().as_ref());
    let fingerprint = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&spki))
    );
    let key = EncodingKey::from_rsa_der(&pkcs1_of(&der, text)?);
    Ok(Credentials::KeyPair { key, fingerprint })
}

/// The PKCS#1 `RSAPrivateKey` DER jsonwebtoken signs with: the key itself, or the one a
/// PKCS#8 `PrivateKeyInfo` wraps.
fn pkcs1_of(der: &[u8], pem: &str) -> Result<Vec<u8>, String> {
    if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        return Ok(der.to_vec());
    }
    // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE, privateKey OCTET STRING }
    let (_, info) = der_element(der, 0x30).ok_or("malformed PKCS#8 key")?;
    let (rest, _) = der_element(info, 0x02).ok_or("malformed PKCS#8 version")?;
    let (rest, _) = der_element(rest, 0x30).ok_or("malformed PKCS#8 algorithm")?;
    let (_, key) = der_element(rest, 0x04).ok_or("malformed PKCS#8 private key")?;
    Ok(key.to_vec())
}

/// One DER element with tag `tag` at the start of `input`: (what follows it, its content).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let len = input
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, 2 + n)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((&input[header + len..], content))
}

/// DER of a length.
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// SubjectPublicKeyInfo { rsaEncryption, BIT STRING { RSAPublicKey } } around a PKCS#1 public
/// key: what `openssl rsa -pubout` writes and Snowflake fingerprints.
fn subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    bit_string.extend(der_length(rsa_public_key.len() + 1));
    bit_string.push(0);
    bit_string.extend_from_slice(rsa_public_key);
    let mut out = vec![0x30];
    out.extend(der_length(ALGORITHM.len() + bit_string.len()));
    out.extend_from_slice(&ALGORITHM);
    out.extend(bit_string);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_drop_the_region() {
        assert_eq!(account_name("xy12345.eu-west-1"), "XY12345");
        assert_eq!(account_name("myorg-etl"), "MYORG-ETL");
    }

    #[test]
    fn der_lengths_and_elements() {
        assert_eq!(der_length(5), [5]);
        assert_eq!(der_length(270), [0x82, 0x01, 0x0e]);
        let seq = [0x30, 0x03, 0x02, 0x01, 0x07, 0xff];
        let (rest, content) = der_element(&seq, 0x30).unwrap();
        assert_eq!((rest, content), (&[0xff][..], &[0x02, 0x01, 0x07][..]));
        assert!(der_element(&seq, 0x02).is_none());
        assert!(der_element(&[0x30, 0x09, 0x00], 0x30).is_none());
    }

    #[test]
    fn garbage_keys_are_refused_with_a_reason() {
        let err = key_pair("not a key").err().unwrap();
        assert!(err.contains("not"), "{err}");
        let err = key_pair(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nabc\n-----END ENCRYPTED PRIVATE KEY-----",
        )
        .err()
        .unwrap();
        assert!(err.contains("encrypted"), "{err}");
    }
}
