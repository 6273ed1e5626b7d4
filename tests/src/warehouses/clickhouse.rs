//! ClickHouse: Debian's `clickhouse-server` (18.16), one server per test with its own config,
//! data and logs in a temporary folder, listening on 127.0.0.1 only. Setup SQL goes through
//! the HTTP interface, as a connector's queries do.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::{free_port, http_status, require, Service, SETUP_HINT};

/// A user with a password, besides `default` (no password), for authentication tests.
pub const USER: &str = "retl";
/// The password of `USER`.
pub const PASSWORD: &str = "retl-secret";

/// A running ClickHouse server.
pub struct ClickHouse {
    /// HTTP interface, e.g. `http://127.0.0.1:41234/`.
    pub http_url: String,
    /// The HTTP port.
    pub http_port: u16,
    /// The native protocol port.
    pub tcp_port: u16,
    /// With [`ClickHouse::start_tls`]: the HTTPS interface (`https://127.0.0.1:PORT/`) and
    /// the PEM file of the CA that signed the server's certificate.
    pub https: Option<(String, PathBuf)>,
    http: reqwest::Client,
    _service: Service,
    _dir: TempDir,
}

fn server_binary() -> PathBuf {
    let candidates = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"];
    let found = candidates.iter().map(PathBuf::from).find(|p| p.is_file());
    found.unwrap_or_else(|| require(PathBuf::from(candidates[0]), "clickhouse-server"))
}

/// The server's config: every path inside `dir`, the log on the console (the service's log
/// file), loopback only, UTC, no replication.
fn config_xml(dir: &Path, http_port: u16, tcp_port: u16, https_port: Option<u16>) -> String {
    let d = dir.display();
    let tls = https_port.map_or_else(String::new, |p| {
        format!(
            "<https_port>{p}</https_port>\n  <openSSL><server>\
             <certificateFile>{d}/server.pem</certificateFile>\
             <privateKeyFile>{d}/server.key</privateKeyFile>\
             <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>\
             <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>\
             <preferServerCiphers>true</preferServerCiphers></server></openSSL>"
        )
    });
    format!(
        r#"<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <console>1</console>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <max_concurrent_queries>32</max_concurrent_queries>
  {tls}
</yandex>
"#
    )
}

fn users_xml() -> String {
    let user = |name: &str, password: &str| {
        format!(
            "<{name}><password>{password}</password><networks><ip>127.0.0.1</ip></networks>\
             <profile>default</profile><quota>default</quota></{name}>"
        )
    };
    format!(
        "<?xml version=\"1.0\"?>\n<yandex>\n  <profiles><default></default></profiles>\n  \
         <users>{}{}</users>\n  <quotas><default></default></quotas>\n</yandex>\n",
        user("default", ""),
        user(USER, PASSWORD)
    )
}

/// Runs the `openssl` CLI in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let openssl = require(PathBuf::from("/usr/bin/openssl"), "openssl");
    let out = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and localhost
/// (`server.pem`, `server.key`), made in `dir`: rustls refuses a self-signed CA certificate
/// as the server's own, so the chain has two links, as a private CA's does.
fn make_certificates(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=retl test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n\
         keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    )
    .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    dir.join("ca.pem")
}

impl ClickHouse {
    /// Starts a server on free ports and waits until `/ping` answers.
    pub fn start() -> ClickHouse {
        Self::start_with(false)
    }

    /// Starts a server that also serves HTTPS (`https`), with a certificate of a test CA.
    pub fn start_tls() -> ClickHouse {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> ClickHouse {
        let binary = server_binary();
        let dir = tempfile::tempdir().expect("temp dir for clickhouse");
        let (http_port, tcp_port) = (free_port(), free_port());
        let https_port = tls.then(free_port);
        let ca = tls.then(|| make_certificates(dir.path()));
        let config = dir.path().join("config.xml");
        std::fs::write(
            &config,
            config_xml(dir.path(), http_port, tcp_port, https_port),
        )
        .expect("write config.xml");
        std::fs::write(dir.path().join("users.xml"), users_xml()).expect("write users.xml");
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config-file={}", config.display()))
            .current_dir(dir.path());
        let service = Service::start(
            "clickhouse-server",
            command,
            dir.path().join("stdout.log"),
            || http_status(http_port, "/ping") == Some(200),
        );
        ClickHouse {
            http_url: format!("http://127.0.0.1:{http_port}/"),
            http_port,
            tcp_port,
            https: https_port
                .zip(ca)
                .map(|(p, ca)| (format!("https://127.0.0.1:{p}/"), ca)),
            http: reqwest::Client::new(),
            _service: service,
            _dir: dir,
        }
    }

    /// Runs one statement as `default` through the HTTP interface and returns the body;
    /// panics on a non-200 answer. ClickHouse reports an error that happens after the first
    /// rows were sent as text at the end of a 200 body, so that is refused here too.
    pub async fn query(&self, sql: &str, settings: &[(&str, &str)]) -> String {
        let response = self
            .http
            .post(&self.http_url)
            .query(settings)
            .body(sql.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST to clickhouse {}: {e}. {SETUP_HINT}", self.http_url));
        let status = response.status();
        let text = response.text().await.expect("clickhouse response body");
        let failed_midway = text
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("Code: ") && l.contains("DB::Exception"));
        if !status.is_success() || failed_midway {
            panic!("clickhouse refused {sql}: {status} {text}");
        }
        text
    }

    /// Runs statements one by one (the HTTP interface takes one per request).
    pub async fn execute(&self, statements: &[&str]) {
        for sql in statements {
            self.query(sql, &[]).await;
        }
    }
}
