//! Bulk API 2.0 ingest jobs under `/services/data/vXX.X/jobs/ingest`.
//! Sources: <https://developer.salesforce.com/docs/platform/api-asynch/guide/create-job.html>,
//! `upload-job-data.md` (PUT CSV, 201, at most 150 MB once base64-encoded),
//! `close-job.html` (PATCH `UploadComplete` / `Aborted`), and the 264.0 pages for job info
//! and `successfulResults/` (`sf__Id`, `sf__Created`), `failedResults/` (`sf__Id`,
//! `sf__Error`) and `unprocessedrecords/` (original columns only).
//!
//! Processing applies the rows to the same org store as sObject Collections, with the same
//! per-record errors, either when the job is closed (delay zero) or on the first poll after
//! [`super::SalesforceConfig::bulk_processing_delay`]; until then polls report `InProgress`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::bulk_csv::{delimiter_byte, merge, parse, to_record, write, Table};
use super::errors::{api_version, not_found, rest_error};
use super::org::{Op, Org};
use super::state::SfState;
use crate::log::BatchSize;
use crate::util::{now_sf, unique_u64};

const OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];

/// Lifecycle of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    Open,
    UploadComplete,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    fn name(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    fn terminal(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// One ingest job.
#[derive(Debug)]
pub(crate) struct Job {
    id: String,
    object: String,
    operation: String,
    external_id: Option<String>,
    delimiter_name: String,
    delimiter: u8,
    line_ending: String,
    version: String,
    created: String,
    modstamp: String,
    pub(crate) state: JobState,
    uploads: Vec<Table>,
    closed_at: Option<Instant>,
    error_message: Option<String>,
    header: Vec<String>,
    ok: Vec<(Vec<String>, Vec<String>)>,
    failed: Vec<(Vec<String>, Vec<String>)>,
    unprocessed: Vec<(Vec<String>, Vec<String>)>,
}

impl Job {
    /// Job info as the API renders it (`full` adds the processing counters).
    pub(crate) fn info(&self, full: bool, user_id: &str) -> Value {
        let mut v = json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": user_id,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.shown_state(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": api_version(&self.version).unwrap_or_default(),
            "jobType": "V2Ingest",
            "contentUrl": format!("services/data/{}/jobs/ingest/{}/batches", self.version, self.id),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.delimiter_name,
        });
        if let Some(ext) = &self.external_id {
            v["externalIdFieldName"] = json!(ext);
        }
        if full {
            v["numberRecordsProcessed"] = json!(self.ok.len() + self.failed.len());
            v["numberRecordsFailed"] = json!(self.failed.len());
            v["retries"] = json!(0);
            v["totalProcessingTime"] = json!(0);
            v["apiActiveProcessingTime"] = json!(0);
            v["apexProcessingTime"] = json!(0);
        }
        if let Some(m) = &self.error_message {
            v["errorMessage"] = json!(m);
        }
        v
    }

    /// A closed job still waiting for its processing delay shows as `InProgress`.
    fn shown_state(&self) -> &'static str {
        match self.state {
            JobState::UploadComplete => "InProgress",
            s => s.name(),
        }
    }

    /// Processes the job if it is closed and its delay has passed.
    pub(crate) fn settle(&mut self, org: &mut Org, delay: Duration) {
        let due = self.closed_at.is_some_and(|t| t.elapsed() >= delay);
        if self.state == JobState::UploadComplete && due {
            self.process(org);
        }
    }

    fn process(&mut self, org: &mut Org) {
        let (header, rows) = merge(std::mem::take(&mut self.uploads));
        let ext = self.external_id.clone().unwrap_or_default();
        let op = match self.operation.as_str() {
            "insert" => Op::Create,
            "update" => Op::Update,
            "upsert" => Op::Upsert(&ext),
            "hardDelete" => Op::Delete { hard: true },
            _ => Op::Delete { hard: false },
        };
        for row in rows {
            let record = to_record(&header, &row);
            let given_id = header
                .iter()
                .position(|h| h.eq_ignore_ascii_case("id"))
                .and_then(|i| row.get(i).cloned())
                .unwrap_or_default();
            match org.execute(&self.object, op, &record) {
                Ok(o) => self.ok.push((vec![o.id, o.created.to_string()], row)),
                Err(e) => {
                    let error =
                        format!("{}:{}:{} --", e.status_code, e.message, e.fields.join(","));
                    self.failed.push((vec![given_id, error], row));
                }
            }
        }
        self.header = header;
        self.state = JobState::JobComplete;
        self.modstamp = now_sf();
    }

    fn abort(&mut self) {
        let (header, rows) = merge(std::mem::take(&mut self.uploads));
        self.unprocessed = rows.into_iter().map(|r| (Vec::new(), r)).collect();
        self.header = header;
        self.state = JobState::Aborted;
        self.modstamp = now_sf();
    }

    fn result_file(&self, resource: &str) -> Option<Vec<u8>> {
        let crlf = self.line_ending == "CRLF";
        let (lead, rows): (&[&str], _) = match resource {
            "successfulResults" => (&["sf__Id", "sf__Created"], &self.ok),
            "failedResults" => (&["sf__Id", "sf__Error"], &self.failed),
            "unprocessedrecords" => (&[], &self.unprocessed),
            _ => return None,
        };
        Some(write(lead, &self.header, rows, self.delimiter, crlf))
    }
}

