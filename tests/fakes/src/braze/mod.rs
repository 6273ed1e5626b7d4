//! Fake of the Braze REST API user endpoints `/users/track` and `/users/delete`.
//!
//! Contract followed (Braze docs, <https://www.braze.com/docs/api/>):
//! - Auth: `Authorization: Bearer <REST API key>`; a wrong or missing key gets 401
//!   (<https://www.braze.com/docs/api/errors/>).
//! - `/users/track`: at most 75 objects per request, counted across `attributes`, `events`
//!   and `purchases` combined (the current wording of <https://www.braze.com/docs/api/api_limits/>;
//!   [`TrackLimit::PerArray`] models the legacy 75-per-array limit). Success answers
//!   `{"message":"success","attributes_processed":N,...}`, with non-fatal `errors[]` of
//!   `{type, input_array, index}` for invalid objects.
//! - `/users/delete`: exactly one identifier array, at most 50 identifiers, answering
//!   `{"deleted": N, "message": "success"}`.
//! - Rate limits per workspace: `/users/track` 3,000 requests per 3 s; `/users/delete`
//!   20,000 per minute (shared with alias/identify/merge). Every answer carries
//!   `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch seconds);
//!   over the limit: 429.
//!
//! Choices where the docs are silent or ambiguous:
//! - Success status is 201 for both endpoints (Braze does not state it; 201 is what its API
//!   is observed to answer). Connectors should accept any 2xx.
//! - Windows are fixed (reset at the instant `X-RateLimit-Reset` announces). The 429 body
//!   is `{"message":"Rate Limited"}` (the errors page's wording; no body is documented);
//!   `Retry-After` per [`crate::faults`].
//! - Per-item error `type` strings are descriptive text (Braze does not list them); a
//!   request where every object is invalid still answers 201 "success" with `errors[]`.
//! - Processing is applied synchronously (Braze queues it; tests read the result at once).
//! - `deleted` counts every identifier accepted, known or not.
//! - Identifier precedence: `external_id`, `braze_id`, `user_alias` (at most one of these),
//!   else `email`, else `phone`; with an `external_id`, `email`/`phone` are attributes.

mod delete;
mod state;
mod track;
mod users;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::faults::{FaultPlan, Faults, RateLimit};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::rules::Rule;
use crate::server::FakeServer;
use state::{BrState, DELETE_BUCKET, TRACK_BUCKET};
use users::Users;

/// How many objects one `/users/track` request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackLimit {
    /// At most N objects across attributes, events and purchases together (current docs).
    Combined(usize),
    /// At most N objects in each array (legacy limits).
    PerArray(usize),
}

/// Settings of a [`BrazeFake`].
#[derive(Clone, Debug)]
pub struct BrazeConfig {
    /// The REST API key accepted as `Bearer`.
    pub api_key: String,
    /// Batch limit of `/users/track` (default `Combined(75)`).
    pub track_limit: TrackLimit,
    /// Identifiers per `/users/delete` (50).
    pub delete_limit: usize,
    /// Budget of `/users/track` (default fixed 3,000 per 3 s).
    pub track_rate_limit: Option<RateLimit>,
    /// Budget of `/users/delete` (default fixed 20,000 per 60 s).
    pub delete_rate_limit: Option<RateLimit>,
    /// Initial fault plan (no global budget: Braze budgets are per endpoint).
    pub faults: FaultPlan,
}

impl Default for BrazeConfig {
    fn default() -> Self {
        Self {
            api_key: "braze-rest-api-key".into(),
            track_limit: TrackLimit::Combined(75),
            delete_limit: 50,
            track_rate_limit: Some(RateLimit::fixed(3_000, Duration::from_secs(3))),
            delete_rate_limit: Some(RateLimit::fixed(20_000, Duration::from_secs(60))),
            faults: FaultPlan::default(),
        }
    }
}

/// A running Braze fake.
pub struct BrazeFake {
    server: FakeServer,
    state: Arc<BrState>,
}

impl BrazeFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: BrazeConfig) -> io::Result<Self> {
        let faults = Faults::new(config.faults.clone());
        faults.set_bucket_rate_limit(TRACK_BUCKET, config.track_rate_limit);
        faults.set_bucket_rate_limit(DELETE_BUCKET, config.delete_rate_limit);
        let state = Arc::new(BrState {
            users: Mutex::new(Users::default()),
            faults,
            log: RequestLog::default(),
            config: Mutex::new(config),
        });
        let router = Router::new()
            .route("/users/track", post(track::track))
            .route("/users/delete", post(delete::delete))
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<BrState>));
        let server = FakeServer::start(router).await?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT` (a Braze REST endpoint such as `https://rest.iad-01.braze.com`).
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// The fault plan and its counters; per-endpoint budgets are the buckets
    /// `"users/track"` and `"users/delete"` ([`Faults::set_bucket_rate_limit`]).
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

    /// Attributes of the user with this `external_id`.
    pub fn user(&self, external_id: &str) -> Option<Value> {
        self.state
            .users()
            .profiles
            .get(external_id)
            .cloned()
            .map(Value::Object)
    }

    /// Every profile by store key: the external id, or `braze_id:..`,
    /// `alias:<label>:<name>`, `email:..`, `phone:..` for users without one.
    pub fn users(&self) -> BTreeMap<String, Value> {
        self.state
            .users()
            .profiles
            .iter()
            .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
            .collect()
    }

    /// Events recorded for a user (by store key).
    pub fn events(&self, key: &str) -> Vec<Value> {
        self.state
            .users()
            .events
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Purchases recorded for a user (by store key).
    pub fn purchases(&self, key: &str) -> Vec<Value> {
        self.state
            .users()
            .purchases
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Store keys of users deleted so far, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.state.users().deleted.clone()
    }

    /// Seeds a profile for `external_id` with `attributes` (a JSON object).
    pub fn insert_user(&self, external_id: &str, attributes: Value) {
        let map = attributes.as_object().cloned().unwrap_or_default();
        self.state
            .users()
            .profiles
            .insert(external_id.to_string(), map);
    }

    /// Adds a validation rule on attributes objects; a broken rule becomes a non-fatal
    /// error whose `type` is the rule's message.
    pub fn add_rule(&self, rule: Rule) {
        self.state.users().rules.push(rule);
    }

    /// Changes the `/users/track` batch limit.
    pub fn set_track_limit(&self, limit: TrackLimit) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .track_limit = limit;
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
