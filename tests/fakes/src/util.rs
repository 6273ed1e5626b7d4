//! Small helpers shared by the fakes: bearer tokens, timestamps, opaque ids.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive);
/// Salesforce also accepts the `OAuth` scheme, so it is taken here too.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
}

/// Now, as ISO 8601 UTC with milliseconds (`2024-01-31T12:00:00.000Z`).
pub(crate) fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, as Salesforce writes dates (`2024-01-31T12:00:00.000+0000`).
pub(crate) fn now_sf() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

static COUNTER: AtomicU64 = AtomicU64::new(0x0123_4567_89AB_CDEF);

/// A process-unique pseudo-random 64-bit value (not for security: ids in fake answers).
pub(crate) fn unique_u64() -> u64 {
    let n = COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = n ^ (std::process::id() as u64).rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A UUID-shaped random id (HubSpot `correlationId`).
pub(crate) fn uuid_like() -> String {
    let a = unique_u64();
    let b = unique_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// A random alphanumeric string of `len` characters (Meta `fbtrace_id`, tokens).
pub(crate) fn alnum(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let mut v = unique_u64();
        for _ in 0..8 {
            if out.len() == len {
                break;
            }
            out.push(CHARS[(v % CHARS.len() as u64) as usize] as char);
            v /= CHARS.len() as u64;
        }
    }
    out
}

/// The text of a JSON scalar as a vendor would compare it (strings unquoted).
pub(crate) fn scalar_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