fn job_error(status: StatusCode, message: &str) -> Response {
    rest_error(status, "INVALIDJOB", message)
}

fn state_error(job: &Job) -> Response {
    let message = format!(
        "InvalidJobState : Job {} is in state {}",
        job.id,
        job.shown_state()
    );
    rest_error(StatusCode::CONFLICT, "INVALIDJOBSTATE", &message)
}

/// `POST .../jobs/ingest`.
pub(crate) async fn create(
    State(s): State<Arc<SfState>>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    if api_version(&version).is_none() {
        return not_found();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Invalid JSON body",
        );
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(object) = field("object") else {
        return job_error(StatusCode::BAD_REQUEST, "InvalidJob : Object is required");
    };
    let operation = field("operation").unwrap_or_default();
    if !OPERATIONS.contains(&operation.as_str()) {
        return job_error(
            StatusCode::BAD_REQUEST,
            &format!("InvalidJob : Invalid operation: {operation}"),
        );
    }
    let external_id = field("externalIdFieldName");
    if operation == "upsert" && external_id.is_none() {
        let message = format!("InvalidJob : External ID was blank for {object}. An External ID must be specified for upsert.");
        return job_error(StatusCode::BAD_REQUEST, &message);
    }
    if field("contentType").is_some_and(|c| c != "CSV") {
        return job_error(
            StatusCode::BAD_REQUEST,
            "InvalidJob : contentType must be CSV",
        );
    }
    let delimiter_name = field("columnDelimiter").unwrap_or_else(|| "COMMA".into());
    let Some(delimiter) = delimiter_byte(&delimiter_name) else {
        return job_error(
            StatusCode::BAD_REQUEST,
            "InvalidJob : Invalid columnDelimiter",
        );
    };
    let line_ending = field("lineEnding").unwrap_or_else(|| "LF".into());
    if line_ending != "LF" && line_ending != "CRLF" {
        return job_error(StatusCode::BAD_REQUEST, "InvalidJob : Invalid lineEnding");
    }
    let n = s.next_job.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    let now = now_sf();
    let job = Job {
        id: format!("7505e{:010}AAA", n * 1000 + unique_u64() % 1000),
        object,
        operation,
        external_id,
        delimiter_name,
        delimiter,
        line_ending,
        version,
        created: now.clone(),
        modstamp: now,
        state: JobState::Open,
        uploads: Vec::new(),
        closed_at: None,
        error_message: None,
        header: Vec::new(),
        ok: Vec::new(),
        failed: Vec::new(),
        unprocessed: Vec::new(),
    };
    let info = job.info(false, &s.config().user_id);
    s.jobs().insert(job.id.clone(), job);
    (StatusCode::OK, Json(info)).into_response()
}

