//! Creating the stack on moto, and deploying syncs to it.

use std::sync::Arc;

use aws_config::SdkConfig;
use retl_shared::aws_host::{deploy, AwsHost, StackNames};
use retl_shared::config::load_project;
use retl_tests::approvals::{create_approval_resources, DEFAULT_CALLER};
use retl_tests::moto::{
    create_bucket, create_keyset_table, create_runs_table, create_safety_grants_table, Moto,
};
use retl_tests::Pg;
use serde_json::json;

use crate::{ACCOUNT, REGION};

/// The IAM ARN the handler tests deploy as (recorded with each config version).
pub const DEPLOYER: &str = "arn:aws:iam::123456789012:user/handler-test";

/// A stack on a moto server (its own, or shared with the stacks created [`TestStack::beside`]
/// it), with its own PostgreSQL schema.
pub struct TestStack {
    /// The host, as a function builds it from its environment.
    pub host: AwsHost,
    /// SDK configuration pointing at moto.
    pub sdk: SdkConfig,
    /// The warehouse and destination database (the test's schema).
    pub pg: Pg,
    /// The queue the stand-in state machine posts task tokens to.
    pub(crate) tokens_queue: String,
    project: tempfile::TempDir,
    /// Killed when the last stack on it is dropped.
    pub moto: Arc<Moto>,
}

/// The stand-in for the sync state machine: one task waiting on a token sent to `queue`.
fn waiting_definition(queue_url: &str) -> String {
    json!({
        "StartAt": "WaitForToken",
        "States": {
            "WaitForToken": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageBody": {"run_id.$": "$.run_id", "task_token.$": "$$.Task.Token"}
                },
                "End": true
            }
        }
    })
    .to_string()
}

impl TestStack {
    /// Creates the stack `name` (also the PostgreSQL schema's stem: letters, digits and `_`)
    /// on its own moto and stores the warehouse URL as the secret `PG_URL`.
    pub async fn start(name: &str) -> TestStack {
        Self::on(Arc::new(Moto::start()), name).await
    }

    /// Creates another stack `name` in the same account, on this stack's moto: the two share
    /// EventBridge, Step Functions and Secrets Manager as two stacks in one account do.
    pub async fn beside(&self, name: &str) -> TestStack {
        Self::on(self.moto.clone(), name).await
    }

    async fn on(moto: Arc<Moto>, name: &str) -> TestStack {
        let sdk = moto.sdk_config().await;
        let stack = name.replace('_', "-");
        let mut names = StackNames::derive(&stack, ACCOUNT, REGION);
        // The stack's own secret prefix (the template's SecretPrefix), so each stack beside
        // another on one moto reads its own PG_URL.
        names.secret_prefix = format!("{stack}/");
        let host = AwsHost::new(&sdk, names.clone());
        create_bucket(&host.clients, &names.bucket).await;
        create_keyset_table(&host.clients, &names.keyset_table).await;
        create_runs_table(&host.clients, &names.runs_table).await;
        create_runs_table(&host.clients, &names.config_table).await;
        create_safety_grants_table(&host.clients, &names.safety_grants_table).await;
        let topic = host
            .clients
            .sns
            .create_topic()
            .name(format!("{stack}-alerts"));
        let topic = topic.send().await.expect("create the alerts topic");
        assert_eq!(topic.topic_arn(), Some(names.topic_arn.as_str()));
        let group = host.scheduler.create_schedule_group().name(&stack);
        group.send().await.expect("create the schedule group");
        // The approval runbook of template.yaml, its topic and the tokens table; the tests'
        // own identity approves. (No Lambda service runs here: the runbook's last step fails
        // to reach the approval function, so a test hands the decision to it itself.)
        create_approval_resources(&moto.endpoint, &stack, &[DEFAULT_CALLER], &[]).await;
        let bus = host.events.create_event_bus().name(&names.event_bus);
        bus.send().await.expect("create the stack's event bus");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue = sqs.create_queue().queue_name(format!("{stack}-tokens"));
        let queue = queue.send().await.expect("create the token queue");
        let tokens_queue = queue.queue_url().expect("a queue URL").to_string();
        let created = host
            .sfn
            .create_state_machine()
            .name(format!("{stack}-sync"))
            .definition(waiting_definition(&tokens_queue))
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{stack}-states"))
            .send()
            .await
            .expect("moto accepts the stand-in state machine");
        assert_eq!(created.state_machine_arn(), names.state_machine_arn);
        let pg = Pg::new(name).await;
        let secret = host.clients.secrets.create_secret();
        let secret = secret.name(format!("{}PG_URL", names.secret_prefix));
        secret
            .secret_string(&pg.url)
            .send()
            .await
            .expect("store PG_URL");
        TestStack {
            host,
            sdk,
            pg,
            tokens_queue,
            project: tempfile::tempdir().expect("a project folder"),
            moto,
        }
    }

    /// Creates `<name>_model` (the model's rows: `ids`) and `<name>_dest` (already holding
    /// `existing`) in the test schema.
    pub async fn tables(&self, name: &str, ids: &[i64], existing: &[i64]) {
        self.pg
            .exec(&format!(
                "CREATE TABLE {name}_model (id integer, name text);
                 CREATE TABLE {name}_dest (id integer PRIMARY KEY, name text NOT NULL);"
            ))
            .await;
        for id in ids {
            let row = format!("INSERT INTO {name}_model VALUES ({id}, 'person {id}')");
            self.pg.exec(&row).await;
        }
        for id in existing {
            let row = format!("INSERT INTO {name}_dest VALUES ({id}, 'old {id}')");
            self.pg.exec(&row).await;
        }
    }

    /// Deploys syncs `(name, mode, extra YAML)`, as [`DEPLOYER`], reading `<name>_model` into `<name>_dest`,
    /// with `retl deploy --aws`'s code: config table, versions, schedules, trigger rules.
    pub async fn deploy(&self, syncs: &[(&str, &str, &str)]) {
        let dir = self.project.path();
        std::fs::create_dir_all(dir.join("syncs")).expect("syncs folder");
        std::fs::write(
            dir.join("retl.yaml"),
            "connections:\n  wh: { type: postgres, url_env: PG_URL }\n  app_db: { type: postgres, url_env: PG_URL }\n",
        )
        .expect("write retl.yaml");
        for (name, mode, extra) in syncs {
            let sync = format!(
                "name: {name}\nsource: {{ connection: wh, sql: \"select id, name from {model}\" }}\n\
                 primary_key: id\ndestination: {{ connection: app_db, object: {dest} }}\n\
                 mapping: {{ id: id, name: name }}\nmode: {mode}\n{extra}",
                model = self.pg.table(&format!("{name}_model")),
                dest = self.pg.table(&format!("{name}_dest")),
            );
            std::fs::write(dir.join(format!("syncs/{name}.yaml")), sync).expect("write a sync");
        }
        let project = load_project(dir).unwrap_or_else(|e| panic!("the test project: {e}"));
        deploy(&self.host, &project, Some("handler test"), DEPLOYER)
            .await
            .unwrap_or_else(|e| panic!("deploy: {e}"));
    }

    /// Stores the secret `name` under the stack's prefix.
    pub async fn put_secret(&self, name: &str, value: &str) {
        let prefix = &self.host.names.secret_prefix;
        let secret = self.host.clients.secrets.create_secret();
        let secret = secret.name(format!("{prefix}{name}")).secret_string(value);
        secret.send().await.expect("store a secret");
    }

    /// The stack's name.
    pub fn name(&self) -> &str {
        &self.host.names.stack
    }
}
