//! bqemulator: a BigQuery emulator (REST API v2 and the Storage Read/Write gRPC API) over
//! DuckDB, from `.venv-bigquery`. One server per test, in memory, accepting requests without
//! credentials.

use std::process::Command;

use serde_json::{json, Value};
use tempfile::TempDir;

use super::{free_port, http_status, repo_root, require, Service};

/// The project id requests default to.
pub const PROJECT: &str = "retl-test";

/// A running bqemulator.
pub struct BqEmulator {
    /// REST root, e.g. `http://127.0.0.1:41234` (the API lives under `/bigquery/v2/`).
    pub rest_url: String,
    /// The Storage Read/Write gRPC port (plaintext HTTP/2 on 127.0.0.1).
    pub grpc_port: u16,
    /// The project id (`PROJECT`).
    pub project: String,
    http: reqwest::Client,
    _service: Service,
    _dir: TempDir,
}

impl BqEmulator {
    /// Starts bqemulator on free ports and waits until `/healthz` answers 200.
    pub fn start() -> BqEmulator {
        let bqemulator = require(
            repo_root().join(".venv-bigquery/bin/bqemulator"),
            "bqemulator",
        );
        let dir = tempfile::tempdir().expect("temp dir for bqemulator");
        let (rest_port, grpc_port) = (free_port(), free_port());
        let mut command = Command::new(bqemulator);
        command
            .args([
                "start",
                "--rest-host",
                "127.0.0.1",
                "--grpc-host",
                "127.0.0.1",
            ])
            .args(["--rest-port", &rest_port.to_string()])
            .args(["--grpc-port", &grpc_port.to_string()])
            .args([
                "--project",
                PROJECT,
                "--log-format",
                "console",
                "--log-level",
                "warning",
            ])
            // Avro support would try to download DuckDB's avro extension: nothing leaves the
            // machine, so it stays off (Avro load/extract jobs then answer unsupported).
            .env("BQEMU_ENABLE_FORMAT_EXTENSIONS", "false")
            .env("BQEMU_UPLOAD_STAGING_DIR", dir.path())
            .current_dir(dir.path());
        let service = Service::start(
            "bqemulator",
            command,
            dir.path().join("bqemulator.log"),
            || http_status(rest_port, "/healthz") == Some(200),
        );
        BqEmulator {
            rest_url: format!("http://127.0.0.1:{rest_port}"),
            grpc_port,
            project: PROJECT.to_string(),
            http: reqwest::Client::new(),
            _service: service,
            _dir: dir,
        }
    }

    /// `https://bigquery.googleapis.com/bigquery/v2/projects/{project}` for this emulator.
    pub fn project_url(&self) -> String {
        format!("{}/bigquery/v2/projects/{}", self.rest_url, self.project)
    }

    /// `jobs.query` with standard SQL; panics on an HTTP error or an `errors` entry (the
    /// emulator answers 200 with `errors` for a bad query).
    pub async fn query(&self, sql: &str) -> Value {
        self.query_with(json!({"query": sql, "useLegacySql": false}))
            .await
    }

    /// `jobs.query` with a full request body.
    pub async fn query_with(&self, body: Value) -> Value {
        let url = format!("{}/queries", self.project_url());
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("bqemulator response body");
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("bqemulator answered {status} with non-JSON ({e}): {text}"));
        if !status.is_success() || value.get("errors").is_some() {
            panic!("bqemulator refused {body}: {status} {value}");
        }
        value
    }

    /// `jobs.getQueryResults` for a job, with query parameters such as `pageToken`.
    pub async fn query_results(&self, job_id: &str, params: &[(&str, &str)]) -> Value {
        let url = format!("{}/queries/{job_id}", self.project_url());
        let response = self
            .http
            .get(&url)
            .query(params)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("bqemulator response body");
        assert!(status.is_success(), "GET {url}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON from {url} ({e}): {text}"))
    }

    /// Runs DDL/DML statements one by one.
    pub async fn execute(&self, statements: &[&str]) {
        for sql in statements {
            self.query(sql).await;
        }
    }
}
