//! Fake of the BigQuery REST job API for what bqemulator does not do: jobs that are still
//! running when `jobs.query` answers (`jobComplete: false`), `jobs.getQueryResults` polled
//! until they complete, small result pages chained by `pageToken`, and `jobs.cancel`.
//! The result is generated (`id` INTEGER 1..=rows, `name` STRING `user <id>`), so the test
//! checks the protocol, not SQL.
//!
//! Contract followed (<https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/query>,
//! `.../jobs/getQueryResults`, `.../jobs/cancel`):
//! - `POST /bigquery/v2/projects/{project}/queries` with a `QueryRequest` answers a
//!   `QueryResponse`: `jobReference {projectId, jobId, location}` and `jobComplete`; a
//!   complete job adds `schema`, `totalRows`, `rows` (`[{"f": [{"v": "1"}, ...]}]`, every
//!   scalar a string) and `pageToken` when more rows follow. `dryRun: true` answers the
//!   schema without a job.
//! - `GET /bigquery/v2/projects/{project}/queries/{jobId}?maxResults=&pageToken=&timeoutMs=&location=`
//!   answers the same shape; a running job holds the request (up to `timeoutMs`, here at
//!   most [`MAX_HOLD`]) and answers `jobComplete: false`.
//! - `POST /bigquery/v2/projects/{project}/jobs/{jobId}/cancel?location=` answers
//!   `{"kind": "bigquery#jobCancelResponse", "job": {...}}`; a cancelled job's results are
//!   `400 stopped`, as a job that ended with an error.
//!
//! Choices where the reference is silent: a page holds at most [`BigQueryConfig::page_rows`]
//! rows whatever `maxResults` asks (BigQuery also caps pages by size); page tokens are the
//! offset of the next row.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::FakeServer;

/// Longest a running job's poll is held.
pub const MAX_HOLD: Duration = Duration::from_millis(200);

/// Settings of a [`BigQueryFake`].
#[derive(Clone, Debug)]
pub struct BigQueryConfig {
    /// Rows every query returns.
    pub rows: u64,
    /// Rows per page at most.
    pub page_rows: u64,
    /// `getQueryResults` calls answered `jobComplete: false` before a job completes
    /// (`jobs.query` itself always answers a running job); `u32::MAX` never completes.
    pub pending_polls: u32,
}

/// One request the fake answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigQueryCall {
    /// `query`, `results` or `cancel`.
    pub kind: String,
    /// The job.
    pub job_id: String,
    /// The `location` the request named.
    pub location: Option<String>,
    /// The `pageToken` sent, for `results`.
    pub page_token: Option<String>,
    /// Rows answered.
    pub rows: usize,
    /// Whether the answer said `jobComplete: true`.
    pub complete: bool,
}

#[derive(Default)]
struct Job {
    polls: u32,
    cancelled: bool,
}

struct BqState {
    config: BigQueryConfig,
    jobs: Mutex<HashMap<String, Job>>,
    calls: Mutex<Vec<BigQueryCall>>,
    queries: Mutex<Vec<Value>>,
}

/// A running BigQuery fake.
pub struct BigQueryFake {
    server: FakeServer,
    state: Arc<BqState>,
}

