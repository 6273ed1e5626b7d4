//! What template.yaml declares for approvals, created from template.yaml itself on a moto whose
//! other resources a test makes by hand: the approval-tokens table, the approvals topic and the
//! approval runbook (`infra/local/offline_stack.py --only`), plus IAM users who approve by
//! signing in (the console path); and following an automation execution until its approval
//! step is decided.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use retl_shared::aws_host::{Automation, AutomationExecution};
use serde::Deserialize;

use crate::aws_stack::{ACCOUNT, REGION};
use crate::moto::offline_stack;

/// The approval resources of template.yaml, by logical id.
pub const APPROVAL_RESOURCES: &str = "ApprovalTokensTable,ApprovalsTopic,ApprovalRunbook";

/// The identity moto gives the tests' default credentials (`test`/`test`): the CLI's caller.
pub const DEFAULT_CALLER: &str = "arn:aws:sts::123456789012:user/moto";

/// An IAM user who signs in to approve.
pub struct Approver {
    /// Its ARN, as Systems Manager records it.
    pub arn: String,
    /// SDK configuration with its credentials.
    pub sdk: SdkConfig,
}

#[derive(Deserialize)]
struct User {
    arn: String,
    access_key_id: String,
    secret_access_key: String,
}

#[derive(Deserialize)]
struct Created {
    users: BTreeMap<String, User>,
}

/// The ARN of the IAM user `name` in the test account.
pub fn user_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{name}")
}

/// Creates the approval resources of stack `stack` on the moto at `endpoint`, with
/// `approvers` as the template's Approvers, and the IAM users `users`.
pub async fn create_approval_resources(
    endpoint: &str,
    stack: &str,
    approvers: &[&str],
    users: &[&str],
) -> BTreeMap<String, Approver> {
    create_from_template(
        endpoint,
        stack,
        &[APPROVAL_RESOURCES],
        approvers,
        &[],
        users,
    )
    .await
}

/// Creates the resources `logical` (comma-separated logical ids of template.yaml) of stack
/// `stack` on the moto at `endpoint`, as the template declares them, with `approvers` as the
/// template's Approvers and `params` (`Name=Value`) as its other parameters, and the IAM
/// users `users`, who sign in.
pub async fn create_from_template(
    endpoint: &str,
    stack: &str,
    logical: &[&str],
    approvers: &[&str],
    params: &[&str],
    users: &[&str],
) -> BTreeMap<String, Approver> {
    let approvers = format!("Approvers={}", approvers.join(","));
    let only = logical.join(",");
    let mut args = vec![
        "--stack",
        stack,
        "--no-enforce",
        "--only",
        &only,
        "--param",
        &approvers,
    ];
    for param in params {
        args.extend(["--param", param]);
    }
    for user in users {
        args.extend(["--user", user]);
    }
    let created: Created = offline_stack(endpoint, &args, "resources of template.yaml");
    let mut approvers = BTreeMap::new();
    for (name, user) in created.users {
        let creds = Credentials::new(
            &user.access_key_id,
            &user.secret_access_key,
            None,
            None,
            "approver",
        );
        let sdk = retl_shared::aws_http::sdk_defaults()
            .region(Region::new(REGION))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .load()
            .await;
        approvers.insert(name, Approver { arn: user.arn, sdk });
    }
    approvers
}

/// The automation execution `id` once its approval step is no longer waiting.
pub async fn decided(automation: &Automation, id: &str) -> AutomationExecution {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let execution = automation
            .get(id)
            .await
            .expect("read the automation execution");
        let approve = execution
            .step_executions
            .iter()
            .find(|s| s.action == "aws:approve");
        if approve.is_some_and(|s| {
            !matches!(s.step_status.as_str(), "Waiting" | "InProgress" | "Pending")
        }) {
            return execution;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} is still undecided: {execution:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