/// `GET .../jobs/ingest/{jobId}`.
pub(crate) async fn info(
    State(s): State<Arc<SfState>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let config = s.config();
    let mut jobs = s.jobs();
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    job.settle(&mut s.org(), config.bulk_processing_delay);
    (StatusCode::OK, Json(job.info(true, &config.user_id))).into_response()
}

/// `PATCH .../jobs/ingest/{jobId}` with `{"state": "UploadComplete" | "Aborted"}`.
pub(crate) async fn patch(
    State(s): State<Arc<SfState>>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let config = s.config();
    let wanted = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let mut jobs = s.jobs();
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    match (wanted.as_str(), job.state) {
        ("UploadComplete", JobState::Open) => {
            job.modstamp = now_sf();
            if job.uploads.is_empty() {
                job.state = JobState::Failed;
                job.error_message = Some("InvalidBatch : No data was uploaded for this job".into());
                return (StatusCode::OK, Json(job.info(false, &config.user_id))).into_response();
            }
            job.state = JobState::UploadComplete;
            job.closed_at = Some(Instant::now());
            let mut info = job.info(false, &config.user_id);
            info["state"] = json!("UploadComplete");
            job.settle(&mut s.org(), config.bulk_processing_delay);
            (StatusCode::OK, Json(info)).into_response()
        }
        ("Aborted", JobState::Open | JobState::UploadComplete) => {
            job.abort();
            (StatusCode::OK, Json(job.info(false, &config.user_id))).into_response()
        }
        ("UploadComplete" | "Aborted", _) => state_error(job),
        _ => job_error(
            StatusCode::BAD_REQUEST,
            "InvalidJob : state must be UploadComplete or Aborted",
        ),
    }
}

/// `DELETE .../jobs/ingest/{jobId}` (only once it is closed).
pub(crate) async fn delete(
    State(s): State<Arc<SfState>>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let mut jobs = s.jobs();
    match jobs.get(&id) {
        None => not_found(),
        Some(job) if job.state == JobState::Open => state_error(job),
        Some(_) => {
            jobs.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

/// `PUT .../jobs/ingest/{jobId}/batches` with CSV data.
pub(crate) async fn upload(
    State(s): State<Arc<SfState>>,
    Path((_, id, resource)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    if resource != "batches" {
        return not_found();
    }
    let limit = s.config().bulk_max_upload_bytes;
    let mut jobs = s.jobs();
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.state != JobState::Open {
        return state_error(job);
    }
    // The limit counts the data once base64-encoded (4 bytes per 3).
    let encoded = (body.len() as u64).div_ceil(3) * 4;
    if encoded > limit {
        let message =
            format!("Exceeded max size limit of {limit} bytes (base64-encoded) for job data");
        return rest_error(StatusCode::BAD_REQUEST, "ClientInputError", &message);
    }
    let table = match parse(&body, job.delimiter) {
        Ok(t) => t,
        Err(e) => {
            return rest_error(
                StatusCode::BAD_REQUEST,
                "ClientInputError",
                &format!("Invalid CSV: {e}"),
            )
        }
    };
    let rows = table.1.len();
    job.uploads.push(table);
    let mut resp = StatusCode::CREATED.into_response();
    resp.extensions_mut().insert(BatchSize(rows));
    resp
}

/// `GET .../jobs/ingest/{jobId}/{successfulResults|failedResults|unprocessedrecords}`.
pub(crate) async fn results(
    State(s): State<Arc<SfState>>,
    Path((_, id, resource)): Path<(String, String, String)>,
) -> Response {
    let delay = s.config().bulk_processing_delay;
    let mut jobs = s.jobs();
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    job.settle(&mut s.org(), delay);
    if !job.state.terminal() {
        return state_error(job);
    }
    match job.result_file(&resource) {
        Some(csv) => ([(header::CONTENT_TYPE, "text/csv")], csv).into_response(),
        None => not_found(),
    }
}
