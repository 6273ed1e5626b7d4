//! Systems Manager Automation, the three operations retl calls: start the approval runbook
//! (`StartAutomationExecution`), read an execution and who decided (`GetAutomationExecution`),
//! and approve or reject as the caller (`SendAutomationSignal`). Each is one SigV4-signed
//! JSON request (the `AmazonSSM.*` protocol) with the SDK configuration's credentials, region
//! and endpoint (`AWS_ENDPOINT_URL` included), so the build needs no SSM SDK crate.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde::Deserialize;
use serde_json::{json, Value};

/// A Systems Manager client for Automation executions.
#[derive(Clone)]
pub struct Automation {
    http: reqwest::Client,
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    endpoint: String,
}

/// One execution, as `GetAutomationExecution` describes it (the fields retl reads).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AutomationExecution {
    /// Its id.
    pub automation_execution_id: String,
    /// The runbook it runs.
    pub document_name: String,
    /// `Pending`, `InProgress`, `Waiting`, `Success`, `TimedOut`, `Cancelled`, `Failed`, ...
    pub automation_execution_status: String,
    /// The parameters it was started with.
    #[serde(default)]
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Its steps so far.
    #[serde(default)]
    pub step_executions: Vec<StepExecution>,
}

/// One step of an execution.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepExecution {
    /// Its name in the runbook.
    pub step_name: String,
    /// Its action (`aws:approve`, ...).
    pub action: String,
    /// `Pending`, `InProgress`, `Waiting`, `Success`, `TimedOut`, `Cancelled`, `Failed`, ...
    pub step_status: String,
    /// What it output (`aws:approve`: `ApprovalStatus`, `ApproverDecisions`).
    #[serde(default)]
    pub outputs: BTreeMap<String, Vec<String>>,
}

impl Automation {
    /// A client with the credentials, region and endpoint of `sdk`.
    pub fn new(sdk: &SdkConfig) -> Self {
        let region = sdk
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
        let endpoint = sdk
            .endpoint_url()
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://ssm.{region}.amazonaws.com"));
        Automation {
            http: reqwest::Client::new(),
            credentials: sdk.credentials_provider(),
            region,
            endpoint,
        }
    }

    /// Starts `document` with `parameters` (name, value); returns the execution's id.
    pub async fn start(
        &self,
        document: &str,
        parameters: &[(&str, &str)],
    ) -> Result<String, String> {
        let params: serde_json::Map<String, Value> = parameters
            .iter()
            .map(|(k, v)| (k.to_string(), json!([v])))
            .collect();
        let body = json!({"DocumentName": document, "Parameters": params});
        let answer = self
            .call("AmazonSSM.StartAutomationExecution", &body)
            .await?;
        answer["AutomationExecutionId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("Systems Manager answered without an execution id: {answer}"))
    }

    /// The execution `id`.
    pub async fn get(&self, id: &str) -> Result<AutomationExecution, String> {
        let body = json!({"AutomationExecutionId": id});
        let answer = self.call("AmazonSSM.GetAutomationExecution", &body).await?;
        serde_json::from_value(answer["AutomationExecution"].clone())
            .map_err(|e| format!("unexpected GetAutomationExecution answer: {e}"))
    }

    /// Approves (or rejects) the execution `id`'s waiting approval step as the caller, with
    /// `comment`.
    pub async fn signal(
        &self,
        id: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<(), String> {
        let mut body = json!({
            "AutomationExecutionId": id,
            "SignalType": if approve { "Approve" } else { "Reject" },
        });
        if let Some(comment) = comment {
            body["Payload"] = json!({"Comment": [comment]});
        }
        self.call("AmazonSSM.SendAutomationSignal", &body)
            .await
            .map(|_| ())
    }

    /// Cancels the execution `id` (its approval step stops asking); an execution that has
    /// already ended is left as it is.
    pub async fn stop(&self, id: &str) -> Result<(), String> {
        let body = json!({"AutomationExecutionId": id, "Type": "Cancel"});
        match self.call("AmazonSSM.StopAutomationExecution", &body).await {
            Err(e) if e.contains("InvalidAutomationStatusUpdateException") => Ok(()),
            done => done.map(|_| ()),
        }
    }

    async fn call(&self, target: &str, body: &Value) -> Result<Value, String> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or("no AWS credentials are configured")?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?;
        let identity: Identity = credentials.into();
        let payload = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let url = format!("{}/", self.endpoint);
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ssm")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(&payload),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        let mut request = self.http.post(&url).body(payload.clone());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("Systems Manager is unreachable at {}: {e}", self.endpoint))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let code = answer["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .unwrap_or(&text);
        Err(format!("{target}: {code}: {message}"))
    }
}
