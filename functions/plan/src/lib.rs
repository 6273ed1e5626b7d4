//! Lambda `plan`: `{"action": "shard", "shard": n}` diffs one shard against the key set;
//! `{"action": "summarize"}` combines the shards, applies the safety rules and lays out the
//! apply units for the state machine's decision.

use retl_lambda::lambda_runtime::Diagnostic;
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::{step_plan_shard, step_summarize, ShardStep, SummaryStep};
use serde::{Deserialize, Serialize};

/// What the state machine asks of the planner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PlanRequest {
    /// Plan one shard (an iteration of the PlanShards Map).
    Shard {
        /// The run.
        run_id: String,
        /// Its sync.
        sync: String,
        /// The shard.
        shard: u32,
    },
    /// Combine the shard plans and decide.
    Summarize {
        /// The run.
        run_id: String,
        /// Its sync.
        sync: String,
    },
}

/// The planner's answer: the shard's operation count, or the summary the Decide state reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanResponse {
    /// What one shard planned.
    Shard(ShardStep),
    /// The decision, counts and apply units.
    Summary(SummaryStep),
}

/// Plans a shard or summarizes.
pub async fn handle(host: &AwsHost, request: PlanRequest) -> Result<PlanResponse, Diagnostic> {
    match request {
        PlanRequest::Shard {
            run_id,
            sync,
            shard,
        } => {
            let (deployed, engine) = load(host, &sync).await?;
            let step = step_plan_shard(&engine, &deployed.def, &run_id, shard).await;
            Ok(PlanResponse::Shard(step.map_err(diagnostic)?))
        }
        PlanRequest::Summarize { run_id, sync } => {
            let (deployed, engine) = load(host, &sync).await?;
            let step = step_summarize(&engine, &deployed.def, &run_id).await;
            Ok(PlanResponse::Summary(step.map_err(diagnostic)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retl_lambda::parse;
    use serde_json::json;

    #[test]
    fn the_state_machine_payloads_parse_into_requests() {
        let shard = json!({"action": "shard", "run_id": "r1", "sync": "people", "shard": 12});
        assert_eq!(
            parse::<PlanRequest>(shard).unwrap(),
            PlanRequest::Shard {
                run_id: "r1".into(),
                sync: "people".into(),
                shard: 12
            }
        );
        let summarize = json!({"action": "summarize", "run_id": "r1", "sync": "people"});
        assert_eq!(
            parse::<PlanRequest>(summarize).unwrap(),
            PlanRequest::Summarize {
                run_id: "r1".into(),
                sync: "people".into()
            }
        );
    }

    #[test]
    fn unknown_actions_and_bad_shards_are_bad_requests() {
        for (payload, says) in [
            (
                json!({"action": "apply", "run_id": "r", "sync": "s"}),
                "unknown variant `apply`",
            ),
            (
                json!({"run_id": "r", "sync": "s"}),
                "missing field `action`",
            ),
            (
                json!({"action": "shard", "run_id": "r", "sync": "s", "shard": -1}),
                "expected u32",
            ),
            (
                json!({"action": "shard", "run_id": "r", "sync": "s"}),
                "missing field `shard`",
            ),
        ] {
            let err = parse::<PlanRequest>(payload.clone()).unwrap_err();
            assert_eq!(err.error_type, "Retl.BadRequest", "{payload}");
            assert!(
                err.error_message.contains(says),
                "{payload}: {}",
                err.error_message
            );
        }
    }
}
