//! Fake of the Snowflake driver REST protocol for what fakesnow does not cover: chunked
//! results, key-pair and password login with the real error codes, session expiry and
//! renewal, long/async queries with `getResultUrl` polling and abort, and `QUERY_TAG`.
//! SQL runs on the test's real PostgreSQL (results are what PostgreSQL computed; Snowflake
//! SQL dialect features are therefore not available).
//!
//! Contract followed (the drivers' wire code: gosnowflake `restful.go`, `auth.go`,
//! `query.go`, `chunk_downloader.go`, `rows.go`, `errors.go`; the Python connector's
//! converters; <https://docs.snowflake.com/en/user-guide/key-pair-auth>):
//! - Every answer is HTTP 200 `{"data", "code", "message", "success"}` unless noted.
//! - `POST /session/v1/login-request?databaseName=&schemaName=&warehouse=&roleName=` with
//!   `{"data": {ACCOUNT_NAME, LOGIN_NAME, PASSWORD | AUTHENTICATOR: SNOWFLAKE_JWT + TOKEN,
//!   SESSION_PARAMETERS, CLIENT_APP_ID, ...}}` answers `token`, `masterToken`,
//!   `validityInSeconds`, `masterValidityInSeconds`, `sessionId`, `parameters`,
//!   `sessionInfo`. Failures: `390100` "Incorrect username or password was specified.",
//!   `390144` `"JWT token is invalid. [<request id>]"`.
//! - Later calls send `Authorization: Snowflake Token="<token>"`. An expired token answers
//!   `390112` "Your session has expired. Please login again."; `POST
//!   /session/token-request` with the master token and `{"oldSessionToken", "requestType":
//!   "RENEW"}` answers `sessionToken`, `validityInSecondsST`, `masterToken`,
//!   `validityInSecondsMT`; an expired master token is `390114`.
//! - `POST /queries/v1/query-request?requestId=` with `sqlText`, `asyncExec`, `sequenceId`,
//!   `parameters`, `bindings`; `GET /queries/{id}/result`, `GET /monitoring/queries/{id}`,
//!   `POST /queries/v1/abort-request` (module `query`; result shape in module `result`).
//! - Checked end to end with snowflake-connector-python 5.2 (password and key-pair login,
//!   JSON and Arrow results over several chunks, automatic renewal after `390112`,
//!   `execute_async` + `get_results_from_sfqid`) during development; the tests here use
//!   plain HTTP.
//! - Request bodies may be gzip (`Content-Encoding: gzip`).
//!
//! Choices where the drivers do not pin the server down: no `Authorization` header at all
//! is 401 `390101`; an unknown or logged-out token `390111`; a renew whose old token does
//! not match is `390113`; SQL errors map PostgreSQL's SQLSTATE to the nearest Snowflake
//! code (`002003`/42S02 for a missing table, `001003` syntax, `000904` column, `100051`
//! division by zero); DML answers Snowflake's count columns (`number of rows inserted`,
//! ...); throttling is a bare 429 and injected faults bare 5xx; `chunkHeaders` carries an
//! opaque stand-in for the key's MD5. A results-format session parameter whose name ends
//! in `QUERY_RESULT_FORMAT` (`GO_QUERY_RESULT_FORMAT`, `PYTHON_CONNECTOR_...`) picks
//! JSON or Arrow; otherwise [`SnowflakeConfig::result_format`].

mod auth;
mod body;
mod chunks;
mod query;
mod result;
mod session;
mod state;
mod types;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

use crate::faults::{FaultPlan, Faults};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::server::FakeServer;
use state::{locked, SfState, CHUNK_PREFIX};
pub use state::{LoginRecord, QueryRecord};

/// A user of the fake account.
#[derive(Clone, Debug)]
pub struct SnowflakeUser {
    /// Login name (matched case-insensitively).
    pub name: String,
    /// Password, when password login is allowed.
    pub password: Option<String>,
    /// PEM `PUBLIC KEY` (RSA) registered for key-pair login (`RSA_PUBLIC_KEY`).
    pub public_key_pem: Option<String>,
}

/// Result encoding when the client asks for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultFormat {
    /// `rowset` and JSON chunks.
    Json,
    /// `rowsetBase64` and Arrow IPC chunks.
    Arrow,
}

/// How result chunk downloads are authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkAuth {
    /// The response lists `chunkHeaders` to send as they are (AWS deployments).
    ChunkHeaders,
    /// No `chunkHeaders`: the client derives the SSE-C headers from `qrmk`.
    Qrmk,
}

