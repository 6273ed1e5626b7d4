//! A whole retl stack on the local AWS emulator: moto, with the bucket, tables, key, topics,
//! event bus, schedule group, state machine and approval runbook created from template.yaml
//! itself (SAM translated and resolved, `infra/local/offline_stack.py --only`), Step Functions
//! executing that state machine and Systems Manager Automation running that runbook, and the
//! real function binaries served by [`LambdaService`]. The approvers are the CLI's identity
//! ([`DEFAULT_CALLER`]) and the IAM user `jane`; `mallory` is a user who is no approver.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use retl_shared::aws_host::{AwsHost, StackNames};

use crate::approvals::{
    create_from_template, user_arn, Approver, APPROVAL_RESOURCES, DEFAULT_CALLER,
};
use crate::lambda::{binary_dir, FunctionSpec, LambdaService};
use crate::moto::Moto;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";
/// The test region.
pub const REGION: &str = "us-east-1";

/// The functions of the bundle (by RETL_FUNCTION), with the processes each gets (its
/// concurrency).
const FUNCTIONS: [(&str, usize); 7] = [
    ("trigger", 4),
    ("extract", 1),
    ("plan", 2),
    ("approval", 1),
    ("apply", 2),
    ("finalize", 1),
    ("dbt_webhook", 1),
];

/// A running stack.
pub struct AwsStack {
    /// The emulator (dropped last: it is declared last in spirit, killed on drop).
    pub moto: Moto,
    /// The function binaries.
    pub lambdas: LambdaService,
    /// SDK configuration pointing at moto.
    pub sdk: SdkConfig,
    /// Resource names.
    pub names: StackNames,
    /// The host, as the functions and the CLI build it.
    pub host: AwsHost,
    /// IAM users who sign in: `jane` (an approver) and `mallory` (not one).
    pub users: std::collections::BTreeMap<String, Approver>,
}

/// What the end-to-end stack creates from template.yaml, by logical id: every store, topic,
/// bus and the state machine the functions use (the functions themselves are the real
/// binaries behind [`LambdaService`]).
const STACK_RESOURCES: &str = "ArtifactsBucket,KeySetTable,RunsTable,ConfigTable,\
SafetyGrantsTable,AlertsKey,AlertsTopic,EventBus,ScheduleGroup,SyncStateMachine";

impl AwsStack {
    /// Creates the stack `stack` on a fresh moto and starts its functions.
    pub async fn start(stack: &str) -> AwsStack {
        let specs = FUNCTIONS
            .iter()
            .map(|(f, n)| FunctionSpec {
                // As template.yaml names them: `<stack>-dbt-webhook` for `dbt_webhook`.
                name: format!("{stack}-{}", f.replace('_', "-")),
                binary: binary_dir().join("retl-functions"),
                env: vec![("RETL_FUNCTION".to_string(), f.to_string())],
                instances: *n,
            })
            .collect();
        let lambdas = LambdaService::new(specs).await;
        let moto = Moto::start_with_env(&[
            ("MOTO_BRIDGE_LAMBDA_ENDPOINT", lambdas.endpoint.as_str()),
            // Retry waits shrink a hundredfold: the definition keeps production intervals.
            ("MOTO_BRIDGE_RETRY_SCALE", "0.01"),
            ("MOTO_BRIDGE_LOG", "0"),
        ]);
        let sdk = moto.sdk_config().await;
        let names = StackNames::derive(stack, ACCOUNT, REGION);
        let host = AwsHost::new(&sdk, names.clone());
        let jane = user_arn("jane");
        let users = create_from_template(
            &moto.endpoint,
            stack,
            &[STACK_RESOURCES, APPROVAL_RESOURCES],
            &[DEFAULT_CALLER, &jane],
            &["PlanConcurrency=4", "ApplyConcurrency=2"],
            &["jane", "mallory"],
        )
        .await;
        let machine = host
            .sfn
            .describe_state_machine()
            .state_machine_arn(&names.state_machine_arn)
            .send()
            .await
            .expect("template.yaml's state machine, where the functions find it");
        assert!(machine.definition().contains(&names.bucket));
        lambdas
            .launch(Self::function_env(&names, &moto.endpoint))
            .await;
        AwsStack {
            moto,
            lambdas,
            sdk,
            names,
            host,
            users,
        }
    }

