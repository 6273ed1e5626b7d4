//! How the state machine retries a Lambda step, as data: which errors are retried, how often,
//! and which never are. Every `arn:aws:states:::lambda:invoke` task of
//! `infra/statemachine/sync.asl.json`, the approval wait (`.waitForTaskToken`) among them,
//! carries exactly [`lambda_task_retry`] (a test checks it), so the lists live here, beside the
//! engine's [`RETRYABLE`], and not in the JSON. (The wait's `States.Timeout`, an expired
//! request, is never retried: it is caught and ends the run `expired`.)

use serde_json::{json, Value};

use crate::engine::{RETRYABLE, STEP_ATTEMPTS};

/// Never retried, even though they are not `Retl.*` errors: the same input fails the same
/// way (`Runtime.OutOfMemory`), or a copy of the step may still be running (`States.Timeout`:
/// the task's `TimeoutSeconds` is above the function's own timeout, so it only fires when
/// Step Functions lost track of an invocation that Lambda has not ended). Listed first with
/// `MaxAttempts: 0` so no later retrier can match them.
pub const NEVER_RETRIED: &[&str] = &["Runtime.OutOfMemory", "States.Timeout"];

/// Errors of the Lambda service or the function's process, retried like a flaky network: the
/// invocation never ran (`Lambda.*Exception`), or its process died mid-step
/// (`Runtime.ExitError`, e.g. a crash mid-apply), which a retried step resumes from.
pub const PLATFORM_RETRYABLE: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "Runtime.ExitError",
];

/// Retries of a [`PLATFORM_RETRYABLE`] error (AWS's recommended six for Lambda service
/// exceptions).
pub const PLATFORM_RETRIES: u32 = 6;

/// Retried once only: the function ran out of time (`Sandbox.Timedout`), or Lambda could not
/// say why it failed (`Lambda.Unknown`, which AWS uses for timeouts and running out of
/// memory). One more attempt covers a slow moment of a warehouse or destination; the same
/// timeout twice is taken as the step's size, not bad luck, and ends the run.
pub const RETRIED_ONCE: &[&str] = &["Sandbox.Timedout", "Lambda.Unknown"];

/// Pause before retrying a [`RETRYABLE`] `Retl.*` error, in seconds.
pub const RETL_RETRY_INTERVAL_SECONDS: u32 = 5;

/// The `Retry` list of every Lambda task of the state machine, in the order Step Functions
/// tries them (the first retrier that names the error decides). The `Retl.*` retrier retries
/// [`RETRYABLE`] as often as the local host does ([`STEP_ATTEMPTS`] attempts in all); any
/// other `Retl.*` error (configuration, safety, a lost lock, a bad request) matches no
/// retrier and fails the step at once.
pub fn lambda_task_retry() -> Value {
    json!([
        { "ErrorEquals": NEVER_RETRIED, "MaxAttempts": 0 },
        {
            "ErrorEquals": PLATFORM_RETRYABLE,
            "IntervalSeconds": 2,
            "MaxAttempts": PLATFORM_RETRIES,
            "BackoffRate": 2.0
        },
        { "ErrorEquals": RETRIED_ONCE, "IntervalSeconds": 2, "MaxAttempts": 1 },
        {
            "ErrorEquals": RETRYABLE,
            "IntervalSeconds": RETL_RETRY_INTERVAL_SECONDS,
            "MaxAttempts": STEP_ATTEMPTS - 1,
            "BackoffRate": 2.0
        }
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::aws_host::definition_checks::{definition, every_lambda_task, walk_states};
    use crate::config::ConfigError;
    use crate::engine::EngineError;
    use crate::ports::StoreError;

    /// Every Lambda task of the state machine, the approval wait included, retries exactly as
    /// [`lambda_task_retry`] says.
    #[test]
    fn every_lambda_task_retries_by_the_one_policy() {
        let asl = definition();
        let expected = lambda_task_retry();
        let tasks = every_lambda_task(&asl);
        assert!(tasks.len() >= 10, "every step is a Lambda task: {tasks:?}");
        assert!(tasks.contains_key("WaitForApproval"), "{tasks:?}");
        for (name, task) in tasks {
            assert_eq!(
                task["Retry"], expected,
                "state {name} retries otherwise than retry_policy::lambda_task_retry()"
            );
        }
    }

    /// No retrier anywhere names another `Retl.*` error, or matches every error.
    #[test]
    fn no_state_retries_a_deterministic_error() {
        let asl = definition();
        let retl: BTreeSet<&str> = RETRYABLE.iter().copied().collect();
        let mut retriers = 0;
        walk_states(&asl, &mut |name, state| {
            for r in state["Retry"].as_array().into_iter().flatten() {
                retriers += 1;
                let names: BTreeSet<&str> = r["ErrorEquals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for catch_all in ["States.ALL", "States.TaskFailed"] {
                    assert!(!names.contains(catch_all), "{name} retries {catch_all}");
                }
                let named: BTreeSet<&str> = names
                    .iter()
                    .copied()
                    .filter(|n| n.starts_with("Retl."))
                    .collect();
                if r["MaxAttempts"] != 0 {
                    assert!(named.is_empty() || named == retl, "{name}: {r}");
                }
            }
        });
        assert!(retriers > 0);
    }

    /// The errors the issue names as deterministic are not retryable: the same input fails
    /// the same way, or the run must stop writing.
    #[test]
    fn deterministic_errors_are_not_retryable() {
        let deterministic = [
            EngineError::Config(ConfigError::UnknownSync {
                name: "nope".into(),
                suggestion: None,
            }),
            EngineError::Invalid("no such column".into()),
            EngineError::LockLost {
                sync: "s".into(),
                run_id: "r1".into(),
                holder: "r2".into(),
            },
            EngineError::Paused("s".into()),
            EngineError::StalePlan {
                run_id: "r1".into(),
                reason: "config changed".into(),
            },
            EngineError::DeliveryFatal {
                code: "401".into(),
                message: "unauthorized".into(),
            },
            EngineError::Corrupt("plan".into()),
            EngineError::Store(StoreError::NotFound("run r1".into())),
        ];
        for e in deterministic {
            assert!(!e.is_retryable(), "{} is retried", e.error_name());
            assert!(e.error_name().starts_with("Retl."), "{}", e.error_name());
        }
        let lists = [NEVER_RETRIED, PLATFORM_RETRYABLE, RETRIED_ONCE, RETRYABLE];
        let all: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        let distinct: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            distinct.len(),
            "an error is in two lists: {all:?}"
        );
        assert!(RETRYABLE.iter().all(|n| n.starts_with("Retl.")));
        assert!(!RETRYABLE.contains(&"Retl.LockLost"));
    }
}