/// Settings of a [`SnowflakeFake`].
#[derive(Clone, Debug)]
pub struct SnowflakeConfig {
    /// PostgreSQL the queries run on.
    pub postgres_url: String,
    /// Account identifier, e.g. `MYORG-ETL` (a `.region` suffix is ignored).
    pub account: String,
    /// Users who may log in.
    pub users: Vec<SnowflakeUser>,
    /// Session database/schema/warehouse/role when login names none. The schema is also
    /// the PostgreSQL `search_path` (lower-cased).
    pub database: String,
    /// See `database`.
    pub schema: String,
    /// See `database`.
    pub warehouse: String,
    /// See `database`.
    pub role: String,
    /// Session token validity (default 1 h).
    pub session_ttl: Duration,
    /// Master token validity (default 4 h).
    pub master_ttl: Duration,
    /// Rows in the inline first chunk and in each downloadable chunk (default 1,000).
    pub rows_per_chunk: usize,
    /// Default result encoding.
    pub result_format: ResultFormat,
    /// How chunk downloads are authorised.
    pub chunk_auth: ChunkAuth,
    /// How long a synchronous query (or a result poll) is held before `333333` (45 s).
    pub sync_wait: Duration,
    /// Initial fault plan (login, session and query endpoints; not chunk downloads).
    pub faults: FaultPlan,
}

impl SnowflakeConfig {
    /// Defaults for `account` with queries on `postgres_url`.
    pub fn new(postgres_url: &str, account: &str, users: Vec<SnowflakeUser>) -> Self {
        Self {
            postgres_url: postgres_url.to_string(),
            account: account.to_string(),
            users,
            database: "TEST".into(),
            schema: "PUBLIC".into(),
            warehouse: "COMPUTE_WH".into(),
            role: "SYSADMIN".into(),
            session_ttl: Duration::from_secs(3600),
            master_ttl: Duration::from_secs(4 * 3600),
            rows_per_chunk: 1000,
            result_format: ResultFormat::Json,
            chunk_auth: ChunkAuth::ChunkHeaders,
            sync_wait: Duration::from_secs(45),
            faults: FaultPlan::default(),
        }
    }
}

/// A running Snowflake fake.
pub struct SnowflakeFake {
    server: FakeServer,
    state: Arc<SfState>,
}

impl SnowflakeFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: SnowflakeConfig) -> io::Result<Self> {
        let state = Arc::new(SfState {
            faults: Faults::new(config.faults.clone()),
            config: Mutex::new(config),
            sessions: Mutex::new(HashMap::new()),
            queries: Mutex::new(HashMap::new()),
            chunks: Mutex::new(HashMap::new()),
            logins: Mutex::new(Vec::new()),
            query_log: Mutex::new(Vec::new()),
            base_url: OnceLock::new(),
            log: RequestLog::default(),
        });
        let router = Router::new()
            .route("/session/v1/login-request", post(auth::login))
            .route("/session/token-request", post(auth::renew))
            .route("/session", post(auth::logout))
            .route("/queries/v1/query-request", post(query::query_request))
            .route("/queries/v1/abort-request", post(query::abort))
            .route("/queries/{id}/result", get(query::result))
            .route("/monitoring/queries/{id}", get(query::monitoring))
            // The Python connector's core asks for `/monitoring/queries//<id>`.
            .route("/monitoring/queries//{id}", get(query::monitoring))
            .route("/telemetry/send", post(query::telemetry))
            .route(&format!("{CHUNK_PREFIX}{{token}}"), get(chunks::download))
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<SfState>));
        let server = FakeServer::start(router).await?;
        let _ = state.base_url.set(server.base_url().to_string());
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`: the account URL (and the chunks' "cloud storage").
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The fault plan and its counters.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request so far, with the status it got.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Every login attempt.
    pub fn logins(&self) -> Vec<LoginRecord> {
        locked(&self.state.logins).clone()
    }

    /// Every query request that carried a valid session token, with its `QUERY_TAG`.
    pub fn queries(&self) -> Vec<QueryRecord> {
        locked(&self.state.query_log).clone()
    }

    /// Expires every session token (not the master tokens): the next call gets `390112`.
    pub fn expire_session_tokens(&self) {
        let now = Instant::now();
        locked(&self.state.sessions)
            .values_mut()
            .for_each(|s| s.token_expires = now);
    }

    /// Expires every master token: renewal gets `390114`.
    pub fn expire_master_tokens(&self) {
        let now = Instant::now();
        locked(&self.state.sessions)
            .values_mut()
            .for_each(|s| s.master_expires = now);
    }

    /// Sets how long master tokens of later logins last.
    pub fn set_master_ttl(&self, ttl: Duration) {
        locked(&self.state.config).master_ttl = ttl;
    }

    /// Sets the rows per chunk (queries answered from now on).
    pub fn set_rows_per_chunk(&self, rows: usize) {
        locked(&self.state.config).rows_per_chunk = rows.max(1);
    }

    /// Sets how long synchronous queries and result polls are held.
    pub fn set_sync_wait(&self, wait: Duration) {
        locked(&self.state.config).sync_wait = wait;
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
