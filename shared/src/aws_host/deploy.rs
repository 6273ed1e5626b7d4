//! `retl deploy --aws`: writes the project's sync definitions to the config table and keeps
//! one EventBridge Scheduler schedule and one EventBridge rule per upstream trigger (on the
//! stack's own bus) in step with them, so adding a sync never means editing `template.yaml`.

use std::collections::BTreeMap;

use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use serde::Serialize;
use serde_json::json;

use super::config_table::DeployedSync;
use super::host::AwsHost;
use super::safety_grants::{self, SafetyGrant};
use crate::config::{Project, SyncDef};
use crate::connectors::ConnectionConfig;
use crate::connectors::DeployCheck;
use crate::engine::EngineError;

/// What a deploy changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeployReport {
    /// Syncs written.
    pub deployed: Vec<String>,
    /// Syncs removed (no longer in the project).
    pub removed: Vec<String>,
    /// Schedules created or updated.
    pub schedules: Vec<String>,
    /// Upstream trigger rules created or updated.
    pub rules: Vec<String>,
    /// Syncs whose deleting mode or thresholds were granted by this deploy.
    pub granted: Vec<String>,
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(e.to_string())
}

/// Rule names must fit in 64 characters; long sync names are shortened with a hash.
fn rule_name(stack: &str, sync: &str, index: usize) -> String {
    let name = format!("{stack}-trigger-{sync}-{index}");
    if name.len() <= 64 {
        return name;
    }
    let hash = crate::record::fingerprint(name.as_bytes());
    format!("{}-{}", &name[..40], &hash[..16])
}

fn rule_prefix(stack: &str, sync: &str) -> String {
    format!("{stack}-trigger-{sync}-")
}

fn connections_of(
    project: &Project,
    def: &SyncDef,
) -> Result<BTreeMap<String, ConnectionConfig>, EngineError> {
    let mut out = BTreeMap::new();
    for name in [&def.source_connection, &def.destination_connection] {
        let conn = project
            .connection(name)
            .ok_or_else(|| invalid(format!("connection `{name}` is not defined")))?;
        match conn.connector().deploy_check() {
            DeployCheck::Ok => {}
            DeployCheck::Warn(why) => {
                tracing::warn!(connection = %name, "{why}");
            }
            DeployCheck::Refuse(why) => {
                return Err(invalid(format!(
                    "sync `{}` uses the connection `{name}`: {why}",
                    def.name
                )))
            }
        }
        out.insert(name.clone(), conn.clone());
    }
    Ok(out)
}

async fn put_schedule(host: &AwsHost, def: &SyncDef, expr: &str) -> Result<(), EngineError> {
    let target = Target::builder()
        .arn(&host.names.trigger_function_arn)
        .role_arn(&host.names.scheduler_role_arn)
        .input(json!({"sync": def.name, "trigger": "schedule"}).to_string())
        .build()
        .map_err(invalid)?;
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(invalid)?;
    let created = host
        .scheduler
        .create_schedule()
        .name(&def.name)
        .group_name(&host.names.schedule_group)
        .schedule_expression(expr)
        .flexible_time_window(window.clone())
        .target(target.clone())
        .description(format!("retl sync {}", def.name))
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conflict_exception()) =>
        {
            host.scheduler
                .update_schedule()
                .name(&def.name)
                .group_name(&host.names.schedule_group)
                .schedule_expression(expr)
                .flexible_time_window(window)
                .target(target)
                .description(format!("retl sync {}", def.name))
                .send()
                .await
                .map_err(|e| invalid(aws_sdk_scheduler::error::DisplayErrorContext(e)))?;
            Ok(())
        }
        Err(e) => Err(invalid(format!(
            "creating the schedule of sync `{}` in group `{}`: {}",
            def.name,
            host.names.schedule_group,
            aws_sdk_scheduler::error::DisplayErrorContext(e)
        ))),
    }
}

async fn delete_schedule(host: &AwsHost, sync: &str) -> Result<(), EngineError> {
    match host
        .scheduler
        .delete_schedule()
        .name(sync)
        .group_name(&host.names.schedule_group)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(invalid(format!(
            "deleting the schedule of sync `{sync}`: {}",
            aws_sdk_scheduler::error::DisplayErrorContext(e)
        ))),
    }
}

