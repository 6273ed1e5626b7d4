//! Lambda `dbt_webhook`: the HTTPS endpoint (a Lambda function URL) a dbt Cloud webhook
//! calls. Each request's signature is checked against the webhook's secret key (Secrets
//! Manager, [`SECRET_NAME`] under the stack's prefix); a bad or missing one is answered 401.
//! A successful `job.run.completed` puts one `retl.trigger` event per sync whose `triggers:`
//! list that job (`dbt_cloud_job: <id>`) on the stack's bus, where the trigger function starts
//! it as any other trigger (the lock, paused syncs, the dead-letter queue). The body is never
//! logged.

mod http;
mod payload;
mod signature;

use retl_lambda::lambda_runtime::Diagnostic;
use retl_shared::aws_host::{emit_triggers, syncs_for_dbt_job, AwsHost};
use serde_json::json;

pub use http::{UrlRequest, UrlResponse};
pub use payload::{DbtEvent, Verdict};
pub use signature::{verify, Refused};

/// The secret holding the dbt Cloud webhook's secret key (read as `<prefix><name>`, e.g.
/// `retl/DBT_CLOUD_WEBHOOK_SECRET`).
pub const SECRET_NAME: &str = "DBT_CLOUD_WEBHOOK_SECRET";

/// Answers one webhook delivery. Every outcome is an HTTP answer: 200 (syncs triggered, or
/// nothing to do), 400 (not a dbt Cloud event), 401 (signature), 500 (the secret or the bus
/// failed: dbt Cloud retries).
pub async fn handle(host: &AwsHost, request: UrlRequest) -> Result<UrlResponse, Diagnostic> {
    let body = match request.raw_body() {
        Ok(body) => body,
        Err(why) => return Ok(UrlResponse::error(400, why)),
    };
    let secret = match host.secret(SECRET_NAME).await {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(error = %e, "the dbt Cloud webhook's secret is not readable");
            return Ok(UrlResponse::error(
                500,
                "the webhook's secret is not readable; see the function's log",
            ));
        }
    };
    if let Err(refused) = verify(secret.as_bytes(), &body, request.header("authorization")) {
        tracing::warn!(reason = %refused, "dbt Cloud webhook request refused");
        return Ok(UrlResponse::error(401, refused));
    }
    let event: DbtEvent = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(e) => {
            // serde's message may quote the body: the caller gets it, the log only where.
            tracing::warn!(
                line = e.line(),
                column = e.column(),
                "not a dbt Cloud event"
            );
            return Ok(UrlResponse::error(
                400,
                format!("not a dbt Cloud event: {e}"),
            ));
        }
    };
    let job = match event.verdict() {
        Ok(Verdict::Succeeded { job }) => job,
        Ok(Verdict::Ignored(why)) => {
            tracing::info!(event_type = %event.event_type, run_id = %event.run_id(), %why, "dbt Cloud event ignored");
            return Ok(UrlResponse::json(
                200,
                &json!({"triggered": [], "ignored": why}),
            ));
        }
        Err(why) => return Ok(UrlResponse::error(400, why)),
    };
    trigger(host, job, &event.run_id()).await
}

/// Puts a `retl.trigger` for each sync that lists `job`.
async fn trigger(host: &AwsHost, job: u64, run_id: &str) -> Result<UrlResponse, Diagnostic> {
    let syncs = match syncs_for_dbt_job(host, job).await {
        Ok(syncs) => syncs,
        Err(e) => {
            tracing::error!(job, error = %e, "reading the deployed syncs failed");
            return Ok(UrlResponse::error(
                500,
                "reading the deployed syncs failed; see the function's log",
            ));
        }
    };
    if let Err(e) = emit_triggers(&host.events, &host.names, &syncs).await {
        tracing::error!(job, error = %e, "putting the trigger events failed");
        return Ok(UrlResponse::error(
            500,
            "putting the trigger events failed; see the function's log",
        ));
    }
    tracing::info!(
        job,
        run_id,
        syncs = syncs.len(),
        "dbt Cloud job run triggered syncs"
    );
    Ok(UrlResponse::json(
        200,
        &json!({"job": job, "triggered": syncs}),
    ))
}
