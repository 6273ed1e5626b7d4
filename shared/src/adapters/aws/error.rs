//! Sorting SDK failures into the ports' error kinds: what a retry may heal and what it won't.

// Every service crate re-exports the same smithy types; S3's paths are used for all of them.
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// Error codes that mean "slow down or try again" across S3, DynamoDB, Secrets Manager and SNS.
const TRANSIENT_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "SlowDown",
    "Throttled",
    "ThrottledException",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "TransactionConflictException",
];

/// Whether retrying the same call later may succeed: no answer at all, an unreadable answer,
/// a 5xx or 429, or a throttling code. The SDK has already retried these a few times.
pub(crate) fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status();
            status.is_server_error()
                || status.as_u16() == 429
                || ctx
                    .err()
                    .code()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        _ => false,
    }
}

/// Whether IAM refused the call: an `AccessDenied...` code, or a bare 403 (what emulators
/// answer, and S3's HEAD requests, which carry no body).
pub(crate) fn is_access_denied<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(ctx) => {
            ctx.raw().status().as_u16() == 403
                || ctx
                    .err()
                    .code()
                    .is_some_and(|c| c.starts_with("AccessDenied"))
        }
        _ => false,
    }
}

/// A one-line account of the failure, prefixed with what was being done: the service's error
/// code and message, or the chain of causes. Never the raw response, which the SDK's own
/// reports include and which does not belong in run records and logs.
pub(crate) fn describe<E>(what: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    if let SdkError::ServiceError(ctx) = err {
        return format!(
            "{what}: {} (HTTP {}): {}",
            ctx.err().code().unwrap_or("unknown error"),
            ctx.raw().status().as_u16(),
            ctx.err().message().unwrap_or("no message")
        );
    }
    let mut text = format!("{what}: {err}");
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A store failure: `Unavailable` when a retry may heal it, `Other` otherwise.
pub(crate) fn store_error<E>(what: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = describe(what, &err);
    if is_transient(&err) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Other(message)
    }
}

/// A request the SDK refused to build (a required field missing): a bug, never transient.
pub(crate) fn build_error(what: &str, err: aws_sdk_s3::error::BuildError) -> StoreError {
    StoreError::Other(format!("{what}: {err}"))
}
