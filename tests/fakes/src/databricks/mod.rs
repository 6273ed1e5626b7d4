//! Fake of the Databricks SQL Statement Execution API 2.0, executing the SQL on the test's
//! real PostgreSQL.
//!
//! Contract followed (<https://docs.databricks.com/api/workspace/statementexecution>, the
//! SDKs' `StatementResponse` / `ResultData` / `ExternalLink` models):
//! - `POST /api/2.0/sql/statements` with `statement`, `warehouse_id`, `catalog`, `schema`,
//!   `parameters` `[{name, value, type}]` (`:name` markers; `value` null is NULL; `type`
//!   defaults to STRING), `wait_timeout` (`0s` or `5s`..`50s`, default `10s`),
//!   `on_wait_timeout` (CONTINUE / CANCEL), `disposition` (INLINE / EXTERNAL_LINKS),
//!   `format` (JSON_ARRAY; ARROW_STREAM and CSV only with EXTERNAL_LINKS), `row_limit`,
//!   `byte_limit` (setting `manifest.truncated`). The call waits up to `wait_timeout`;
//!   then answers the state reached (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED).
//! - `GET /api/2.0/sql/statements/{id}`; `GET .../result/chunks/{n}` (`ResultData`);
//!   `POST .../cancel` (empty `{}`; the PostgreSQL query is cancelled). A result whose
//!   lifetime passed is CLOSED.
//! - `manifest`: `format`, `schema` (`column_count`, `columns` with `name`, `position`,
//!   `type_name`, `type_text`, `type_precision`/`type_scale`), `total_chunk_count`, `chunks`
//!   (`chunk_index`, `row_offset`, `row_count`, `byte_count` for links), `total_row_count`,
//!   `truncated`. `result` is chunk 0: `data_array` of strings and nulls (INLINE) or
//!   `external_links` `[{chunk_index, row_offset, row_count, byte_count, external_link,
//!   expiration, next_chunk_index, next_chunk_internal_link, http_headers}]`.
//! - INLINE results over 25 MiB fail the statement. SQL errors end FAILED with
//!   `status.error` `{error_code: BAD_REQUEST, message}` and `status.sql_state`.
//! - Auth: `Authorization: Bearer <PAT or OAuth token>`; none is 401 `UNAUTHENTICATED`, an
//!   unknown one 403 `PERMISSION_DENIED` "Invalid access token.". `POST /oidc/v1/token`
//!   issues OAuth M2M tokens, found through `GET /oidc/.well-known/oauth-authorization-server`
//!   (module `auth`). API errors are `{"error_code", "message"}`:
//!   400 `INVALID_PARAMETER_VALUE`, 404 `NOT_FOUND`, 429 `REQUEST_LIMIT_EXCEEDED` (with
//!   `Retry-After`), 503 `TEMPORARILY_UNAVAILABLE`.
//! - External links must be fetched without the Databricks `Authorization` header (module
//!   `links`); they expire after [`DatabricksConfig::link_ttl`] (at most 15 min in
//!   production), and each chunk request mints a fresh link.
//!
//! Checked end to end with databricks-sdk (Python) 0.162 during development: PAT and OAuth
//! M2M auth, INLINE chunks, EXTERNAL_LINKS, cancel. The tests here use plain HTTP.
//!
//! Choices where the docs are silent: chunks hold [`DatabricksConfig::rows_per_chunk`]
//! rows (the service sizes them by bytes); DML answers Delta's one-row
//! `num_affected_rows` result; TIMESTAMP text is `2024-01-31T12:00:00.500Z`, BINARY base64;
//! an unknown `schema` is only noticed when the SQL runs; `catalog` is recorded but not
//! used (PostgreSQL has one database). See `types` and `formats` for the value mapping.

mod auth;
mod exec;
mod formats;
mod links;
mod render;
mod state;
mod statements;
mod types;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::faults::{FaultPlan, Faults};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::server::FakeServer;
pub use state::DatabricksCall;
use state::{locked, DbxState, LINK_PREFIX};

