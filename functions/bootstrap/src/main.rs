//! The bundle's Lambda functions in one binary: every function deploys the same `bootstrap`,
//! and `RETL_FUNCTION` (set per function by `template.yaml`) names the handler a process
//! serves. One binary is built and linked once, where seven would each link the whole engine
//! and AWS SDK again.
// The handlers' futures nest deeply (every step of the engine in one binary).
#![recursion_limit = "256"]

mod function;

use function::{Function, FUNCTION_VAR};
use retl_lambda::lambda_runtime;
use retl_lambda::serve;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let function = Function::from_var(std::env::var(FUNCTION_VAR).ok().as_deref())?;
    let host = retl_lambda::host().await?;
    let host = &host;
    match function {
        Function::Trigger => serve(|r| retl_fn_trigger::handle(host, r)).await,
        Function::Extract => serve(|r| retl_fn_extract::handle(host, r)).await,
        Function::Plan => serve(|r| retl_fn_plan::handle(host, r)).await,
        Function::Approval => serve(|r| retl_fn_approval::handle(host, r)).await,
        Function::Apply => {
            let value = std::env::var(retl_fn_apply::CONCURRENCY_VAR).ok();
            let parallel = retl_fn_apply::concurrency(value.as_deref());
            serve(|r| retl_fn_apply::handle(host, parallel, r)).await
        }
        Function::Finalize => serve(|r| retl_fn_finalize::handle_event(host, r)).await,
        Function::DbtWebhook => serve(|r| retl_fn_dbt_webhook::handle(host, r)).await,
    }
}
