//! Fake of the Meta Marketing API customer-file custom audience edge `/{audience}/users`.
//!
//! Contract followed (Meta docs unless noted):
//! - `POST /{version}/{audience_id}/users` adds, `DELETE` with the same parameters removes
//!   (Meta's Business SDK `customaudiencemixin.py`). `access_token` comes as a parameter
//!   (query or body) or `Authorization: Bearer`.
//! - `payload={"schema": ..., "data": [[...]]}` as a form field (JSON text) or inside a JSON
//!   body; optional `session`; at most 10,000 rows per request
//!   (<https://developers.facebook.com/docs/marketing-api/custom-audience-api>).
//! - Hashed keys (`EMAIL`, `PHONE`, `FN`, `LN`, `FI`, `GEN`, `DOBY`, `DOBM`, `DOBD`, `CT`,
//!   `ST`, `ZIP`, `COUNTRY`, `EMAIL_SHA256`, `PHONE_SHA256`) must be 64 lowercase hex digits;
//!   `EXTERN_ID`, `MADID`, `MOBILE_ADVERTISER_ID`, `UID`, `APPUID`, `PAGEUID`,
//!   `LOOKALIKE_VALUE` are sent raw. Invalid rows are counted into `num_invalid_entries`
//!   and sampled into `invalid_entry_samples`, not itemised.
//! - Errors use the Graph envelope `{"error":{message,type,code,error_subcode,fbtrace_id}}`:
//!   missing token 104, bad token 190, bad parameter 100, unknown audience 100/33.
//! - Throttling is answered with HTTP 400 and a throttling code, not 429. The Marketing API
//!   rate-limiting page relates the `custom_audience` quota to code 17 ("User request limit
//!   reached", subcode 2446079), so that is the default; [`MetaThrottle`] offers 613/1487742
//!   and 80003. The default budget is the Standard tier's hourly `custom_audience` minimum,
//!   190,000 calls per rolling hour
//!   (<https://developers.facebook.com/docs/marketing-api/overview/rate-limiting>). Every
//!   answer carries `X-Business-Use-Case-Usage`.
//!
//! Choices where the docs are silent or ambiguous:
//! - Membership is kept as members (people), each the identifiers of its latest row by
//!   canonical key (`EMAIL_SHA256` is filed as `EMAIL`, `PHONE_SHA256` as `PHONE`,
//!   `MOBILE_ADVERTISER_ID` as `MADID`). A row matches the members that share one of its
//!   identifying values (`EMAIL`, `PHONE`, `MADID`, `EXTERN_ID`, `UID`, `APPUID`), or, for a
//!   row without any, the members holding all of its values. Adding a row replaces the
//!   members it matches (else adds one); removing a row removes the members it matches, with
//!   all their identifiers, as removing a person from an audience does. Changes apply at
//!   once (Meta takes up to 24 h).
//! - A row is invalid when any non-empty cell is invalid for its key, or all cells are
//!   empty; `invalid_entry_samples` maps up to 10 invalid values to their schema key. Tests
//!   may add [`Rule`]s on schema keys (checked on the value as sent) to make more cells
//!   invalid, standing in for identifiers Meta cannot use.
//! - Over 10,000 rows, a row length not matching the schema, or an unknown schema key: 400
//!   code 100. An empty `data` array is accepted (`num_received: 0`).
//! - A bad token is answered with HTTP 400 (Graph also uses 401 in places). Without a
//!   `session`, the answer carries a fresh random `session_id`.
//! - Sessions are recorded (batch numbers, last-batch flag, totals) but not enforced.

mod params;
mod payload;
mod state;
mod users;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::Router;

use crate::faults::{FaultPlan, Faults, RateLimit};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::rules::Rule;
use crate::server::FakeServer;
use state::{Audience, MtState};

/// The throttling error the fake answers with (HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaThrottle {
    /// `error.code`.
    pub code: u32,
    /// `error.error_subcode`.
    pub subcode: Option<u32>,
    /// `error.message`.
    pub message: String,
}

impl MetaThrottle {
    /// Code 17, subcode 2446079: "User request limit reached" (the default).
    pub fn user_request_limit() -> Self {
        Self {
            code: 17,
            subcode: Some(2_446_079),
            message: "User request limit reached".into(),
        }
    }

    /// Code 613, subcode 1487742: too many calls from this ad account.
    pub fn ad_account() -> Self {
        Self {
            code: 613,
            subcode: Some(1_487_742),
            message: "There have been too many calls from this ad-account. Please wait a bit and try again.".into(),
        }
    }

