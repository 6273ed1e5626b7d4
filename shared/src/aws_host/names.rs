//! Names of a deployed stack's resources. The template gives every resource a name derived
//! from the stack name, so the CLI needs only `--stack` (plus account and region) and the
//! functions read the same names from their environment.

use serde::{Deserialize, Serialize};

/// Resource names of one retl stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackNames {
    /// Stack name.
    pub stack: String,
    /// Artifacts bucket.
    pub bucket: String,
    /// Key-set table.
    pub keyset_table: String,
    /// Runs table.
    pub runs_table: String,
    /// Config table (deployed sync definitions).
    pub config_table: String,
    /// Safety grants (who allowed a sync's deleting mode); only safety deployers write it.
    pub safety_grants_table: String,
    /// Alerts and approvals topic.
    pub topic_arn: String,
    /// The run state machine.
    pub state_machine_arn: String,
    /// The trigger function.
    pub trigger_function_arn: String,
    /// Scheduler schedule group.
    pub schedule_group: String,
    /// Role EventBridge Scheduler assumes to invoke the trigger function.
    pub scheduler_role_arn: String,
    /// Secrets Manager prefix of connection secrets.
    pub secret_prefix: String,
    /// The approval-tokens table (the approval function's alone).
    pub approval_tokens_table: String,
    /// The Systems Manager Automation runbook that asks the approvers.
    pub approval_runbook: String,
    /// The approval function (the reminders' target).
    pub approval_function_arn: String,
    /// The stack's own EventBridge bus: `retl.trigger`, `retl.run.completed` and the rules of
    /// sync triggers, so two stacks in one account never start each other's syncs.
    pub event_bus: String,
}

impl StackNames {
    /// Names of stack `stack` in `account`/`region` (partition `aws`), as the template makes them.
    pub fn derive(stack: &str, account: &str, region: &str) -> Self {
        let arn =
            |service: &str, rest: &str| format!("arn:aws:{service}:{region}:{account}:{rest}");
        StackNames {
            stack: stack.to_string(),
            bucket: format!("{stack}-artifacts-{account}-{region}"),
            keyset_table: format!("{stack}-keysets"),
            runs_table: format!("{stack}-runs"),
            config_table: format!("{stack}-config"),
            safety_grants_table: format!("{stack}-safety-grants"),
            topic_arn: arn("sns", &format!("{stack}-alerts")),
            state_machine_arn: arn("states", &format!("stateMachine:{stack}-sync")),
            trigger_function_arn: arn("lambda", &format!("function:{stack}-trigger")),
            schedule_group: stack.to_string(),
            scheduler_role_arn: format!("arn:aws:iam::{account}:role/{stack}-scheduler"),
            secret_prefix: "retl/".to_string(),
            approval_tokens_table: format!("{stack}-approval-tokens"),
            approval_runbook: format!("{stack}-approve-deletes"),
            approval_function_arn: arn("lambda", &format!("function:{stack}-approval")),
            event_bus: format!("{stack}-events"),
        }
    }

    /// Names from the function environment the template sets (`RETL_*`).
    pub fn from_env() -> Result<Self, String> {
        let var =
            |k: &str| std::env::var(k).map_err(|_| format!("environment variable {k} is not set"));
        let stack = var("RETL_STACK")?;
        Ok(StackNames {
            bucket: var("RETL_BUCKET")?,
            keyset_table: var("RETL_KEYSET_TABLE")?,
            runs_table: var("RETL_RUNS_TABLE")?,
            config_table: var("RETL_CONFIG_TABLE")?,
            safety_grants_table: var("RETL_SAFETY_GRANTS_TABLE")?,
            topic_arn: var("RETL_TOPIC_ARN")?,
            state_machine_arn: var("RETL_STATE_MACHINE_ARN")?,
            trigger_function_arn: std::env::var("RETL_TRIGGER_FUNCTION_ARN").unwrap_or_default(),
            schedule_group: stack.clone(),
            scheduler_role_arn: std::env::var("RETL_SCHEDULER_ROLE_ARN").unwrap_or_default(),
            secret_prefix: std::env::var("RETL_SECRET_PREFIX").unwrap_or_else(|_| "retl/".into()),
            approval_tokens_table: std::env::var("RETL_APPROVAL_TOKENS_TABLE")
                .unwrap_or_else(|_| format!("{stack}-approval-tokens")),
            approval_runbook: std::env::var("RETL_APPROVAL_RUNBOOK")
                .unwrap_or_else(|_| format!("{stack}-approve-deletes")),
            approval_function_arn: std::env::var("RETL_APPROVAL_FUNCTION_ARN").unwrap_or_default(),
            event_bus: var("RETL_EVENT_BUS")?,
            stack,
        })
    }
}
