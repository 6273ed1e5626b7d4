//! A local Lambda service for the real function binaries: the Invoke API (what moto's Step
//! Functions interpreter calls through the bridge, and what tests call to invoke a function)
//! in front of one Runtime API per function, served to processes of the compiled binary
//! (`target/<profile>/retl-functions`, with `RETL_FUNCTION` naming the function as the
//! template sets it), exactly as the Lambda service runs a `provided.al2023` function: the
//! binary long-polls `/runtime/invocation/next` and posts the response or error.
//!
//! It can kill a function process in the middle of an invocation (a crash), which Lambda
//! reports as `Runtime.ExitError`, and start a fresh process in its place.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, Notify};

/// One queued invocation.
struct Invocation {
    id: String,
    payload: Bytes,
    reply: oneshot::Sender<Result<Bytes, Bytes>>,
}

/// A function: its queue, the invocations in flight, its processes.
struct Function {
    name: String,
    binary: PathBuf,
    runtime_api: String,
    instances: usize,
    own_env: Vec<(String, String)>,
    env: Mutex<Vec<(String, String)>>,
    queue: Mutex<VecDeque<Invocation>>,
    ready: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Bytes, Bytes>>>>,
    processes: Mutex<HashMap<u32, Child>>,
    crash_next: Mutex<Option<Duration>>,
    invocations: Mutex<u64>,
}

/// A function to serve: name, binary, its own environment, processes (its concurrency).
pub struct FunctionSpec {
    /// Function name (the last part of its ARN).
    pub name: String,
    /// The compiled binary.
    pub binary: PathBuf,
    /// Variables this function alone gets, as the template's per-function `Environment`.
    pub env: Vec<(String, String)>,
    /// Processes serving it at once.
    pub instances: usize,
}

/// The running service.
pub struct LambdaService {
    /// Base URL of the Invoke API (`POST /2015-03-31/functions/{name}/invocations`).
    pub endpoint: String,
    functions: Arc<HashMap<String, Arc<Function>>>,
}

impl Function {
    async fn spawn(self: &Arc<Self>) {
        let mut cmd = Command::new(&self.binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", &self.runtime_api)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .envs(self.env.lock().unwrap().clone())
            .envs(self.own_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let pid = child.id().expect("a started process has a pid");
        self.processes.lock().unwrap().insert(pid, child);
    }
}

fn runtime_headers(id: &str, function: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let deadline = (std::time::SystemTime::now() + Duration::from_secs(900))
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        h.insert(k, HeaderValue::from_str(&v).expect("ascii header"));
    };
    set(&mut h, "lambda-runtime-aws-request-id", id.to_string());
    set(&mut h, "lambda-runtime-deadline-ms", deadline.to_string());
    set(
        &mut h,
        "lambda-runtime-invoked-function-arn",
        format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
    );
    set(
        &mut h,
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{id}"),
    );
    h
}

/// `GET /2018-06-01/runtime/invocation/next`: hands the next invocation to a process.
async fn next(State(f): State<Arc<Function>>) -> Response {
    loop {
        let notified = f.ready.notified();
        let item = f.queue.lock().unwrap().pop_front();
        if let Some(inv) = item {
            f.in_flight
                .lock()
                .unwrap()
                .insert(inv.id.clone(), inv.reply);
            let crash = f.crash_next.lock().unwrap().take();
            if let Some(after) = crash {
                let func = Arc::clone(&f);
                let id = inv.id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    func.crash(&id).await;
                });
            }
            return (
                StatusCode::OK,
                runtime_headers(&inv.id, &f.name),
                inv.payload,
            )
                .into_response();
        }
        notified.await;
    }
}

impl Function {
    /// Kills every process of the function (the one running `id` among them) and reports the
    /// invocation as Lambda reports a crashed runtime, then starts fresh processes.
    async fn crash(self: &Arc<Self>, id: &str) {
        let children: Vec<Child> = self
            .processes
            .lock()
            .unwrap()
            .drain()
            .map(|(_, c)| c)
            .collect();
        let n = children.len();
        for mut c in children {
            let _ = c.kill().await;
        }
        let pending: Vec<_> = self.in_flight.lock().unwrap().drain().collect();
        for (pending_id, reply) in pending {
            let body = if pending_id == id {
                r#"{"errorType":"Runtime.ExitError","errorMessage":"RequestId: crashed: Runtime exited with error: signal: killed"}"#
            } else {
                r#"{"errorType":"Runtime.ExitError","errorMessage":"the process serving this invocation was killed"}"#
            };
            let _ = reply.send(Err(Bytes::from_static(body.as_bytes())));
        }
        for _ in 0..n.max(1) {
            self.spawn().await;
        }
    }
}

