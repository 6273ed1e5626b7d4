//! The AWS host around the engine: resource names of a deployed stack, sync definitions in
//! the config table, an [`Engine`](crate::engine::Engine) wired to the AWS adapters, starting
//! executions, deploying schedules and triggers, and run-completion events and metrics.

mod alert_check;
mod approval;
mod config_table;
#[cfg(test)]
mod definition_checks;
mod deploy;
pub mod event_schemas;
mod events;
mod host;
mod names;
pub mod retry_policy;
mod trigger;

pub use alert_check::{check_alerts, AlertCheck};
pub use approval::decide;
pub use config_table::{ConfigTable, DeployedSync};
pub use deploy::{deploy, DeployReport};
pub use events::{emit_run_completed, health_metrics_lines, metrics_line};
pub use host::AwsHost;
pub use names::StackNames;
pub use trigger::{start_dependents, start_execution, start_sync, TriggerOutcome};
