//! Clients built once per process, and an engine per deployed sync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::SdkConfig;

use super::automation::Automation;
use super::config_table::{ConfigTable, DeployedSync};
use super::names::StackNames;
use super::safety_grants::{self, SafetyGrants};
use crate::adapters::aws::{
    AwsClients, DynamoKeySetStore, DynamoRunStore, S3ObjectStore, SecretsManagerSecrets,
    SnsNotifier,
};
use crate::connectors::ConnectionConfig;
use crate::engine::{Engine, EngineError, NoProgress};
use crate::ports::{SecretError, Secrets};

/// Everything a Lambda function (or `retl ... --aws`) needs to reach a deployed stack.
#[derive(Clone)]
pub struct AwsHost {
    /// Resource names.
    pub names: StackNames,
    /// The adapters' clients.
    pub clients: AwsClients,
    /// Step Functions (start executions, task tokens).
    pub sfn: aws_sdk_sfn::Client,
    /// EventBridge (run-completed events, upstream trigger rules).
    pub events: aws_sdk_eventbridge::Client,
    /// EventBridge Scheduler (one schedule per sync, approval reminders).
    pub scheduler: aws_sdk_scheduler::Client,
    /// Systems Manager Automation (approval requests).
    pub automation: Automation,
    /// Deployed sync definitions.
    pub config: ConfigTable,
    /// Who allowed each deleting sync its mode and thresholds.
    pub grants: SafetyGrants,
    secrets: Arc<SecretsManagerSecrets>,
    /// The endpoint the clients were configured with (moto, LocalStack), which warehouses
    /// then write exports to.
    endpoint: Option<String>,
}

impl AwsHost {
    /// A host for the stack `names`, with clients from `sdk`.
    pub fn new(sdk: &SdkConfig, names: StackNames) -> Self {
        let clients = AwsClients::new(sdk);
        let secrets = Arc::new(SecretsManagerSecrets::new(
            clients.secrets.clone(),
            names.secret_prefix.clone(),
        ));
        AwsHost {
            config: ConfigTable::new(clients.dynamodb.clone(), names.config_table.clone()),
            grants: SafetyGrants::new(clients.dynamodb.clone(), names.safety_grants_table.clone()),
            sfn: aws_sdk_sfn::Client::new(sdk),
            events: aws_sdk_eventbridge::Client::new(sdk),
            scheduler: aws_sdk_scheduler::Client::new(sdk),
            automation: Automation::new(sdk),
            clients,
            secrets,
            endpoint: sdk.endpoint_url().map(str::to_string),
            names,
        }
    }

    /// The host a Lambda function runs in: names from `RETL_*`, clients from the environment.
    pub async fn from_lambda_env() -> Result<Self, String> {
        let names = StackNames::from_env()?;
        let sdk = crate::aws_http::sdk_defaults().load().await;
        Ok(Self::new(&sdk, names))
    }

    /// The stack's run store.
    pub fn runs(&self) -> Arc<DynamoRunStore> {
        Arc::new(DynamoRunStore::new(
            self.clients.dynamodb.clone(),
            self.names.runs_table.clone(),
        ))
    }

    /// The stack's object store.
    pub fn objects(&self) -> Arc<S3ObjectStore> {
        Arc::new(
            S3ObjectStore::new(self.clients.s3.clone(), self.names.bucket.clone(), "")
                .with_export_endpoint(self.endpoint.as_deref()),
        )
    }

    /// An engine wired to the stack's stores, with the deployed sync's connections.
    pub fn engine(&self, deployed: &DeployedSync) -> Engine {
        self.engine_with(deployed.connections.clone())
    }

    fn engine_with(&self, connections: BTreeMap<String, ConnectionConfig>) -> Engine {
        let runs = self.runs();
        Engine {
            objects: self.objects(),
            keysets: Arc::new(DynamoKeySetStore::new(
                self.clients.dynamodb.clone(),
                self.names.keyset_table.clone(),
            )),
            runs,
            secrets: self.secrets.clone(),
            notifier: Arc::new(SnsNotifier::new(
                self.clients.sns.clone(),
                self.names.topic_arn.clone(),
            )),
            connections,
            root: PathBuf::from("/tmp"),
            owner: format!("aws:{}", self.names.stack),
            progress: Arc::new(NoProgress),
            opened: Default::default(),
            rate_share: 1,
        }
    }

    /// An engine for reading runs, versions and record logs (no connections).
    pub fn reader(&self) -> Engine {
        self.engine_with(BTreeMap::new())
    }

    /// The secret `name` (under the stack's prefix), cached as connection secrets are.
    pub async fn secret(&self, name: &str) -> Result<String, SecretError> {
        self.secrets.get(name).await
    }

    /// The deployed sync named `sync` and an engine for it; refused when its mode deletes
    /// records and no safety grant covers it, so no step of a run starts or writes under a
    /// definition that only the config table's writers approved.
    pub async fn load(&self, sync: &str) -> Result<(DeployedSync, Engine), EngineError> {
        let deployed = self.config.get(sync).await?;
        if safety_grants::needs_grant(&deployed.def) {
            let grant = self.grants.get(sync).await?;
            safety_grants::check(&deployed.def, grant.as_ref())?;
        }
        let engine = self.engine(&deployed);
        Ok((deployed, engine))
    }
}
