//! What may be logged: retl's own events never carry a record value or a secret, and the
//! dependencies below would, at debug or trace level (tokio-postgres logs every statement's
//! parameters, the HTTP and AWS stacks log request and response bodies), so every log setup
//! caps them at `info`, whatever level the user asks for.

/// `target=level` directives appended after the user's own, so they win.
pub const QUIET_DEPENDENCIES: &[&str] = &[
    "tokio_postgres=info",
    "postgres_protocol=info",
    "rusqlite=info",
    "mysql_async=info",
    "mysql_common=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "reqwest=info",
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http=info",
    "aws_smithy_http_client=info",
    "aws_sdk_sqs=info",
    "aws_sdk_eventbridge=info",
    "aws_sdk_s3=info",
    "aws_sdk_dynamodb=info",
    "aws_sdk_secretsmanager=info",
    "aws_sdk_redshiftdata=info",
    "aws_sdk_athena=info",
];
