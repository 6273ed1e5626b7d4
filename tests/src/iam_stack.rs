//! The stack created from `template.yaml` itself on moto with IAM enforced: SAM translated to
//! CloudFormation by aws-sam-translator, then the roles and policies, tables, bucket, key,
//! topic and state machine created as the translated template declares them
//! (`infra/local/offline_stack.py`), and one host per Lambda function holding credentials of
//! that function's own role. A permission missing from the template fails the function's call
//! with `AccessDenied`, as in AWS.

use std::collections::BTreeMap;

use aws_config::{Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use retl_shared::aws_host::{AwsHost, StackNames};
use serde::Deserialize;

use crate::approvals::user_arn;
use crate::aws_stack::{ACCOUNT, REGION};
use crate::moto::{offline_stack, Moto};

/// Credentials moto issued: an IAM user's access key, or an assumed role's session.
#[derive(Debug, Clone, Deserialize)]
struct Issued {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
}

/// An operator's IAM user: its ARN and access key.
#[derive(Debug, Deserialize)]
struct Operator {
    arn: String,
    #[serde(flatten)]
    issued: Issued,
}

#[derive(Debug, Deserialize)]
struct Created {
    admin: Issued,
    functions: BTreeMap<String, Issued>,
    policy_users: BTreeMap<String, Operator>,
    resources: BTreeMap<String, Option<String>>,
}

/// The operators every stack has, each an IAM user holding only the template's managed
/// policies named: a deployer, and a lead who may also let syncs delete.
const OPERATORS: &[(&str, &str)] = &[
    ("deployer", "DeployerPolicy"),
    ("lead", "DeployerPolicy,SafetyDeployerPolicy"),
];

/// A stack created from template.yaml, IAM enforced.
pub struct IamStack {
    /// The resources' names, as the functions derive them.
    pub names: StackNames,
    /// A host allowed everything (setup and assertions: an `admin` IAM user).
    pub admin: AwsHost,
    /// SDK configuration of the admin.
    pub admin_sdk: SdkConfig,
    functions: BTreeMap<String, AwsHost>,
    operators: BTreeMap<String, (String, AwsHost)>,
    resources: BTreeMap<String, Option<String>>,
    /// Killed when the stack is dropped.
    pub moto: Moto,
}

async fn sdk(endpoint: &str, issued: &Issued) -> SdkConfig {
    let creds = Credentials::new(
        &issued.access_key_id,
        &issued.secret_access_key,
        issued.session_token.clone(),
        None,
        "offline-stack",
    );
    retl_shared::aws_http::sdk_defaults()
        .region(Region::new(REGION))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .load()
        .await
}

impl IamStack {
    /// Creates the stack `stack` from template.yaml with `without` (`Function=action`, e.g.
    /// `TriggerFunction=dynamodb:BatchWriteItem`) removed from the functions' policies. IAM
    /// is not enforced until [`IamStack::enforce`]: deploying needs EventBridge Scheduler,
    /// whose request signatures moto 5.2.5 recomputes wrongly (SignatureDoesNotMatch), and
    /// deploying is the operator's job, not a function's.
    pub async fn start(stack: &str, without: &[&str]) -> IamStack {
        let moto = Moto::start_with_env(&[
            // Counted from the start, then set to 0 by `enforce` once the stack exists.
            ("INITIAL_NO_AUTH_ACTION_COUNT", "1000000"),
            // The roles attach AWSLambdaBasicExecutionRole and AWSXrayWriteOnlyAccess.
            ("MOTO_IAM_LOAD_MANAGED_POLICIES", "true"),
            // Executions are not run: the handlers are called directly, each with its role.
            ("MOTO_BRIDGE_EXECUTE_SFN", "0"),
            ("MOTO_BRIDGE_LOG", "0"),
        ]);
        // The approvers of runs stopped for approval: the admin user.
        let approvers = format!("Approvers={}", user_arn("admin"));
        let mut args = vec!["--stack", stack, "--no-enforce", "--param", &approvers];
        for w in without {
            args.extend(["--without", w]);
        }
        let operators: Vec<String> = OPERATORS.iter().map(|(u, p)| format!("{u}={p}")).collect();
        for o in &operators {
            args.extend(["--policy-user", o]);
        }
        let created: Created = offline_stack(&moto.endpoint, &args, "the stack");
        let names = StackNames::derive(stack, ACCOUNT, REGION);
        let admin_sdk = sdk(&moto.endpoint, &created.admin).await;
        let mut functions = BTreeMap::new();
        for (name, issued) in &created.functions {
            let host = AwsHost::new(&sdk(&moto.endpoint, issued).await, names.clone());
            functions.insert(name.clone(), host);
        }
        let mut operators = BTreeMap::new();
        for (name, op) in &created.policy_users {
            let host = AwsHost::new(&sdk(&moto.endpoint, &op.issued).await, names.clone());
            operators.insert(name.clone(), (op.arn.clone(), host));
        }
        IamStack {
            admin: AwsHost::new(&admin_sdk, names.clone()),
            operators,
            admin_sdk,
            names,
            functions,
            resources: created.resources,
            moto,
        }
    }

    /// Turns moto's IAM enforcement on: every later request is checked against the policies of
    /// the credentials that signed it.
    pub async fn enforce(&self) {
        let resp = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.moto.endpoint))
            .header("content-type", "text/plain")
            .body("0")
            .send()
            .await
            .expect("moto answers /moto-api/reset-auth");
        assert!(
            resp.status().is_success(),
            "moto did not turn IAM enforcement on: {}",
            resp.status()
        );
    }

    /// The host of the function `name` (as RETL_FUNCTION names it), with its role's credentials.
    pub fn function(&self, name: &str) -> &AwsHost {
        self.functions
            .get(name)
            .unwrap_or_else(|| panic!("template.yaml declares no function {name}"))
    }

    /// The operator `name` of [`OPERATORS`] (`deployer`, `lead`): its IAM ARN and a host with
    /// its credentials.
    pub fn operator(&self, name: &str) -> (&str, &AwsHost) {
        let (arn, host) = self
            .operators
            .get(name)
            .unwrap_or_else(|| panic!("the stack has no operator {name}"));
        (arn, host)
    }

    /// The physical name of the template's resource `logical`.
    pub fn resource(&self, logical: &str) -> &str {
        match self.resources.get(logical) {
            Some(Some(name)) => name,
            _ => panic!("template.yaml declares no resource {logical}"),
        }
    }

    /// The functions template.yaml declares, by RETL_FUNCTION.
    pub fn function_names(&self) -> Vec<&str> {
        self.functions.keys().map(String::as_str).collect()
    }
}
