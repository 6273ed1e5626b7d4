//! A current ClickHouse engine (chdb, from `.venv`) behind ClickHouse's HTTP interface
//! (`infra/local/chdb_http.py`), for what Debian's 18.16 server predates: the export path's
//! `INSERT INTO FUNCTION s3` with `PARTITION BY` and named collections. One per test, its
//! data in memory.

use std::process::Command;

use tempfile::TempDir;

use super::{free_port, http_status, repo_root, require, Service};

/// A running chdb HTTP server.
pub struct Chdb {
    /// HTTP interface, e.g. `http://127.0.0.1:41234/`.
    pub http_url: String,
    http: reqwest::Client,
    _service: Service,
    _dir: TempDir,
}

impl Chdb {
    /// Starts the server with `setup` statements run first (one per line: named collections,
    /// tables) and waits until `/ping` answers.
    pub fn start(setup: &[&str]) -> Chdb {
        let repo = repo_root();
        let python = require(crate::moto::python(&repo), "the Python of .venv");
        let script = require(repo.join("infra/local/chdb_http.py"), "chdb_http.py");
        let dir = tempfile::tempdir().expect("temp dir for chdb");
        let setup_file = dir.path().join("setup.sql");
        std::fs::write(&setup_file, setup.join("\n")).expect("write setup.sql");
        let port = free_port();
        let mut command = Command::new(python);
        command
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--setup")
            .arg(&setup_file)
            .current_dir(dir.path());
        let service = Service::start("chdb_http", command, dir.path().join("chdb.log"), || {
            http_status(port, "/ping") == Some(200)
        });
        Chdb {
            http_url: format!("http://127.0.0.1:{port}/"),
            http: reqwest::Client::new(),
            _service: service,
            _dir: dir,
        }
    }

    /// Runs one statement; panics with the server's answer when it fails.
    pub async fn execute(&self, sql: &str) -> String {
        let response = self
            .http
            .post(&self.http_url)
            .body(sql.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST to chdb {}: {e}", self.http_url));
        let status = response.status();
        let text = response.text().await.expect("chdb response body");
        assert!(status.is_success(), "chdb refused {sql}: {status} {text}");
        text
    }
}
