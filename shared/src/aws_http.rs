//! The HTTP client of every AWS SDK client retl builds: rustls on ring, the crypto the rest
//! of the build already uses. The SDK crates' default client (rustls on AWS-LC) is left out
//! of the build: AWS-LC is a C library of minutes to compile for each target, and an SDK
//! client built without this one fails its first request ("no HTTP client").

use std::sync::OnceLock;

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTPS (and plain HTTP, for emulators) client, one per process: its clones share a
/// connection pool.
pub fn https_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// `aws_config::defaults` with [`https_client`]: where every SDK configuration starts.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}
