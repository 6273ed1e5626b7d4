//! Runs on the test stack: starting one, advancing it through the steps that precede the
//! handler under test, and the stand-in execution that waits on its task token.

use std::time::{Duration, Instant};

use retl_shared::engine::steps::{
    step_extract, step_plan_shard, step_summarize, ExtractStep, SummaryStep,
};
use retl_shared::engine::{start_run, StartOptions};
use retl_shared::ports::{ObjectStore, RunRecord, RunStore};
use serde_json::Value;

use crate::TestStack;

/// How long moto may take to run or end an execution.
const EXECUTION_TIMEOUT: Duration = Duration::from_secs(20);

/// How an execution ended: its status, and its output or error name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnd {
    /// `SUCCEEDED`, `FAILED`, ...
    pub status: String,
    /// The output of a succeeded execution.
    pub output: Option<Value>,
    /// The error of a failed one.
    pub error: Option<String>,
}

impl TestStack {
    /// Starts a run of `sync` as the trigger does (lock, run record), without an execution.
    pub async fn start_run(&self, sync: &str) -> String {
        let (deployed, engine) = self.host.load(sync).await.expect("a deployed sync");
        let opts = StartOptions {
            trigger: "manual".into(),
            note: None,
            run_id: None,
        };
        let run = start_run(&engine, &deployed.def, opts).await;
        run.unwrap_or_else(|e| panic!("start a run of {sync}: {e}"))
            .run_id
    }

    /// Extracts `run_id` with the engine's step, as the state machine's first state does.
    pub async fn extract(&self, sync: &str, run_id: &str) -> ExtractStep {
        let (deployed, engine) = self.host.load(sync).await.expect("a deployed sync");
        let extracted = step_extract(&engine, &deployed.def, run_id).await;
        extracted.unwrap_or_else(|e| panic!("extract: {e}"))
    }

    /// Extracts and plans `run_id` with the engine's steps, as the state machine does before
    /// its decision, and returns the summary.
    pub async fn plan(&self, sync: &str, run_id: &str) -> SummaryStep {
        let extracted = self.extract(sync, run_id).await;
        let (deployed, engine) = self.host.load(sync).await.expect("a deployed sync");
        for shard in 0..extracted.shards {
            let planned = step_plan_shard(&engine, &deployed.def, run_id, shard).await;
            planned.unwrap_or_else(|e| panic!("plan shard {shard}: {e}"));
        }
        let summary = step_summarize(&engine, &deployed.def, run_id).await;
        summary.unwrap_or_else(|e| panic!("summarize: {e}"))
    }

    /// The run as stored.
    pub async fn run(&self, run_id: &str) -> RunRecord {
        let run = self.host.runs().get_run(run_id).await;
        run.unwrap_or_else(|e| panic!("run {run_id}: {e}"))
    }

    /// A JSON object of the artifacts bucket.
    pub async fn object(&self, key: &str) -> Value {
        let body = self.host.objects().get(key).await;
        let body = body.unwrap_or_else(|e| panic!("object {key}: {e}"));
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("object {key}: {e}"))
    }

    /// Starts the stand-in execution named `run_id` and returns the task token it waits on.
    pub async fn waiting_execution(&self, run_id: &str) -> String {
        let input = serde_json::json!({"run_id": run_id}).to_string();
        let names = &self.host.names;
        let start = self.host.sfn.start_execution();
        let start = start
            .state_machine_arn(&names.state_machine_arn)
            .name(run_id);
        start.input(input).send().await.expect("start an execution");
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let deadline = Instant::now() + EXECUTION_TIMEOUT;
        while Instant::now() < deadline {
            let received = sqs.receive_message().queue_url(&self.tokens_queue);
            let received = received.wait_time_seconds(1).send().await;
            let received = received.expect("receive from the token queue");
            for message in received.messages() {
                let body: Value = serde_json::from_str(message.body().unwrap_or_default())
                    .expect("the stand-in posts JSON");
                if body["run_id"] == run_id {
                    return body["task_token"].as_str().expect("a token").to_string();
                }
            }
        }
        panic!("the execution {run_id} posted no task token within {EXECUTION_TIMEOUT:?}")
    }

    /// Waits for the execution named `run_id` to end.
    pub async fn execution_end(&self, run_id: &str) -> ExecutionEnd {
        let arn = self.execution_arn(run_id);
        let deadline = Instant::now() + EXECUTION_TIMEOUT;
        loop {
            let described = self.host.sfn.describe_execution().execution_arn(&arn);
            let out = described.send().await.expect("describe the execution");
            let status = out.status().as_str().to_string();
            if status != "RUNNING" {
                return ExecutionEnd {
                    status,
                    output: out
                        .output()
                        .map(|o| serde_json::from_str(o).expect("JSON output")),
                    error: out.error().map(str::to_string),
                };
            }
            assert!(
                Instant::now() < deadline,
                "the execution {run_id} still runs after {EXECUTION_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The input the execution named `run_id` was started with.
    pub async fn execution_input(&self, run_id: &str) -> Value {
        let arn = self.execution_arn(run_id);
        let described = self.host.sfn.describe_execution().execution_arn(&arn);
        let out = described.send().await.expect("describe the execution");
        serde_json::from_str(out.input().unwrap_or("null")).expect("JSON input")
    }

    fn execution_arn(&self, run_id: &str) -> String {
        let machine = &self.host.names.state_machine_arn;
        format!(
            "{}:{run_id}",
            machine.replacen(":stateMachine:", ":execution:", 1)
        )
    }
}