async fn rules_of(host: &AwsHost, sync: &str) -> Result<Vec<String>, EngineError> {
    let out = host
        .events
        .list_rules()
        .event_bus_name(&host.names.event_bus)
        .name_prefix(rule_prefix(&host.names.stack, sync))
        .send()
        .await
        .map_err(|e| invalid(aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
    Ok(out
        .rules()
        .iter()
        .filter_map(|r| r.name().map(str::to_string))
        .collect())
}

async fn delete_rule(host: &AwsHost, name: &str) -> Result<(), EngineError> {
    host.events
        .remove_targets()
        .event_bus_name(&host.names.event_bus)
        .rule(name)
        .ids("trigger")
        .send()
        .await
        .map_err(|e| invalid(aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
    host.events
        .delete_rule()
        .event_bus_name(&host.names.event_bus)
        .name(name)
        .send()
        .await
        .map_err(|e| invalid(aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
    Ok(())
}

async fn put_rules(host: &AwsHost, def: &SyncDef) -> Result<Vec<String>, EngineError> {
    let mut written = Vec::new();
    let patterns = def.triggers.iter().filter_map(|t| t.event_pattern.as_ref());
    for (i, pattern) in patterns.enumerate() {
        let name = rule_name(&host.names.stack, &def.name, i);
        host.events
            .put_rule()
            .event_bus_name(&host.names.event_bus)
            .name(&name)
            .event_pattern(pattern.to_string())
            .description(format!("starts retl sync {}", def.name))
            .send()
            .await
            .map_err(|e| invalid(aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("trigger")
            .arn(&host.names.trigger_function_arn)
            .input(json!({"sync": def.name, "trigger": "event"}).to_string())
            .build()
            .map_err(invalid)?;
        host.events
            .put_targets()
            .event_bus_name(&host.names.event_bus)
            .rule(&name)
            .targets(target)
            .send()
            .await
            .map_err(|e| invalid(aws_sdk_eventbridge::error::DisplayErrorContext(e)))?;
        written.push(name);
    }
    for stale in rules_of(host, &def.name).await? {
        if !written.contains(&stale) {
            delete_rule(host, &stale).await?;
        }
    }
    Ok(written)
}

/// Writes the safety grant of every sync of `project` whose deleting mode or thresholds the
/// current grant does not cover, before any definition is written: a deployer without the
/// safety deployer policy changes nothing.
async fn grant_deletes(
    host: &AwsHost,
    project: &Project,
    deployer: &str,
) -> Result<Vec<String>, EngineError> {
    let mut granted = Vec::new();
    for def in project
        .syncs
        .iter()
        .filter(|d| safety_grants::needs_grant(d))
    {
        let current = host.grants.get(&def.name).await?;
        if current.is_some_and(|g| g.shortfall(def).is_none()) {
            continue;
        }
        let grant = SafetyGrant::for_def(def, deployer);
        host.grants.put(&grant, &host.names.stack).await?;
        granted.push(def.name.clone());
    }
    Ok(granted)
}

/// The definitions part of a deploy, as `deployer`: the safety grants first (a deployer
/// without the safety deployer policy changes nothing), then each sync's definition and its
/// config version recording `deployer`. Schedules and trigger rules are [`deploy`]'s.
pub async fn write_definitions(
    host: &AwsHost,
    project: &Project,
    note: Option<&str>,
    deployer: &str,
) -> Result<DeployReport, EngineError> {
    let mut report = DeployReport {
        granted: grant_deletes(host, project, deployer).await?,
        ..DeployReport::default()
    };
    let now = chrono::Utc::now().to_rfc3339();
    for def in &project.syncs {
        let deployed = DeployedSync {
            connections: connections_of(project, def)?,
            config_hash: def.config_hash(),
            def: def.clone(),
            deployed_at: now.clone(),
        };
        host.config.put(&deployed).await?;
        host.engine(&deployed)
            .runs
            .record_version(def, note, Some(deployer))
            .await?;
        report.deployed.push(def.name.clone());
    }
    Ok(report)
}

/// Deploys every sync of `project` as `deployer` (an IAM ARN, recorded with each version):
/// definitions, one schedule per scheduled sync, one rule per upstream trigger; removes
/// deployed syncs the project no longer has.
pub async fn deploy(
    host: &AwsHost,
    project: &Project,
    note: Option<&str>,
    deployer: &str,
) -> Result<DeployReport, EngineError> {
    let mut report = write_definitions(host, project, note, deployer).await?;
    for def in &project.syncs {
        match &def.schedule {
            Some(expr) => {
                put_schedule(host, def, expr).await?;
                report.schedules.push(def.name.clone());
            }
            None => delete_schedule(host, &def.name).await?,
        }
        report.rules.extend(put_rules(host, def).await?);
    }
    for old in host.config.list().await? {
        if project.syncs.iter().any(|s| s.name == old.def.name) {
            continue;
        }
        delete_schedule(host, &old.def.name).await?;
        for rule in rules_of(host, &old.def.name).await? {
            delete_rule(host, &rule).await?;
        }
        host.config.delete(&old.def.name).await?;
        report.removed.push(old.def.name);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::rule_name;

    #[test]
    fn rule_names_fit_eventbridge_limits() {
        assert_eq!(rule_name("retl", "contacts", 0), "retl-trigger-contacts-0");
        let long = rule_name("retl-production", &"x".repeat(60), 3);
        assert!(long.len() <= 64, "{long}");
    }
}
