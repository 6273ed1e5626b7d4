//! Helpers shared by the fake tests.

use reqwest::header::HeaderMap;

/// A client with a short timeout, so a hung request fails the test fast.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A header as a number.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

/// A 64-character lowercase hex digest stand-in, distinct per `n`.
pub fn hash(n: u32) -> String {
    format!("{n:064x}")
}
