//! Fake of the Amazon Redshift Data API, executing the SQL on the test's real PostgreSQL.
//!
//! Contract followed (botocore's `redshift-data/2019-12-20/service-2.json` service model and
//! the Data API guide, <https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html>):
//! - AWS JSON 1.1: `POST /`, `X-Amz-Target: RedshiftData.<Operation>`, `Content-Type:
//!   application/x-amz-json-1.1`, JSON bodies with the model's member names; timestamps are
//!   epoch seconds. Errors are `{"__type": "<Shape>", "Message": ...}` with HTTP 400
//!   (`ValidationException`, `ResourceNotFoundException` + `ResourceId`,
//!   `ActiveStatementsExceededException`, `ThrottlingException`) or 500
//!   (`ExecuteStatementException` + `StatementId`, `InternalServerException`).
//! - `ExecuteStatement` (`Sql`, `Database`, `ClusterIdentifier` [+ `DbUser`] or
//!   `WorkgroupName`, or `SecretArn`; `Parameters` `[{name, value}]` bound to `:name`
//!   markers and converted implicitly, as the model says; `StatementName`, `WithEvent`,
//!   `ClientToken` idempotency) answers at once with `Id`; the statement then runs
//!   asynchronously: SUBMITTED, PICKED, STARTED, then FINISHED / FAILED / ABORTED.
//! - `DescribeStatement`: `Status`, `Error` (PostgreSQL's message after `ERROR: `),
//!   `HasResultSet`, `ResultRows` (rows returned, or affected for DML; -1 until finished),
//!   `ResultSize`, `Duration` (nanoseconds), `QueryString`, `QueryParameters`, `RedshiftPid`
//!   (the real PostgreSQL backend), `RedshiftQueryId`, `CreatedAt`, `UpdatedAt`.
//! - `GetStatementResult`: `ColumnMetadata`, `Records` (lists of `Field` unions, see
//!   `types`), `TotalNumRows`, and `NextToken` while rows remain.
//! - `CancelStatement` on a SUBMITTED/PICKED/STARTED statement answers `{"Status": true}`,
//!   sends PostgreSQL a cancel request, and the statement ends ABORTED.
//! - Limits from the troubleshooting guide: a row over 64 KB fails the statement with
//!   "Packet for query is too large", a result over 100 MB with "Database response exceeded
//!   size limit". Results are kept 24 h (configurable), then the id is unknown.
//! - Requests need a SigV4-shaped `Authorization` header (its signature is not checked):
//!   none is 400 `MissingAuthenticationTokenException`, a malformed one 400
//!   `IncompleteSignatureException`.
//!
//! Checked end to end with boto3/botocore 1.44 during development (execute, describe,
//! the `get_statement_result` paginator, blobs, cancel, error codes); the tests here use
//! plain HTTP.
//!
//! Choices where the docs are silent: the page size of `GetStatementResult` is a row count
//! ([`RedshiftDataConfig::page_rows`]); the quota of active statements defaults to 500;
//! a `:name` with no value is a `ValidationException` at `ExecuteStatement`; an unknown
//! `Database` fails the statement as PostgreSQL would; calling `GetStatementResult` before
//! FINISHED (or for a statement without a result set) is `ResourceNotFoundException` "Query
//! does not have result. Please check query status with DescribeStatement."; a cancel of a
//! finished statement is a `ValidationException`. Throttled answers carry `Retry-After` as
//! the shared fault plan decides (AWS sends none). Not modelled, and refused with a
//! `ValidationException` saying so: `ResultFormat: CSV` (GetStatementResultV2) and sessions
//! (`SessionId`, `SessionKeepAliveSeconds`); `BatchExecuteStatement`, `ListStatements` and
//! the metadata operations answer `UnknownOperationException`.

// Shared with the Databricks and Snowflake fakes, which also run their SQL on PostgreSQL.
pub(crate) mod ipc;
pub(crate) mod pg;
pub(crate) mod pgtext;
pub(crate) mod sqltext;

mod errors;
mod ops;
mod run;
mod state;
mod types;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::Router;

use crate::faults::{FaultPlan, Faults};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::server::FakeServer;
pub use state::RedshiftCall;
use state::{locked, RsState};

/// Settings of a [`RedshiftDataFake`].
#[derive(Clone, Debug)]
pub struct RedshiftDataConfig {
    /// PostgreSQL the statements run on, e.g. `postgres://postgres@127.0.0.1:5432/test`.
    pub postgres_url: String,
    /// The only `Database` that exists (others fail as PostgreSQL would); default `test`.
    pub database: String,
    /// Time a statement spends in SUBMITTED, then in PICKED (default 20 ms each).
    pub queue_delay: Duration,
    /// Records per `GetStatementResult` page (default 1,000).
    pub page_rows: usize,
    /// How long results stay retrievable after a statement ends (default 24 h).
    pub result_ttl: Duration,
    /// Active (SUBMITTED, PICKED, STARTED) statements allowed (default 500).
    pub max_active_statements: usize,
    /// Result size limit in bytes of value text (default 100 MB).
    pub max_result_bytes: usize,
    /// Initial fault plan.
    pub faults: FaultPlan,
}

impl RedshiftDataConfig {
    /// Defaults for statements on `postgres_url`.
    pub fn new(postgres_url: &str) -> Self {
        Self {
            postgres_url: postgres_url.to_string(),
            database: "test".into(),
            queue_delay: Duration::from_millis(20),
            page_rows: 1000,
            result_ttl: Duration::from_secs(24 * 3600),
            max_active_statements: 500,
            max_result_bytes: 100 * 1024 * 1024,
            faults: FaultPlan::default(),
        }
    }
}

/// A running Redshift Data API fake.
pub struct RedshiftDataFake {
    server: FakeServer,
    state: Arc<RsState>,
}

impl RedshiftDataFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: RedshiftDataConfig) -> io::Result<Self> {
        let state = Arc::new(RsState {
            faults: Faults::new(config.faults.clone()),
            config: Mutex::new(config),
            statements: Mutex::new(HashMap::new()),
            client_tokens: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
            execute_failures: AtomicU32::new(0),
            log: RequestLog::default(),
        });
        let router = Router::new()
            .route("/", post(ops::dispatch))
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<RsState>));
        let server = FakeServer::start(router).await?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL to give an AWS SDK client.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The fault plan and its counters.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request so far, with the status it got (refused ones included).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Every call that reached an operation: target, `Authorization`, body, status.
    pub fn calls(&self) -> Vec<RedshiftCall> {
        locked(&self.state.calls).clone()
    }

    /// Makes the next `n` `ExecuteStatement` calls fail with `ExecuteStatementException`.
    pub fn fail_next_executes(&self, n: u32) {
        self.state.execute_failures.store(n, Ordering::SeqCst);
    }

    /// Sets the records per `GetStatementResult` page.
    pub fn set_page_rows(&self, rows: usize) {
        locked(&self.state.config).page_rows = rows.max(1);
    }

    /// Sets how long results stay retrievable after a statement ends.
    pub fn set_result_ttl(&self, ttl: Duration) {
        locked(&self.state.config).result_ttl = ttl;
    }

    /// Statuses of every known statement, by id.
    pub fn statuses(&self) -> HashMap<String, String> {
        self.state
            .statements()
            .iter()
            .map(|(id, st)| (id.clone(), st.status.as_str().to_string()))
            .collect()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
