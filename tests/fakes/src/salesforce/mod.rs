//! Fake of the Salesforce login endpoint and REST API: OAuth token, sObject Collections and
//! Bulk API 2.0 ingest, one server playing both the login host and the instance.
//!
//! Contract followed (vendor docs unless noted; details in each submodule):
//! - `POST /services/oauth2/token`, form-encoded: JWT bearer (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
//!   RS256 assertion verified against the configured public key; `iss`, `sub`/`prn`, `aud`,
//!   `exp`) and client credentials. Errors are 400 `{"error","error_description"}`.
//!   Responses carry `access_token`, `instance_url` (this server), `id`, `token_type`,
//!   `issued_at`, `signature`, `scope`, and no `expires_in`
//!   (<https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm>).
//! - Every REST call needs `Authorization: Bearer <token>`; a missing, unknown or expired
//!   token gets 401 `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`
//!   (<https://developer.salesforce.com/docs/platform/api-rest/guide/errorcodes.html>).
//!   Token lifetime is the org's session timeout, so it is configurable here.
//! - The org's API allocation is a rolling 24 h window (default 100,000 requests); the
//!   throttled answer is 403 `REQUEST_LIMIT_EXCEEDED` (there is no 429), and every REST
//!   answer carries `Sforce-Limit-Info: api-usage=used/limit`.
//! - sObject Collections (≤ 200 records, `allOrNone`) and Bulk API 2.0 (CSV, 150 MB
//!   base64-counted per upload) write one shared store.
//! - SOQL `GET .../query?q=` reads it: `SELECT f, ... FROM SObject [WHERE f IN (...) | f = x | f != x]
//!   [ORDER BY f] [LIMIT n]`, pages of `Sforce-Query-Options: batchSize` (default 2,000)
//!   continued through `nextRecordsUrl` (module `query`).
//!
//! Choices where the docs are silent or ambiguous:
//! - The fault plan applies to the REST API only, not to the token endpoint (separate
//!   hosts in production); `Retry-After` on the 403 is per [`crate::faults`].
//! - Over 200 records: 400 `EXCEEDED_ID_LIMIT` "record limit reached. cannot submit more
//!   than 200 records into this call" (as the API is observed to answer). More than 10
//!   type chunks: 400 `INVALID_BATCH_SIZE`. A record without `attributes.type`: 400 `INVALID_TYPE`.
//! - Update/delete of an id in the recycle bin: `ENTITY_IS_DELETED`; of an id never seen:
//!   `NOT_FOUND`; of a malformed id: `MALFORMED_ID`. Update without an id: `MISSING_ARGUMENT`.
//!   Failed results carry `"id": null`.
//! - Upsert: an `Id` in the record is `INVALID_FIELD`; a missing external id value is
//!   `MISSING_ARGUMENT`; a value matching several records is `DUPLICATE_EXTERNAL_ID`.
//! - JWT: `exp` at or before now is `invalid_grant`/"expired authorization code"; `exp`
//!   further ahead than [`SalesforceConfig::max_assertion_lifetime`] (default 5 min: the
//!   documented 3 min plus clock skew) is `invalid_grant`/"invalid assertion"; a wrong `iss`
//!   is `invalid_client_id`; a wrong audience is `invalid_grant`/"audience is invalid".
//! - Bulk: several uploads per open job are accepted (union of headers); closing a job with
//!   no data makes it `Failed`; results of a job that is not finished, and uploads to a
//!   closed job, get 409 `INVALIDJOBSTATE`; an oversize upload gets 400 `ClientInputError`.
//!   Result rows come back in input order (the API does not promise any order).

mod auth;
mod bulk;
mod bulk_csv;
mod collections;
mod errors;
mod org;
mod query;
mod soql;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use axum::Router;
use serde_json::{Map, Value};

use crate::faults::{FaultPlan, Faults, RateLimit};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::rules::{lookup, Rule};
use crate::server::FakeServer;
use crate::util::scalar_text;
use org::Org;
use state::{SfState, TOKEN_PATH};

