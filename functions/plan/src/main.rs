//! Lambda `plan`: `{"action": "shard", "shard": n}` diffs one shard against the key set;
//! `{"action": "summarize"}` combines the shards, applies the safety rules and lays out the
//! apply units for the state machine's decision.

use retl_lambda::lambda_runtime::{self, service_fn, Diagnostic, LambdaEvent};
use retl_lambda::{diagnostic, load};
use retl_shared::aws_host::AwsHost;
use retl_shared::engine::steps::{step_plan_shard, step_summarize};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum PlanEvent {
    Shard {
        run_id: String,
        sync: String,
        shard: u32,
    },
    Summarize {
        run_id: String,
        sync: String,
    },
}

async fn handle(host: &AwsHost, event: PlanEvent) -> Result<Value, Diagnostic> {
    let out = match event {
        PlanEvent::Shard {
            run_id,
            sync,
            shard,
        } => {
            let (deployed, engine) = load(host, &sync).await?;
            serde_json::to_value(
                step_plan_shard(&engine, &deployed.def, &run_id, shard)
                    .await
                    .map_err(diagnostic)?,
            )
        }
        PlanEvent::Summarize { run_id, sync } => {
            let (deployed, engine) = load(host, &sync).await?;
            serde_json::to_value(
                step_summarize(&engine, &deployed.def, &run_id)
                    .await
                    .map_err(diagnostic)?,
            )
        }
    };
    out.map_err(|e| Diagnostic {
        error_type: "Retl.CorruptData".into(),
        error_message: e.to_string(),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    retl_lambda::init_tracing();
    let host = retl_lambda::host().await?;
    lambda_runtime::run(service_fn(|e: LambdaEvent<PlanEvent>| {
        handle(&host, e.payload)
    }))
    .await
}
