//! The middleware every fake runs first: apply the fault plan, check credentials, then log
//! the request with the status it got. Vendors plug in how their answers look.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::faults::{Admission, Faults, RateInfo, Throttle};
use crate::log::{BatchSize, LoggedRequest, RequestLog};

/// A fake's shared state, as the guard needs it.
pub(crate) trait Guarded: Send + Sync + 'static {
    fn faults(&self) -> &Faults;
    fn log(&self) -> &RequestLog;
    /// The rate-limit bucket this request counts against, if the vendor has several.
    fn bucket(&self, _method: &Method, _path: &str) -> Option<&'static str> {
        None
    }
    /// Paths the fault plan skips (Salesforce's login host is separate from the API host).
    fn exempt(&self, _path: &str) -> bool {
        false
    }
    /// Checks credentials (and vendor quotas) after the fault plan admitted the request;
    /// `Some` is the refusal to answer instead of handling it.
    fn refuse(&self, _req: &Request) -> Option<Response> {
        None
    }
    /// The vendor's throttled answer (status and body); `Retry-After` is added by the guard.
    fn throttled(&self, throttle: &Throttle) -> Response;
    /// The vendor's server-error answer with `status`.
    fn server_error(&self, status: StatusCode) -> Response;
    /// Adds the vendor's rate-limit headers.
    fn decorate(&self, _info: Option<&RateInfo>, _resp: &mut Response) {}
}

/// Axum middleware applying [`Guarded`] to every request of a fake.
pub(crate) async fn guard<S: Guarded>(
    State(s): State<Arc<S>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = if s.exempt(&path) {
        next.run(req).await
    } else {
        match s.faults().admit(s.bucket(&method, &path)).await {
            Admission::Proceed(info) => {
                let mut resp = match s.refuse(&req) {
                    None => next.run(req).await,
                    Some(refusal) => refusal,
                };
                s.decorate(info.as_ref(), &mut resp);
                resp
            }
            Admission::Throttled(t) => {
                let mut resp = s.throttled(&t);
                if let Some(secs) = t.retry_after {
                    resp.headers_mut()
                        .insert("retry-after", HeaderValue::from(secs));
                }
                s.decorate(t.info.as_ref(), &mut resp);
                resp
            }
            Admission::ServerError(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                s.server_error(status)
            }
            Admission::TimedOut => StatusCode::GATEWAY_TIMEOUT.into_response(),
        }
    };
    s.log().push(LoggedRequest {
        method: method.to_string(),
        path,
        status: resp.status().as_u16(),
        records_in_batch: resp.extensions().get::<BatchSize>().map(|b| b.0),
    });
    resp
}
