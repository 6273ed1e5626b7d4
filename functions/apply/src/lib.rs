//! Lambda `apply`: sends one apply unit of the plan through the delivery framework. A retried
//! invocation (`retry` > 0) resumes after the records an earlier attempt delivered.

use retl_lambda::lambda_runtime::Diagnostic;
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::step_apply_unit;
use serde::{Deserialize, Serialize};

pub use retl_shared::engine::steps::ApplyStep as ApplyResponse;

/// The environment variable holding the apply Map's `MaxConcurrency` (the template sets it).
pub const CONCURRENCY_VAR: &str = "RETL_APPLY_CONCURRENCY";

/// One iteration of the ApplyUnits Map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The run.
    pub run_id: String,
    /// Its sync.
    pub sync: String,
    /// The apply unit.
    pub unit: usize,
    /// `$$.State.RetryCount`: above 0, an earlier attempt may have delivered records.
    #[serde(default)]
    pub retry: u32,
}

/// Apply units the state machine runs at once, from `value` (of [`CONCURRENCY_VAR`]); they
/// share the destination's rate limit. One when unset or unreadable.
pub fn concurrency(value: Option<&str>) -> usize {
    value
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// Applies the unit; `parallel` is [`concurrency`].
pub async fn handle(
    host: &AwsHost,
    parallel: usize,
    request: ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    let (deployed, engine) = load(host, &request.sync).await?;
    let resume = request.retry > 0;
    let run_id = &request.run_id;
    step_apply_unit(
        &engine,
        &deployed.def,
        run_id,
        request.unit,
        resume,
        parallel,
    )
    .await
    .map_err(diagnostic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_map_iteration_parses_with_its_retry_count() {
        let first = json!({"run_id": "r1", "sync": "s", "unit": 3, "retry": 0});
        let retried = json!({"run_id": "r1", "sync": "s", "unit": 3, "retry": 2});
        let direct = json!({"run_id": "r1", "sync": "s", "unit": 3});
        let expect = |retry| ApplyRequest {
            run_id: "r1".into(),
            sync: "s".into(),
            unit: 3,
            retry,
        };
        assert_eq!(parse::<ApplyRequest>(first).unwrap(), expect(0));
        assert_eq!(parse::<ApplyRequest>(retried).unwrap(), expect(2));
        assert_eq!(parse::<ApplyRequest>(direct).unwrap(), expect(0));
        let err = parse::<ApplyRequest>(json!({"run_id": "r1", "sync": "s", "unit": "3"}));
        assert_eq!(err.unwrap_err().error_type, "Retl.BadRequest");
    }

    #[test]
    fn concurrency_defaults_to_one_unit() {
        assert_eq!(concurrency(Some("4")), 4);
        assert_eq!(concurrency(Some(" 8\n")), 8);
        for bad in [None, Some(""), Some("0"), Some("-2"), Some("four")] {
            assert_eq!(concurrency(bad), 1, "{bad:?}");
        }
    }
}
