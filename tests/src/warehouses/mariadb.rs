//! MariaDB: the machine's server on 127.0.0.1:3306 (root, empty password), started when it is
//! stopped, with a private database per test. Setup SQL goes through the `mariadb` CLI.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::SETUP_HINT;

/// Server address.
pub const HOST: &str = "127.0.0.1";
/// Server port.
pub const PORT: u16 = 3306;
/// User, with an empty password.
pub const USER: &str = "root";

const SERVER: &str = "/usr/sbin/mariadbd";

/// A private database on the machine's MariaDB, dropped when the handle drops.
pub struct MariaDb {
    /// The database's name.
    pub database: String,
    /// `mysql://root@127.0.0.1:3306/<database>`.
    pub url: String,
    client: PathBuf,
}

fn client_binary() -> PathBuf {
    let candidates = ["/usr/bin/mariadb", "/usr/bin/mysql"];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the mariadb client is not installed: {SETUP_HINT}"))
}

/// Runs SQL with the CLI in batch mode (tab-separated, no headers); `Err` carries stderr.
fn run(client: &PathBuf, database: Option<&str>, sql: &str) -> Result<String, String> {
    let mut command = Command::new(client);
    command.args([
        "--protocol=TCP",
        "-h",
        HOST,
        "-P",
        &PORT.to_string(),
        "-u",
        USER,
    ]);
    command.args([
        "--batch",
        "--skip-column-names",
        "--default-character-set=utf8mb4",
    ]);
    command
        .args(database)
        .args(["-e", sql])
        .stdin(Stdio::null());
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", client.display()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Waits for the server, starting it first when nothing listens on the port.
fn ensure_running(client: &PathBuf) {
    if run(client, None, "SELECT 1").is_ok() {
        return;
    }
    if TcpStream::connect((HOST, PORT)).is_err() {
        if !PathBuf::from(SERVER).is_file() {
            panic!("MariaDB is not installed ({SERVER} is missing): {SETUP_HINT}");
        }
        let started = Command::new("start-stop-daemon")
            .args(["--start", "--oknodo", "--background", "--exec", SERVER])
            .status();
        if !matches!(started, Ok(s) if s.success()) {
            panic!(
                "cannot start MariaDB with start-stop-daemon ({started:?}); start {SERVER} by hand"
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match run(client, None, "SELECT 1") {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => {
                panic!("MariaDB does not answer on {HOST}:{PORT}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

impl MariaDb {
    /// Makes sure the server runs, then creates a fresh database named after the test.
    pub fn connect(test: &str) -> MariaDb {
        let client = client_binary();
        ensure_running(&client);
        let database = format!("t_{test}_{}", std::process::id());
        let create = format!(
            "DROP DATABASE IF EXISTS `{database}`; \
             CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        );
        run(&client, None, &create).unwrap_or_else(|e| panic!("create database {database}: {e}"));
        MariaDb {
            url: format!("mysql://{USER}@{HOST}:{PORT}/{database}"),
            database,
            client,
        }
    }

    /// Runs statements (`;`-separated) in the test's database and returns the CLI's output.
    pub fn execute(&self, sql: &str) -> String {
        run(&self.client, Some(&self.database), sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// Rows of a query, each value as the CLI prints it in batch mode: `NULL` for null (and
    /// for the text `NULL`), with `\t`, `\n` and `\\` escaped.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        self.execute(sql)
            .lines()
            .map(|line| line.split('\t').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = run(
            &self.client,
            None,
            &format!("DROP DATABASE IF EXISTS `{}`", self.database),
        );
    }
}