    /// The environment the template gives every function (`RETL_*`), pointing at moto.
    fn function_env(names: &StackNames, endpoint: &str) -> Vec<(String, String)> {
        vec![
            ("RETL_STACK", names.stack.clone()),
            ("RETL_BUCKET", names.bucket.clone()),
            ("RETL_KEYSET_TABLE", names.keyset_table.clone()),
            ("RETL_RUNS_TABLE", names.runs_table.clone()),
            ("RETL_CONFIG_TABLE", names.config_table.clone()),
            (
                "RETL_SAFETY_GRANTS_TABLE",
                names.safety_grants_table.clone(),
            ),
            ("RETL_TOPIC_ARN", names.topic_arn.clone()),
            ("RETL_STATE_MACHINE_ARN", names.state_machine_arn.clone()),
            ("RETL_EVENT_BUS", names.event_bus.clone()),
            ("RETL_SECRET_PREFIX", names.secret_prefix.clone()),
            ("RETL_APPLY_CONCURRENCY", "2".to_string()),
            (
                "RETL_APPROVAL_FUNCTION_ARN",
                names.approval_function_arn.clone(),
            ),
            ("RETL_SCHEDULER_ROLE_ARN", names.scheduler_role_arn.clone()),
            ("RUST_LOG", "info".to_string()),
        ]
        .into_iter()
        .chain(Self::aws_env_for(endpoint))
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn aws_env_for(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Environment for the `retl` CLI to reach this stack with `--aws`.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Self::aws_env_for(&self.moto.endpoint);
        env.push(("RETL_STACK", self.names.stack.clone()));
        env
    }

    /// Stores a connection secret (`url_env: NAME` reads `retl/NAME`).
    pub async fn put_secret(&self, name: &str, value: &str) {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
            .create_secret()
            .name(format!("{}{name}", self.names.secret_prefix))
            .secret_string(value)
            .send()
            .await
            .expect("create the secret");
    }

    /// The execution's events, one line each (type and error), for assertion messages.
    pub async fn history(&self, run_id: &str) -> String {
        let arn = format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:execution:{}-sync:{run_id}",
            self.names.stack
        );
        let out = aws_sdk_sfn::Client::new(&self.sdk)
            .get_execution_history()
            .execution_arn(&arn)
            .max_results(1000)
            .send()
            .await
            .expect("execution history");
        out.events()
            .iter()
            .map(|e| {
                let detail = e
                    .task_failed_event_details()
                    .map(|d| format!(" {:?}: {:?}", d.error(), d.cause()))
                    .or_else(|| {
                        e.execution_failed_event_details()
                            .map(|d| format!(" {:?}: {:?}", d.error(), d.cause()))
                    })
                    .or_else(|| {
                        e.state_entered_event_details()
                            .map(|d| format!(" {}", d.name()))
                    })
                    .unwrap_or_default();
                format!("{:?}{detail}", e.r#type())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the execution of `run_id` to end; returns its status and error name.
    pub async fn execution_end(&self, run_id: &str) -> (String, Option<String>) {
        let arn = format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:execution:{}-sync:{run_id}",
            self.names.stack
        );
        let sfn = aws_sdk_sfn::Client::new(&self.sdk);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = sfn
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .expect("describe the execution");
            let status = out.status().as_str().to_string();
            if status != "RUNNING" {
                return (status, out.error().map(str::to_string));
            }
            assert!(
                Instant::now() < deadline,
                "execution {arn} still running after 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