/// Settings of a [`DatabricksFake`].
#[derive(Clone, Debug)]
pub struct DatabricksConfig {
    /// PostgreSQL the statements run on.
    pub postgres_url: String,
    /// Personal access tokens accepted as `Bearer` tokens.
    pub tokens: Vec<String>,
    /// The service principal allowed OAuth M2M: `(client_id, client_secret)`.
    pub oauth_client: Option<(String, String)>,
    /// `expires_in` of OAuth tokens (default 1 h).
    pub oauth_token_ttl: Duration,
    /// Known warehouse ids (`None`: any id works).
    pub warehouses: Option<Vec<String>>,
    /// Time a statement stays PENDING before it runs (default 20 ms).
    pub pending_delay: Duration,
    /// Rows per result chunk (default 10,000).
    pub rows_per_chunk: usize,
    /// INLINE result size limit (25 MiB).
    pub inline_limit_bytes: usize,
    /// Validity of external links (default 15 min).
    pub link_ttl: Duration,
    /// Headers each external link requires (returned as `http_headers`; default none).
    pub link_headers: BTreeMap<String, String>,
    /// How long a result stays fetchable before the statement is CLOSED (default 1 h).
    pub result_ttl: Duration,
    /// Initial fault plan.
    pub faults: FaultPlan,
}

impl DatabricksConfig {
    /// Defaults for statements on `postgres_url`, accepting the PAT `token`.
    pub fn new(postgres_url: &str, token: &str) -> Self {
        Self {
            postgres_url: postgres_url.to_string(),
            tokens: vec![token.to_string()],
            oauth_client: None,
            oauth_token_ttl: Duration::from_secs(3600),
            warehouses: None,
            pending_delay: Duration::from_millis(20),
            rows_per_chunk: 10_000,
            inline_limit_bytes: 25 * 1024 * 1024,
            link_ttl: Duration::from_secs(15 * 60),
            link_headers: BTreeMap::new(),
            result_ttl: Duration::from_secs(3600),
            faults: FaultPlan::default(),
        }
    }
}

/// A running Databricks SQL fake.
pub struct DatabricksFake {
    server: FakeServer,
    state: Arc<DbxState>,
}

impl DatabricksFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: DatabricksConfig) -> io::Result<Self> {
        let state = Arc::new(DbxState {
            faults: Faults::new(config.faults.clone()),
            config: Mutex::new(config),
            statements: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            oauth_tokens: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            base_url: OnceLock::new(),
            log: RequestLog::default(),
        });
        let base = "/api/2.0/sql/statements";
        let router = Router::new()
            .route("/.well-known/databricks-config", get(auth::host_metadata))
            .route("/oidc/v1/token", post(auth::token))
            .route(
                "/oidc/.well-known/oauth-authorization-server",
                get(auth::discovery),
            )
            .route(base, post(statements::execute))
            .route(&format!("{base}/{{id}}"), get(statements::get))
            .route(&format!("{base}/{{id}}/cancel"), post(statements::cancel))
            .route(
                &format!("{base}/{{id}}/result/chunks/{{index}}"),
                get(statements::chunk),
            )
            .route(&format!("{LINK_PREFIX}{{token}}"), get(links::fetch))
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<DbxState>));
        let server = FakeServer::start(router).await?;
        let _ = state.base_url.set(server.base_url().to_string());
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`: the workspace host (and the links' "cloud storage").
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The fault plan and its counters (workspace API; the links are exempt).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request so far, with the status it got.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Every call that reached a handler: method, path, `Authorization`, body.
    pub fn calls(&self) -> Vec<DatabricksCall> {
        locked(&self.state.calls).clone()
    }

    /// Sets the rows per result chunk (for statements submitted from now on).
    pub fn set_rows_per_chunk(&self, rows: usize) {
        locked(&self.state.config).rows_per_chunk = rows.max(1);
    }

    /// Sets the validity of external links minted from now on.
    pub fn set_link_ttl(&self, ttl: Duration) {
        locked(&self.state.config).link_ttl = ttl;
    }

    /// Sets how long results stay fetchable (statements finishing from now on).
    pub fn set_result_ttl(&self, ttl: Duration) {
        locked(&self.state.config).result_ttl = ttl;
    }

    /// Expires every OAuth token issued so far.
    pub fn expire_oauth_tokens(&self) {
        let now = std::time::Instant::now();
        for exp in locked(&self.state.oauth_tokens).values_mut() {
            *exp = now;
        }
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