/// The connected app allowed to use the JWT bearer flow.
#[derive(Clone, Debug)]
pub struct JwtClient {
    /// Consumer key, expected as `iss`.
    pub client_id: String,
    /// Username, expected as `sub` (or `prn`).
    pub username: String,
    /// PEM of the public key of the certificate uploaded to the app.
    pub public_key_pem: String,
}

/// The app allowed to use the client credentials flow.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
}

/// A per-record error injected for records whose `field` equals `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFault {
    /// Only records of this sObject (any when `None`).
    pub sobject: Option<String>,
    /// Field to match (case-insensitive name; `Id` matches record ids).
    pub field: String,
    /// Value to match (text form).
    pub value: String,
    /// `statusCode` to report, e.g. `UNABLE_TO_LOCK_ROW`.
    pub status_code: String,
    /// `message` to report.
    pub message: String,
    /// `fields` to report.
    pub fields: Vec<String>,
    /// Fail only this many attempts, then let the record through; `None` = always.
    pub times: Option<u32>,
}

impl RecordFault {
    /// Fails every save of a matching record with `status_code`.
    pub fn new(sobject: &str, field: &str, value: &str, status_code: &str) -> Self {
        let message = match status_code {
            "UNABLE_TO_LOCK_ROW" => {
                "unable to obtain exclusive access to this record or 1 records".to_string()
            }
            "DUPLICATE_VALUE" => format!(
                "duplicate value found: {field} duplicates value on record with id: unknown"
            ),
            "REQUIRED_FIELD_MISSING" => format!("Required fields are missing: [{field}]"),
            other => other.to_string(),
        };
        Self {
            sobject: Some(sobject.to_string()),
            field: field.to_string(),
            value: value.to_string(),
            status_code: status_code.to_string(),
            message,
            fields: Vec::new(),
            times: None,
        }
    }

    /// Transient lock contention on the first `times` attempts of a matching record.
    pub fn unable_to_lock_row(sobject: &str, field: &str, value: &str, times: u32) -> Self {
        Self::new(sobject, field, value, "UNABLE_TO_LOCK_ROW").times(times)
    }

    /// Fails only the first `n` attempts.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Reports `message`.
    pub fn message(mut self, message: &str) -> Self {
        self.message = message.to_string();
        self
    }

    /// Reports `fields`.
    pub fn fields(mut self, fields: &[&str]) -> Self {
        self.fields = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    pub(crate) fn matches(&self, sobject: &str, record: &Map<String, Value>) -> bool {
        self.sobject
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(sobject))
            && lookup(record, &self.field, true).is_some_and(|v| scalar_text(v) == self.value)
    }
}

/// Settings of a [`SalesforceFake`].
#[derive(Clone, Debug)]
pub struct SalesforceConfig {
    /// App allowed the JWT bearer flow (`None` refuses it).
    pub jwt: Option<JwtClient>,
    /// App allowed the client credentials flow (`None` refuses it).
    pub client_credentials: Option<ClientCredentials>,
    /// Accepted JWT `aud` values.
    pub jwt_audiences: Vec<String>,
    /// How far in the future a JWT `exp` may be.
    pub max_assertion_lifetime: Duration,
    /// Lifetime of issued access tokens (the org's session timeout; default 2 h).
    pub token_ttl: Duration,
    /// Records per collection request (200).
    pub collection_limit: usize,
    /// Type chunks per collection request (10).
    pub max_chunks: usize,
    /// Per-upload Bulk limit, counted base64-encoded (150 MiB).
    pub bulk_max_upload_bytes: u64,
    /// Time between closing a Bulk job and its processing.
    pub bulk_processing_delay: Duration,
    /// `(sObject, field)` pairs that must be unique (`DUPLICATE_VALUE`).
    pub unique_fields: Vec<(String, String)>,
    /// `(sObject, field)` pairs required on create (`REQUIRED_FIELD_MISSING`).
    pub required_fields: Vec<(String, String)>,
    /// Limit shown in `Sforce-Limit-Info` when no rate limit is set.
    pub daily_api_limit: u64,
    /// Org id used in tokens and identity URLs.
    pub org_id: String,
    /// User id of the token's user.
    pub user_id: String,
    /// Records per SOQL result page when the client asks for no batch size (2,000).
    pub query_page_size: usize,
    /// The org's sObjects; queries naming another get `INVALID_TYPE` (`None`: any name).
    pub sobjects: Option<Vec<String>>,
    /// Initial fault plan (default: 100,000 requests per rolling 24 h).
    pub faults: FaultPlan,
}

