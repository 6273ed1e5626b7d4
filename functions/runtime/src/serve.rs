//! The Lambda runtime loop around one typed handler.

use std::future::Future;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::errors::parse;

/// Serves invocations until the process ends: each payload is parsed into `Req` (a bad one is
/// answered with `Retl.BadRequest`), handed to `handler`, and its typed response or
/// `Diagnostic` returned to the Lambda service.
pub async fn serve<Req, Resp, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Diagnostic>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request: Req = parse(event.payload)?;
        handler(request).await
    }))
    .await
}
