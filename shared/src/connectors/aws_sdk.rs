//! What the AWS-SDK warehouse sources (Redshift Data API, Athena) share: the connection's
//! AWS settings (region, `endpoint:`, credentials from secrets), how an SDK error becomes a
//! [`SendError`] for the request framework, and how a request that failed for good becomes a
//! [`SourceError`]. The SDKs' own retries are off: the connection's [`Requester`] retries.
//!
//! [`Requester`]: crate::delivery::Requester

use std::time::Duration;

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::OpenContext;
use crate::ports::{SendError, SourceError};

/// The AWS settings of a connection (fields of its config with these names and meanings).
#[derive(Debug, Clone, Default)]
pub(crate) struct AwsSettings {
    /// AWS region (default: the standard chain's, e.g. `AWS_REGION`; `us-east-1` with an
    /// `endpoint` and no region).
    pub region: Option<String>,
    /// Base URL of the service (a VPC endpoint, or an emulator in tests). With an endpoint
    /// and no `access_key_id_env`, requests are sent unsigned, as to an emulator.
    pub endpoint: Option<String>,
    /// Secret holding an access key id (default: the standard AWS credential chain, e.g. the
    /// Lambda function's role).
    pub access_key_id_env: Option<String>,
    /// Secret holding the secret access key of `access_key_id_env`.
    pub secret_access_key_env: Option<String>,
}

/// How the SDK client of a connection is built.
pub(crate) struct AwsClientSettings {
    /// The region requests are signed for.
    pub region: Region,
    /// The endpoint override.
    pub endpoint: Option<String>,
    /// Credentials: `Some` static ones from secrets, `None` for the default chain.
    pub credentials: Option<Credentials>,
    /// Whether requests go unsigned (an emulator endpoint without credentials).
    pub unsigned: bool,
    /// The standard chain's settings (credentials, region), when they are used.
    pub sdk: Option<aws_config::SdkConfig>,
}

impl AwsSettings {
    /// Resolves the region and credentials of the connection.
    pub(crate) async fn resolve(
        &self,
        ctx: &OpenContext<'_>,
    ) -> Result<AwsClientSettings, SourceError> {
        let credentials = match (&self.access_key_id_env, &self.secret_access_key_env) {
            (Some(id), Some(secret)) => {
                let id = ctx
                    .secret(id)
                    .await
                    .map_err(|m| ctx.source_config_error(m))?;
                let secret = ctx
                    .secret(secret)
                    .await
                    .map_err(|m| ctx.source_config_error(m))?;
                Some(Credentials::new(id, secret, None, None, "retl-secrets"))
            }
            (None, None) => None,
            _ => {
                return Err(ctx.source_config_error(
                    "set both `access_key_id_env` and `secret_access_key_env`, or neither \
                     (the standard AWS credential chain)",
                ))
            }
        };
        let unsigned = credentials.is_none() && self.endpoint.is_some();
        let sdk = if credentials.is_none() && !unsigned || self.region.is_none() {
            Some(crate::aws_http::sdk_defaults().load().await)
        } else {
            None
        };
        let region = self
            .region
            .clone()
            .map(Region::new)
            .or_else(|| sdk.as_ref().and_then(|s| s.region().cloned()))
            .or_else(|| self.endpoint.is_some().then(|| Region::new("us-east-1")))
            .ok_or_else(|| {
                ctx.source_config_error(
                    "no AWS region: set `region:` on the connection or AWS_REGION",
                )
            })?;
        Ok(AwsClientSettings {
            region,
            endpoint: self.endpoint.clone(),
            credentials,
            unsigned,
            sdk: sdk.filter(|_| !unsigned),
        })
    }
}

/// Error codes that mean the credentials or the role were refused.
const AUTH_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "ExpiredTokenException",
    "IncompleteSignatureException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationTokenException",
    "NotAuthorized",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
];

/// Error codes of throttled requests.
const THROTTLE_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "ActiveStatementsExceededException",
    "ProvisionedThroughputExceededException",
];

/// Classifies an SDK error for the request framework: network failures, 5xx and throttling
/// are retried; everything else stands, with the service's code and message.
pub(crate) fn classify<E>(e: SdkError<E, Response>) -> SendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let retry_after = e
        .raw_response()
        .and_then(|r| r.headers().get("retry-after"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let code = e.code().unwrap_or("").to_string();
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string());
    if matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return SendError::Transient {
            code: "network".into(),
            message,
            retry_after: None,
        };
    }
    if THROTTLE_CODES.contains(&code.as_str()) || status == Some(429) {
        return SendError::RateLimited {
            message: format!("{message} ({code})"),
            retry_after,
        };
    }
    if status.is_some_and(|s| s >= 500) {
        return SendError::Transient {
            code: if code.is_empty() {
                status.unwrap_or(500).to_string()
            } else {
                code
            },
            message,
            retry_after,
        };
    }
    SendError::Fatal {
        code: if code.is_empty() {
            status.map_or_else(|| "unknown".into(), |s| s.to_string())
        } else {
            code
        },
        message,
    }
}

/// The source error of a request that failed for good on `connection`.
pub(crate) fn source_error(connection: &str, e: SendError) -> SourceError {
    let connection = connection.to_string();
    match e {
        SendError::Fatal { code, message } if AUTH_CODES.contains(&code.as_str()) => {
            SourceError::Auth {
                connection,
                code,
                message,
            }
        }
        SendError::Fatal { code, message } | SendError::BatchRejected { code, message } => {
            SourceError::Query {
                connection,
                code,
                message,
            }
        }
        other @ (SendError::Transient { .. } | SendError::RateLimited { .. }) => {
            SourceError::Unavailable {
                connection,
                message: other.to_string(),
            }
        }
    }
}

/// How long to wait before the next status poll of a running query: quick at first, then
/// once a second.
pub(crate) fn poll_delay(polls: u32) -> Duration {
    Duration::from_millis((50u64 << polls.min(5)).min(1000))
}

/// The client of one AWS SDK crate (`$sdk`, e.g. `aws_sdk_athena`) for a connection's
/// settings: the shared SDK config when there is one, the connection's region, endpoint and
/// credentials, unsigned requests for an emulator, and the SDK's own retries off (the
/// connection's requester retries). A macro because each SDK crate has its own config builder
/// type with the same methods and no trait between them.
macro_rules! sdk_client {
    ($sdk:ident, $settings:expr) => {{
        let aws: $crate::connectors::aws_sdk::AwsClientSettings = $settings;
        let mut b = match &aws.sdk {
            Some(sdk) => $sdk::config::Builder::from(sdk),
            None => $sdk::config::Builder::new()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .http_client($crate::aws_http::https_client()),
        };
        b = b
            .region(aws.region)
            .retry_config($sdk::config::retry::RetryConfig::disabled());
        if let Some(e) = aws.endpoint {
            b = b.endpoint_url(e);
        }
        if let Some(c) = aws.credentials {
            b = b.credentials_provider(c);
        }
        if aws.unsigned {
            b = b.allow_no_auth();
        }
        $sdk::Client::from_conf(b.build())
    }};
}

pub(crate) use sdk_client;