impl Default for SalesforceConfig {
    fn default() -> Self {
        Self {
            jwt: None,
            client_credentials: None,
            jwt_audiences: vec![
                "https://login.salesforce.com".into(),
                "https://test.salesforce.com".into(),
            ],
            max_assertion_lifetime: Duration::from_secs(300),
            token_ttl: Duration::from_secs(2 * 3600),
            collection_limit: 200,
            max_chunks: 10,
            bulk_max_upload_bytes: 150 * 1024 * 1024,
            bulk_processing_delay: Duration::ZERO,
            unique_fields: Vec::new(),
            required_fields: Vec::new(),
            daily_api_limit: 100_000,
            org_id: "00D5e000000FAKEEAA".into(),
            user_id: "0055e000000FAKEAAA".into(),
            query_page_size: 2000,
            sobjects: None,
            faults: FaultPlan {
                rate_limit: Some(RateLimit::sliding(100_000, Duration::from_secs(24 * 3600))),
                ..FaultPlan::default()
            },
        }
    }
}

/// A running Salesforce fake.
pub struct SalesforceFake {
    server: FakeServer,
    state: Arc<SfState>,
}

impl SalesforceFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: SalesforceConfig) -> io::Result<Self> {
        let org = Org {
            unique: config.unique_fields.clone(),
            required: config.required_fields.clone(),
            ..Org::default()
        };
        let state = Arc::new(SfState {
            org: Mutex::new(org),
            jobs: Mutex::new(BTreeMap::new()),
            cursors: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            tokens_issued: AtomicU64::new(0),
            next_job: AtomicU64::new(0),
            base_url: OnceLock::new(),
            faults: Faults::new(config.faults.clone()),
            log: RequestLog::default(),
            config: Mutex::new(config),
        });
        let data = "/services/data/{version}";
        let router = Router::new()
            .route(TOKEN_PATH, post(auth::token))
            .route(
                &format!("{data}/composite/sobjects"),
                post(collections::create)
                    .patch(collections::update)
                    .delete(collections::delete),
            )
            .route(
                &format!("{data}/composite/sobjects/{{sobject}}/{{field}}"),
                patch(collections::upsert),
            )
            .route(&format!("{data}/query"), get(query::query))
            .route(&format!("{data}/query/{{locator}}"), get(query::more))
            .route(&format!("{data}/jobs/ingest"), post(bulk::create))
            .route(
                &format!("{data}/jobs/ingest/{{job_id}}"),
                get(bulk::info).patch(bulk::patch).delete(bulk::delete),
            )
            .route(
                &format!("{data}/jobs/ingest/{{job_id}}/{{resource}}"),
                get(bulk::results).put(bulk::upload),
            )
            .route(
                &format!("{data}/jobs/ingest/{{job_id}}/{{resource}}/"),
                get(bulk::results).put(bulk::upload),
            )
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<SfState>));
        let server = FakeServer::start(router).await?;
        let _ = state.base_url.set(server.base_url().to_string());
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`: both the login host and the `instance_url`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// `{base_url}/services/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url())
    }

    /// The fault plan and its counters (REST API only).
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request so far, in arrival order (token requests included).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state.log.clear()
    }

    fn settle_jobs(&self) {
        let delay = self.state.config().bulk_processing_delay;
        let mut jobs = self.state.jobs();
        let mut org = self.state.org();
        for job in jobs.values_mut() {
            job.settle(&mut org, delay);
        }
    }

    /// Records of `sobject` (fields as stored, with `Id`), in id order; due Bulk jobs are
    /// processed first.
    pub fn records(&self, sobject: &str) -> Vec<Value> {
        self.settle_jobs();
        let org = self.state.org();
        org.data
            .records(sobject)
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    /// The record of `sobject` whose `field` (case-insensitive) equals `value`.
    pub fn get(&self, sobject: &str, field: &str, value: &str) -> Option<Value> {
        self.records(sobject).into_iter().find(|r| {
            r.as_object()
                .and_then(|m| lookup(m, field, true))
                .is_some_and(|v| scalar_text(v) == value)
        })
    }

    /// Ids in the recycle bin (soft-deleted).
    pub fn deleted_ids(&self) -> Vec<String> {
        self.state.org().data.deleted_ids()
    }

    /// Seeds a record (bypassing rules and faults) and returns its id.
    pub fn insert(&self, sobject: &str, fields: Value) -> String {
        let map = fields.as_object().cloned().unwrap_or_default();
        self.state.org().seed(sobject, &map)
    }

    /// Adds a validation rule (default code `FIELD_CUSTOM_VALIDATION_EXCEPTION`).
    pub fn add_rule(&self, sobject: &str, rule: Rule) {
        self.state.org().rules.push((sobject.to_string(), rule));
    }

    /// Makes `field` of `sobject` unique (`DUPLICATE_VALUE`).
    pub fn add_unique_field(&self, sobject: &str, field: &str) {
        self.state.org().unique.push((sobject.into(), field.into()));
    }

    /// Makes `field` of `sobject` required on create (`REQUIRED_FIELD_MISSING`).
    pub fn add_required_field(&self, sobject: &str, field: &str) {
        self.state
            .org()
            .required
            .push((sobject.into(), field.into()));
    }

    /// Injects a per-record error.
    pub fn inject(&self, fault: RecordFault) {
        self.state.org().faults.push(fault);
    }

    /// Removes every injected per-record error.
    pub fn clear_injected(&self) {
        self.state.org().faults.clear();
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .token_ttl = ttl;
    }

    /// Accepts `audience` as a JWT `aud` from now on (e.g. [`SalesforceFake::base_url`], when
    /// a client derives the audience from the login URL it is given).
    pub fn add_jwt_audience(&self, audience: &str) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .jwt_audiences
            .push(audience.to_string());
    }

    /// Sets the number of records per SOQL result page (when the client asks for none).
    pub fn set_query_page_size(&self, n: usize) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .query_page_size = n.max(1);
    }

    /// Expires every token issued so far (the next REST call gets `INVALID_SESSION_ID`).
    pub fn expire_tokens(&self) {
        self.state.expire_tokens()
    }

    /// Mints a valid access token without the OAuth dance.
    pub fn issue_token(&self) -> String {
        self.state.issue_token()
    }

    /// Tokens issued so far (by either flow or [`SalesforceFake::issue_token`]).
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Sets the delay between closing a Bulk job and its processing.
    pub fn set_bulk_processing_delay(&self, delay: Duration) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bulk_processing_delay = delay;
    }

    /// Sets the per-upload Bulk size limit (base64-counted bytes).
    pub fn set_bulk_max_upload_bytes(&self, bytes: u64) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bulk_max_upload_bytes = bytes;
    }

    /// Job info of every Bulk job, as `GET .../jobs/ingest/{id}` renders it.
    pub fn bulk_jobs(&self) -> Vec<Value> {
        self.settle_jobs();
        let user = self.state.config().user_id;
        self.state
            .jobs()
            .values()
            .map(|j| j.info(true, &user))
            .collect()
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