    /// Code 80003: the custom-audience business-use-case limit as clients commonly map it.
    pub fn custom_audience_buc() -> Self {
        Self {
            code: 80_003,
            subcode: None,
            message: "There have been too many calls to this ad-account. Wait a bit and try again."
                .into(),
        }
    }
}

/// What the fake recorded of one upload session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRecord {
    /// Client-chosen `session_id`.
    pub session_id: u64,
    /// `batch_seq` of every request, in arrival order.
    pub batch_seqs: Vec<u64>,
    /// Whether a request had `last_batch_flag: true`.
    pub last_batch_received: bool,
    /// Latest `estimated_num_total`.
    pub estimated_num_total: Option<u64>,
    /// Rows received over the session.
    pub num_received: u64,
    /// Invalid rows over the session.
    pub num_invalid_entries: u64,
}

/// Settings of a [`MetaFake`].
#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// The access token accepted.
    pub access_token: String,
    /// Audiences that exist (others answer 100/33).
    pub audiences: Vec<String>,
    /// Rows per request (10,000).
    pub max_rows: usize,
    /// Throttling error (default code 17).
    pub throttle: MetaThrottle,
    /// Ad account named in `X-Business-Use-Case-Usage`.
    pub ad_account_id: String,
    /// Initial fault plan (default: 190,000 calls per rolling hour).
    pub faults: FaultPlan,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            access_token: "meta-system-user-token".into(),
            audiences: vec!["23850000000000001".into()],
            max_rows: 10_000,
            throttle: MetaThrottle::user_request_limit(),
            ad_account_id: "1234567890".into(),
            faults: FaultPlan {
                rate_limit: Some(RateLimit::sliding(190_000, Duration::from_secs(3600))),
                ..FaultPlan::default()
            },
        }
    }
}

/// A running Meta custom audiences fake.
pub struct MetaFake {
    server: FakeServer,
    state: Arc<MtState>,
}

impl MetaFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: MetaConfig) -> io::Result<Self> {
        let audiences = config
            .audiences
            .iter()
            .map(|id| (id.clone(), Audience::default()))
            .collect();
        let state = Arc::new(MtState {
            audiences: Mutex::new(audiences),
            rules: Mutex::new(Vec::new()),
            faults: Faults::new(config.faults.clone()),
            log: RequestLog::default(),
            config: Mutex::new(config),
        });
        let router = Router::new()
            .route(
                "/{version}/{audience_id}/users",
                post(users::users).delete(users::users),
            )
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<MtState>));
        let server = FakeServer::start(router).await?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT` (Meta's `https://graph.facebook.com`).
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The fault plan and its counters.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.all()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.state.log.clear()
    }

    /// Creates an (empty) audience.
    pub fn create_audience(&self, audience_id: &str) {
        self.state
            .audiences()
            .entry(audience_id.to_string())
            .or_default();
    }

    /// Membership of an audience: canonical key (`EMAIL`, `PHONE`, `EXTERN_ID`, ...) →
    /// identifiers of all its members. Empty when the audience does not exist.
    pub fn audience(&self, audience_id: &str) -> BTreeMap<String, BTreeSet<String>> {
        self.state
            .audiences()
            .get(audience_id)
            .map(|a| a.by_key())
            .unwrap_or_default()
    }

    /// Members (people) of an audience, each as canonical key → identifier.
    pub fn people(&self, audience_id: &str) -> Vec<BTreeMap<String, String>> {
        self.state
            .audiences()
            .get(audience_id)
            .map(|a| a.members.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a validation rule on a schema key (e.g. `EXTERN_ID`), checked on each cell as
    /// sent; a refused cell makes its row an invalid entry, counted and sampled.
    pub fn add_rule(&self, rule: Rule) {
        self.state
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rule);
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.state
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Identifiers of one key in an audience (`EMAIL_SHA256` may be passed for `EMAIL`).
    pub fn members(&self, audience_id: &str, key: &str) -> BTreeSet<String> {
        let key = payload::canonical_key(key).to_string();
        self.audience(audience_id).remove(&key).unwrap_or_default()
    }

    /// Upload sessions seen for an audience, in first-seen order.
    pub fn sessions(&self, audience_id: &str) -> Vec<SessionRecord> {
        self.state
            .audiences()
            .get(audience_id)
            .map(|a| a.sessions.clone())
            .unwrap_or_default()
    }

    /// Changes the throttling error.
    pub fn set_throttle(&self, throttle: MetaThrottle) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .throttle = throttle;
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
