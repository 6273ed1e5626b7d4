//! Runs a fake's router on `127.0.0.1:0` and hands back its address and a way to stop it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Request bodies up to this size are read; Salesforce Bulk uploads may reach 150 MB
/// (base64-counted), so axum's 2 MB default would refuse legal requests.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// How long [`FakeServer::stop`] lets in-flight requests finish before cutting them.
const GRACE: Duration = Duration::from_secs(2);

/// A running fake HTTP server. Dropping it aborts the server task.
#[derive(Debug)]
pub struct FakeServer {
    base_url: String,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds an ephemeral loopback port and serves `router` on it. Needs a Tokio runtime.
    pub async fn start(router: Router) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router.layer(DefaultBodyLimit::max(MAX_BODY));
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            let _ = served.await;
        });
        Ok(Self {
            base_url: format!("http://{addr}"),
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish for up to 2 s, then aborts the rest
    /// (a request hanging on `timeout_next` would otherwise hold shutdown for a minute).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
