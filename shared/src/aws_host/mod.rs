//! The AWS host around the engine: resource names of a deployed stack, sync definitions in
//! the config table, an [`Engine`](crate::engine::Engine) wired to the AWS adapters, starting
//! executions, deploying schedules and triggers, approvals in Systems Manager Automation, and
//! run-completion events and metrics.

mod alert_check;
mod approval;
mod approval_decision;
mod approval_tokens;
mod automation;
mod config_table;
#[cfg(test)]
mod definition_checks;
mod deploy;
pub mod event_schemas;
mod events;
mod host;
mod names;
mod reminder;
pub mod retry_policy;
mod safety_grants;
mod trigger;

pub use alert_check::{check_alerts, AlertCheck};
pub use approval::{remind, request_approval, signal_decision, take_decision, withdraw};
pub use approval_decision::{read_decision, AutomationDecision};
pub use approval_tokens::{ApprovalTokens, WaitingToken};
pub use automation::{Automation, AutomationExecution, StepExecution};
pub use config_table::{ConfigTable, DeployedSync};
pub use deploy::{deploy, write_definitions, DeployReport};
pub use events::{emit_run_completed, emit_triggers, health_metrics_lines, metrics_line};
pub use host::AwsHost;
pub use names::StackNames;
pub use reminder::{reminder_name, reminder_time};
pub use safety_grants::{SafetyGrant, SafetyGrants};
pub use trigger::{
    start_dependents, start_execution, start_sync, syncs_for_dbt_job, TriggerOutcome,
};