async fn respond(
    State(f): State<Arc<Function>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    if let Some(reply) = f.in_flight.lock().unwrap().remove(&id) {
        let _ = reply.send(Ok(body));
    }
    StatusCode::ACCEPTED
}

async fn error(
    State(f): State<Arc<Function>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    if let Some(reply) = f.in_flight.lock().unwrap().remove(&id) {
        let _ = reply.send(Err(body));
    }
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("lambda init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

/// `POST /2015-03-31/functions/{name}/invocations`.
async fn invoke(
    State(fns): State<Arc<HashMap<String, Arc<Function>>>>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Response {
    let name = name.rsplit(':').next().unwrap_or(&name).to_string();
    let Some(f) = fns.get(&name) else {
        return (
            StatusCode::NOT_FOUND,
            format!(r#"{{"Message":"Function not found: {name}"}}"#),
        )
            .into_response();
    };
    let (tx, rx) = oneshot::channel();
    let id = {
        let mut n = f.invocations.lock().unwrap();
        *n += 1;
        format!("{name}-{n}")
    };
    f.queue.lock().unwrap().push_back(Invocation {
        id,
        payload: if body.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            body
        },
        reply: tx,
    });
    f.ready.notify_one();
    match rx.await {
        Ok(Ok(out)) => (StatusCode::OK, out).into_response(),
        Ok(Err(err)) => {
            let mut resp = (StatusCode::OK, err).into_response();
            resp.headers_mut().insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            resp
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the invocation was dropped",
        )
            .into_response(),
    }
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    (listener, addr)
}

fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
}

/// The directory of the workspace's binaries (next to the test's `deps/`).
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

impl LambdaService {
    /// Serves the Invoke API and each function's Runtime API; no process runs until
    /// [`LambdaService::launch`], so the endpoint can be handed to moto first.
    pub async fn new(specs: Vec<FunctionSpec>) -> Self {
        let mut fns = HashMap::new();
        for spec in specs {
            assert!(
                spec.binary.is_file(),
                "{} is missing: build the functions first (`cargo build -p retl-functions`; \
                 the README's test command builds it)",
                spec.binary.display()
            );
            // Each function has its own Runtime API address, as each Lambda sandbox has.
            let (listener, addr) = bind().await;
            let f = Arc::new(Function {
                name: spec.name.clone(),
                binary: spec.binary.clone(),
                runtime_api: addr,
                instances: spec.instances.max(1),
                own_env: spec.env,
                env: Mutex::new(Vec::new()),
                queue: Mutex::new(VecDeque::new()),
                ready: Notify::new(),
                in_flight: Mutex::new(HashMap::new()),
                processes: Mutex::new(HashMap::new()),
                crash_next: Mutex::new(None),
                invocations: Mutex::new(0),
            });
            let router = Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next))
                .route(
                    "/2018-06-01/runtime/invocation/{id}/response",
                    post(respond),
                )
                .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
                .route("/2018-06-01/runtime/init/error", post(init_error))
                .with_state(Arc::clone(&f));
            serve(listener, router);
            fns.insert(spec.name, f);
        }
        let fns = Arc::new(fns);
        let (listener, addr) = bind().await;
        let router = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(Arc::clone(&fns));
        serve(listener, router);
        LambdaService {
            endpoint: format!("http://{addr}"),
            functions: fns,
        }
    }

    /// Starts every function's processes with `env` (on top of the Lambda runtime variables).
    pub async fn launch(&self, env: Vec<(String, String)>) {
        for f in self.functions.values() {
            *f.env.lock().unwrap() = env.clone();
            for _ in 0..f.instances {
                f.spawn().await;
            }
        }
    }

    /// The next invocation of `function` crashes its process after `after`.
    pub fn crash_next_invocation(&self, function: &str, after: Duration) {
        let f = self.functions.get(function).expect("a served function");
        *f.crash_next.lock().unwrap() = Some(after);
    }

    /// Invocations `function` received so far.
    pub fn invocations(&self, function: &str) -> u64 {
        self.functions
            .get(function)
            .map_or(0, |f| *f.invocations.lock().unwrap())
    }

    /// Invokes `function` as the Lambda Invoke API does; `Err` holds a function error body.
    pub async fn invoke(
        &self,
        function: &str,
        payload: &serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Value> {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.endpoint
            ))
            .json(payload)
            .send()
            .await
            .expect("the Lambda service answers");
        let failed = resp.headers().contains_key("x-amz-function-error");
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if failed {
            Err(body)
        } else {
            Ok(body)
        }
    }
}
