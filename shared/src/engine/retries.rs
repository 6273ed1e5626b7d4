//! The local host retries a step the way the state machine does: on the same errors, as
//! many times, with a growing pause.

use std::future::Future;
use std::time::Duration;

use super::{EngineError, STEP_ATTEMPTS};

/// Runs `step` until it succeeds, fails with an error that is not retryable, or has been
/// tried [`STEP_ATTEMPTS`] times. Steps can be retried: they rewrite the same objects.
pub(super) async fn retrying<T, F, Fut>(mut step: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if e.is_retryable() && attempt < STEP_ATTEMPTS => {
                tracing::warn!(
                    error_name = e.error_name(),
                    attempt,
                    "step failed; retrying"
                );
                // 2 s, 4 s, 8 s, ... as the state machine's BackoffRate 2.0 from 2 s.
                tokio::time::sleep(Duration::from_secs(1 << attempt.min(5))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
