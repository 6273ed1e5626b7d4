//! dbt Cloud's webhook signature: the `Authorization` header carries the hex HMAC-SHA256 of
//! the raw request body, keyed with the webhook's secret key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a request's signature was refused (answered with 401; no part of the body in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization` header, or an empty one.
    Missing,
    /// The header is not a hex string.
    NotHex,
    /// The header is not the HMAC of this body with the stored secret.
    Mismatch,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Missing => {
                "no signature: dbt Cloud signs each request in its Authorization header"
            }
            Refused::NotHex => "the Authorization header is not a hex HMAC-SHA256 signature",
            Refused::Mismatch => {
                "the signature does not match the body: the secret stored for this webhook is not \
                 the dbt Cloud webhook's secret key"
            }
        })
    }
}

/// Checks `header` against the HMAC-SHA256 of `body` keyed with `secret`, in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), Refused> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(Refused::Missing)?;
    let given = hex::decode(header).map_err(|_| Refused::NotHex)?;
    // HMAC takes a key of any length; the error case cannot happen but is no panic either.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Refused::Mismatch)?;
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| Refused::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: printf '{"a":1}' | openssl dgst -sha256 -hmac s3cret
    const REFERENCE: &str = "5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d";

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_openssl_reference_signature_is_accepted() {
        assert_eq!(verify(b"s3cret", br#"{"a":1}"#, Some(REFERENCE)), Ok(()));
    }

    #[test]
    fn the_hmac_of_the_body_with_the_secret_is_accepted_in_either_case() {
        let body = br#"{"eventType":"job.run.completed"}"#;
        let signature = sign("s3cret", body);
        assert_eq!(verify(b"s3cret", body, Some(&signature)), Ok(()));
        let upper = signature.to_uppercase();
        assert_eq!(verify(b"s3cret", body, Some(&upper)), Ok(()));
    }

    #[test]
    fn a_missing_malformed_or_wrong_signature_is_refused() {
        let body = b"{}";
        assert_eq!(verify(b"k", body, None), Err(Refused::Missing));
        assert_eq!(verify(b"k", body, Some("  ")), Err(Refused::Missing));
        assert_eq!(verify(b"k", body, Some("not hex")), Err(Refused::NotHex));
        let other_key = sign("other", body);
        assert_eq!(verify(b"k", body, Some(&other_key)), Err(Refused::Mismatch));
        let other_body = sign("k", b"{ }");
        assert_eq!(
            verify(b"k", body, Some(&other_body)),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", br#"{"a":1}"#, Some(&REFERENCE[..8])),
            Err(Refused::Mismatch)
        );
    }
}