impl BigQueryFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: BigQueryConfig) -> io::Result<Self> {
        let state = Arc::new(BqState {
            config,
            jobs: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            queries: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/bigquery/v2/projects/{project}/queries", post(query))
            .route(
                "/bigquery/v2/projects/{project}/queries/{job}",
                get(results),
            )
            .route(
                "/bigquery/v2/projects/{project}/jobs/{job}/cancel",
                post(cancel),
            )
            .with_state(state.clone());
        Ok(Self {
            server: FakeServer::start(router).await?,
            state,
        })
    }

    /// `http://127.0.0.1:PORT`: the `endpoint` of a connection.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// Every `query`, `results` and `cancel` request so far.
    pub fn calls(&self) -> Vec<BigQueryCall> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The `QueryRequest` bodies received (dry runs included).
    pub fn queries(&self) -> Vec<Value> {
        self.state.queries.lock().unwrap().clone()
    }
}

fn schema() -> Value {
    json!({"fields": [
        {"name": "id", "type": "INTEGER", "mode": "NULLABLE"},
        {"name": "name", "type": "STRING", "mode": "NULLABLE"}
    ]})
}

fn reference(project: &str, job: &str, location: &Option<String>) -> Value {
    json!({"projectId": project, "jobId": job, "location": location.clone().unwrap_or_else(|| "US".into())})
}

/// One page of the generated result from row offset `start`.
fn page(state: &BqState, start: u64, max: Option<u64>) -> (Vec<Value>, Option<String>) {
    let n = max.unwrap_or(u64::MAX).min(state.config.page_rows).max(1);
    let end = (start + n).min(state.config.rows);
    let rows = (start..end)
        .map(|i| json!({"f": [{"v": (i + 1).to_string()}, {"v": format!("user {}", i + 1)}]}))
        .collect();
    let next = (end < state.config.rows).then(|| end.to_string());
    (rows, next)
}

fn record(state: &BqState, call: BigQueryCall) {
    state.calls.lock().unwrap().push(call);
}

async fn query(
    State(state): State<Arc<BqState>>,
    Path(project): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    state.queries.lock().unwrap().push(body.clone());
    let location = body["location"].as_str().map(str::to_string);
    if body["dryRun"] == json!(true) {
        return Json(json!({
            "kind": "bigquery#queryResponse", "schema": schema(), "jobComplete": true,
            "totalBytesProcessed": "0",
            "jobReference": {"projectId": project, "location": location},
        }))
        .into_response();
    }
    let job = format!("job_{}", state.calls.lock().unwrap().len());
    state
        .jobs
        .lock()
        .unwrap()
        .insert(job.clone(), Job::default());
    record(
        &state,
        BigQueryCall {
            kind: "query".into(),
            job_id: job.clone(),
            location: location.clone(),
            page_token: None,
            rows: 0,
            complete: false,
        },
    );
    Json(json!({
        "kind": "bigquery#queryResponse",
        "jobReference": reference(&project, &job, &location),
        "jobComplete": false,
    }))
    .into_response()
}

fn error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"reason": reason, "message": message}], "status": reason}});
    (status, Json(body)).into_response()
}

async fn results(
    State(state): State<Arc<BqState>>,
    Path((project, job)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let location = params.get("location").cloned();
    let page_token = params.get("pageToken").cloned();
    let running = {
        let mut jobs = state.jobs.lock().unwrap();
        let Some(j) = jobs.get_mut(&job) else {
            return error(
                StatusCode::NOT_FOUND,
                "notFound",
                &format!("Not found: Job {project}:{job}"),
            );
        };
        if j.cancelled {
            return error(
                StatusCode::BAD_REQUEST,
                "stopped",
                "Job execution was cancelled: User requested cancellation",
            );
        }
        let running = page_token.is_none() && j.polls < state.config.pending_polls;
        if running {
            j.polls += 1;
        }
        running
    };
    let mut call = BigQueryCall {
        kind: "results".into(),
        job_id: job.clone(),
        location: location.clone(),
        page_token: page_token.clone(),
        rows: 0,
        complete: !running,
    };
    if running {
        let asked = params
            .get("timeoutMs")
            .and_then(|t| t.parse().ok())
            .map_or(MAX_HOLD, Duration::from_millis);
        tokio::time::sleep(asked.min(MAX_HOLD)).await;
        record(&state, call);
        return Json(json!({
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": reference(&project, &job, &location),
            "jobComplete": false,
        }))
        .into_response();
    }
    let start = page_token
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let max = params.get("maxResults").and_then(|m| m.parse().ok());
    let (rows, next) = page(&state, start, max);
    call.rows = rows.len();
    record(&state, call);
    let mut answer = json!({
        "kind": "bigquery#getQueryResultsResponse",
        "jobReference": reference(&project, &job, &location),
        "jobComplete": true,
        "schema": schema(),
        "totalRows": state.config.rows.to_string(),
        "rows": rows,
    });
    if let Some(n) = next {
        answer["pageToken"] = json!(n);
    }
    Json(answer).into_response()
}

async fn cancel(
    State(state): State<Arc<BqState>>,
    Path((project, job)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let location = params.get("location").cloned();
    if let Some(j) = state.jobs.lock().unwrap().get_mut(&job) {
        j.cancelled = true;
    }
    record(
        &state,
        BigQueryCall {
            kind: "cancel".into(),
            job_id: job.clone(),
            location: location.clone(),
            page_token: None,
            rows: 0,
            complete: false,
        },
    );
    Json(json!({
        "kind": "bigquery#jobCancelResponse",
        "job": {"jobReference": reference(&project, &job, &location), "status": {"state": "DONE"}},
    }))
    .into_response()
}
