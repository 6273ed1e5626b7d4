//! Warehouses for source tests: emulators and servers installed by
//! `bash infra/scripts/setup-warehouses.sh` and started here, one per test, on free loopback
//! ports with their data in temporary folders, killed when the handle drops. A missing
//! install fails the test loudly with the command that provides it.

pub mod arrow_ipc;
pub mod bqemulator;
pub mod chdb;
pub mod clickhouse;
pub mod fakesnow;
pub mod mariadb;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a test that finds a warehouse missing is told to run.
pub const SETUP_HINT: &str = "run `bash infra/scripts/setup-warehouses.sh` (also run by \
    `bash infra/scripts/setup-dev.sh`) to install the warehouse emulators";

/// How long a service may take to answer after being started; the Python emulators import a
/// lot (DuckDB, pyarrow, sqlglot) and the machine's two cores are shared.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `path` when it exists, else a panic naming `what` and the setup command.
pub fn require(path: PathBuf, what: &str) -> PathBuf {
    if !path.exists() {
        panic!(
            "{what} is not installed ({} is missing): {SETUP_HINT}",
            path.display()
        );
    }
    path
}

/// A loopback port nobody listens on now. Another process could take it before the service
/// binds it; the start then fails loudly rather than talking to the wrong server.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The status code of `GET path` on a loopback port, or `None` when nothing answers. Blocking
/// and dependency-free, so readiness checks work inside and outside a runtime.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    conn.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).ok()?;
    if !head.starts_with(b"HTTP/1.") {
        return None;
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A started service process: killed and reaped on drop, its output kept in a log file whose
/// tail goes into every panic about it.
pub struct Service {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Spawns `command` with its output in `log`, then waits until `ready` holds, panicking
    /// (with the log's tail) if the process exits or the wait times out.
    pub fn start(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
        mut ready: impl FnMut() -> bool,
    ) -> Service {
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}. {SETUP_HINT}"));
        let mut service = Service { name, child, log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "{name} exited at start ({status}). {SETUP_HINT}\n{}",
                    service.log_tail()
                );
            }
            if ready() {
                return service;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} did not become ready within {START_TIMEOUT:?}\n{}",
                    service.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines the process wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!(
            "--- last lines of {} ({}) ---\n{tail}",
            self.name,
            self.log.display()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
