//! A temporary retl project and the `retl` binary run against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `retl` binary built by this workspace (same profile as the running test).
pub fn retl_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RETL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> -> target/<profile>/retl
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = dir.join("retl");
    assert!(
        bin.is_file(),
        "the retl binary is missing at {}: build it first with `cargo build -p retl-cli` \
         (the README's test command does this)",
        bin.display()
    );
    bin
}

/// What a `retl` invocation printed and returned.
#[derive(Debug)]
pub struct RetlOutput {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl RetlOutput {
    /// Standard output parsed as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "retl did not print JSON ({e}):\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for RetlOutput {
    fn from(o: Output) -> Self {
        RetlOutput {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A project folder that disappears with the test.
pub struct Project {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// An empty project folder.
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("a temporary folder"),
            env: Vec::new(),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets an environment variable for every `retl` run of this project.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("a file has a folder")).expect("mkdir");
        std::fs::write(p, content).expect("write file");
    }

    /// Runs SQL against the project's SQLite warehouse (`warehouse.db`).
    pub fn warehouse(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.dir.path().join("warehouse.db"))
            .expect("open warehouse");
        c.execute_batch(sql).expect("warehouse SQL");
    }

    /// A `retl` command for this project, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(retl_bin());
        c.arg("--project").arg(self.dir.path()).args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env_remove("RETL_LOG");
        c
    }

    /// Runs `retl` with `args` and waits.
    pub fn retl(&self, args: &[&str]) -> RetlOutput {
        self.command(args).output().expect("retl runs").into()
    }

    /// Runs `retl` without blocking the async runtime (for tests that serve HTTP meanwhile).
    pub async fn run(&self, args: &[&str]) -> RetlOutput {
        tokio::process::Command::from(self.command(args))
            .output()
            .await
            .expect("retl runs")
            .into()
    }

    /// [`Project::run`] with `--json`, parsed.
    pub async fn run_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all).await;
        let v = out.json();
        (out.code, v)
    }

    /// Runs `retl --json` with `args` and parses the output.
    pub fn retl_json(&self, args: &[&str]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.retl(&all);
        let v = out.json();
        (out.code, v)
    }
}
