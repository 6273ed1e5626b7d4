//! A local AWS (moto) for the AWS adapters' tests: one server per test on a free loopback
//! port, started from the repository's launcher `infra/local/moto_bridge.py`, killed when the
//! test ends. No test ever reaches real AWS: every client built here points at the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_s3::config::Credentials;
use retl_shared::adapters::aws::AwsClients;

/// How long moto may take to answer after being started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const INSTALL_HINT: &str = "moto is needed for the AWS adapter tests: run \
    `bash infra/scripts/setup-dev.sh` (it creates .venv with \
    `pip install -r infra/local/requirements.txt`), or point RETL_PYTHON at a Python that has \
    moto[server] installed";

/// A running moto server.
pub struct Moto {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    child: Child,
    log: PathBuf,
}

/// The repository's root (where `infra/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `RETL_PYTHON`, else the repository's `.venv`, else `python3` from the PATH: the Python
/// that has moto and the repository's other tools (infra/local/requirements.txt).
pub fn python(repo: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("RETL_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo.join(".venv/bin/python");
    if venv.is_file() {
        return venv;
    }
    PathBuf::from("python3")
}

/// Creates resources of template.yaml on the moto at `endpoint` with
/// `infra/local/offline_stack.py` and `args` (stack name, parameters, users, ...), and returns
/// what it printed (the credentials and names it made); `what` names the resources in a failure.
pub fn offline_stack<T: serde::de::DeserializeOwned>(
    endpoint: &str,
    args: &[&str],
    what: &str,
) -> T {
    let repo = repo_root();
    let out = Command::new(python(&repo))
        .arg(repo.join("infra/local/offline_stack.py"))
        .arg(repo.join("template.yaml"))
        .args(["--endpoint", endpoint])
        .args(args)
        .output()
        .expect(
            "run infra/local/offline_stack.py (bash infra/scripts/setup-dev.sh installs its tools)",
        );
    assert!(
        out.status.success(),
        "creating {what} from template.yaml failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("offline_stack.py prints its JSON")
}

/// A port nobody listens on now. Another process could take it before moto binds it; the
/// start then fails loudly rather than talking to the wrong server.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether `GET /moto-api/` answers 200.
fn answers(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if conn.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Moto {
    /// Starts moto and waits until it answers. Panics, saying how to install moto, when it
    /// cannot be started.
    pub fn start() -> Moto {
        Self::start_with_env(&[])
    }

    /// [`Moto::start`] with extra environment variables for the server (the bridge's
    /// `MOTO_BRIDGE_*` settings).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let repo = repo_root();
        let python = python(&repo);
        let port = free_port();
        let log = std::env::temp_dir().join(format!("retl-moto-{}-{port}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("create the moto log file");
        let spawned = Command::new(&python)
            .arg(repo.join("infra/local/moto_bridge.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .current_dir(&repo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn();
        let child = spawned.unwrap_or_else(|e| {
            let _ = std::fs::remove_file(&log);
            panic!("cannot run {}: {e}. {INSTALL_HINT}", python.display())
        });
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto exited at start ({status}) using {}. {INSTALL_HINT}\n{}",
                    python.display(),
                    moto.log_tail()
                );
            }
            if answers(port) {
                return moto;
            }
            if Instant::now() > deadline {
                panic!(
                    "moto did not answer on {} within {START_TIMEOUT:?}. {INSTALL_HINT}\n{}",
                    moto.endpoint,
                    moto.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SDK configuration for this server.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint).await
    }

    /// The adapters' clients for this server.
    pub async fn clients(&self) -> AwsClients {
        AwsClients::new(&self.sdk_config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// SDK configuration for a local endpoint: us-east-1, static test credentials, `endpoint`.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    retl_shared::aws_http::sdk_defaults()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Creates an S3 bucket.
pub async fn create_bucket(clients: &AwsClients, bucket: &str) {
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

async fn create_table(clients: &AwsClients, table: &str, partition: &str, sort: Option<&str>) {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema element")
    };
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(partition))
        .key_schema(key(partition, KeyType::Hash));
    if let Some(sort) = sort {
        create = create
            .attribute_definitions(attr(sort))
            .key_schema(key(sort, KeyType::Range));
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {table}: {e:?}"));
}

/// Creates an on-demand key-set table (`ks`/`k`), as `DynamoKeySetStore` expects.
pub async fn create_keyset_table(clients: &AwsClients, table: &str) {
    create_table(clients, table, "ks", Some("k")).await;
}

/// Creates an on-demand run table (`pk`/`sk`), as `DynamoRunStore` expects.
pub async fn create_runs_table(clients: &AwsClients, table: &str) {
    create_table(clients, table, "pk", Some("sk")).await;
}

/// Creates an on-demand safety-grants table (`sync`), as template.yaml declares it.
pub async fn create_safety_grants_table(clients: &AwsClients, table: &str) {
    create_table(clients, table, "sync", None).await;
}

/// An SQS queue named `queue` subscribed to the topic `topic_arn`, so what SNS publishes can
/// be read back ([`sns_envelopes`]); its client and URL.
pub async fn subscribe_queue(
    sdk: &SdkConfig,
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    queue: &str,
) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let created = sqs
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .expect("create the queue");
    let queue_url = created.queue_url().expect("a queue URL").to_string();
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("the queue's attributes");
    let queue_arn = attrs.attributes().expect("attributes")
        [&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .expect("subscribe the queue to the topic");
    (sqs, queue_url)
}

/// The SNS envelopes (`Subject`, `Message`, `MessageAttributes`) that reached the queue,
/// waiting up to 10 s for `at_least`.
pub async fn sns_envelopes(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    at_least: usize,
) -> Vec<serde_json::Value> {
    let mut envelopes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while envelopes.len() < at_least && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the queue");
        for m in got.messages() {
            let body = m.body().expect("a message body");
            envelopes.push(serde_json::from_str(body).expect("an SNS envelope"));
        }
    }
    envelopes
}
