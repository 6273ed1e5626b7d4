//! Fake of the HubSpot CRM v3 batch object API.
//!
//! Contract followed (vendor docs unless noted):
//! - Auth: `Authorization: Bearer <private app token>`; a missing or wrong token gets 401
//!   `{"status":"error","message":...,"correlationId":...,"category":"INVALID_AUTHENTICATION"}`
//!   (<https://developers.hubspot.com/changelog/improvements-to-authentication-errors-for-v3-endpoints-in-developer-preview-program>).
//! - Endpoints `POST /crm/v3/objects/{objectType}/batch/{create,read,update,upsert,archive}`
//!   answering 201 / 200 / 200 / 200 / 204, or 207 multi-status with `numErrors` + `errors[]`
//!   (SDK `BatchApi.ts` in HubSpot/hubspot-api-nodejs; <https://developers.hubspot.com/docs/api-reference/error-handling>).
//!   `objectType` may be a name or its id (`0-1` = contacts).
//! - Upsert inputs carry `id` + `idProperty` (a unique property); results carry `new`
//!   (<https://developers.hubspot.com/docs/api-reference/latest/crm/objects/custom-objects/batch/upsert-custom-objects>).
//!   A non-unique `idProperty` (including `hs_object_id`) fails with 400 "Unable to perform
//!   update/upsert by non-unique ..." (observed, segmentio/action-destinations#3957).
//! - `GET /crm/v3/objects/{objectType}` lists records a page at a time (`limit` <= 100,
//!   `after`, `properties`, `archived`; see `list.rs`), and `GET /crm/v3/properties/{objectType}`
//!   returns property definitions (`type`, `fieldType`, `hasUniqueValue`,
//!   `modificationMetadata.readOnlyValue`; see `schema.rs`); an unknown object type gets 400
//!   "Unable to infer object type from: X".
//! - 100 inputs per batch (50 for batch/read with `propertiesWithHistory`); above it, 400
//!   `VALIDATION_ERROR` (community expert citing the contacts guide).
//! - Create of an existing unique value: `CONFLICT` "Contact already exists. Existing ID: X"
//!   (HubSpot/hubspot-api-python#51).
//! - Rate limit: 190 requests per rolling 10 s by default (Professional/Enterprise private
//!   apps, <https://developers.hubspot.com/changelog/increasing-our-api-limits>), answered
//!   429 `{"status":"error","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING",...}`;
//!   a daily quota answers `policyName: "DAILY"` (<https://developers.hubspot.com/docs/api/usage-details>).
//!   `Retry-After` is not documented: see [`crate::faults`].
//!
//! Choices where the docs are silent or ambiguous:
//! - When one input is invalid, HubSpot either fails the whole batch or, "when you've
//!   enabled multi-status error handling" by sending a unique `objectWriteTraceId` per input,
//!   answers 207. [`BatchErrorMode`] picks; the default applies the documented rule to
//!   create, update and upsert alike.
//! - Whole-batch failures use the first failing input's category for the status (400
//!   `VALIDATION_ERROR`, 409 `CONFLICT`, 404 `OBJECT_NOT_FOUND`) and list every failing input
//!   in `errors[].in` (`inputs[3].properties.email`) and `context` (`ids`, `objectWriteTraceId`).
//! - Update of an unknown id is an `OBJECT_NOT_FOUND` input error; archive of an unknown id
//!   is ignored (204); batch/read reports missing ids in one 207 `OBJECT_NOT_FOUND` error.
//! - Duplicate ids in one update/upsert batch: 400 `VALIDATION_ERROR` "Duplicate IDs found".
//! - Results come back in input order unless [`HubSpotConfig::reverse_results`] is set
//!   (order is not documented, so connectors must correlate by id or trace id).
//! - Properties are returned in full (all stored, plus `hs_object_id`, `createdate`,
//!   `lastmodifieddate`), not HubSpot's default subset.

mod batch;
mod errors;
mod list;
mod schema;
mod state;
mod store;

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::faults::{FaultPlan, Faults, RateLimit};
use crate::guard::guard;
use crate::log::{LoggedRequest, RequestLog};
use crate::rules::Rule;
use crate::server::FakeServer;
use state::HsState;
use store::{canonical, render, to_props, PropDef, Store};

/// How a batch with invalid inputs is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchErrorMode {
    /// Any invalid input fails the whole request (4xx); nothing is written.
    WholeBatch,
    /// 207 with per-input `errors[]` when every input has an `objectWriteTraceId`,
    /// otherwise [`BatchErrorMode::WholeBatch`] (the documented rule).
    #[default]
    MultiStatusWhenTraced,
    /// Always 207 with per-input errors; valid inputs are written.
    MultiStatus,
}

/// Settings of a [`HubSpotFake`].
#[derive(Clone, Debug)]
pub struct HubSpotConfig {
    /// The private-app token accepted as `Bearer`.
    pub token: String,
    /// Maximum inputs per batch (100).
    pub batch_limit: usize,
    /// Maximum inputs of a batch/read with `propertiesWithHistory` (50).
    pub read_history_limit: usize,
    /// How invalid inputs are reported.
    pub error_mode: BatchErrorMode,
    /// `(objectType, property)` pairs usable as `idProperty` (default: contacts' `email`).
    pub unique_properties: Vec<(String, String)>,
    /// Daily request quota (`policyName: DAILY` when exceeded); `None` for no quota.
    pub daily_limit: Option<u64>,
    /// Return batch results in reverse input order, to prove a connector does not rely on it.
    pub reverse_results: bool,
    /// Initial fault plan (default: 190 requests per rolling 10 s).
    pub faults: FaultPlan,
}

impl Default for HubSpotConfig {
    fn default() -> Self {
        Self {
            token: "pat-na1-test-token".into(),
            batch_limit: 100,
            read_history_limit: 50,
            error_mode: BatchErrorMode::default(),
            unique_properties: vec![("contacts".into(), "email".into())],
            daily_limit: Some(1_000_000),
            reverse_results: false,
            faults: FaultPlan {
                rate_limit: Some(RateLimit::sliding(190, Duration::from_secs(10))),
                ..FaultPlan::default()
            },
        }
    }
}

/// A running HubSpot CRM v3 fake.
pub struct HubSpotFake {
    server: FakeServer,
    state: Arc<HsState>,
}

impl HubSpotFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: HubSpotConfig) -> io::Result<Self> {
        let state = Arc::new(HsState {
            store: Mutex::new(Store::new(&config.unique_properties)),
            faults: Faults::new(config.faults.clone()),
            log: RequestLog::default(),
            daily_used: AtomicU64::new(0),
            config: Mutex::new(config),
        });
        let router = Router::new()
            .route(
                "/crm/v3/objects/{object_type}/batch/{action}",
                post(batch::batch),
            )
            .route("/crm/v3/objects/{object_type}", get(list::list))
            .route("/crm/v3/properties/{object_type}", get(schema::properties))
            .with_state(state.clone())
            .layer(from_fn_with_state(state.clone(), guard::<HsState>));
        let server = FakeServer::start(router).await?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT` (HubSpot's `https://api.hubapi.com`).
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

    /// Live (non-archived) records of `object_type`, as the API renders them, in id order.
    pub fn records(&self, object_type: &str) -> Vec<Value> {
        let store = self.state.store();
        let object = canonical(object_type);
        store
            .list(&object, false)
            .into_iter()
            .map(|r| render(r, None))
            .collect()
    }

    /// Archived records of `object_type`.
    pub fn archived(&self, object_type: &str) -> Vec<Value> {
        let store = self.state.store();
        let object = canonical(object_type);
        store
            .list(&object, true)
            .into_iter()
            .map(|r| render(r, None))
            .collect()
    }

    /// The live record whose `id_property` equals `value` (`hs_object_id` = record id).
    pub fn get(&self, object_type: &str, id_property: &str, value: &str) -> Option<Value> {
        let store = self.state.store();
        store
            .find(&canonical(object_type), id_property, value)
            .map(|r| render(r, None))
    }

    /// Seeds a record with `properties` (a JSON object) and returns its id.
    pub fn insert(&self, object_type: &str, properties: Value) -> String {
        let map = properties.as_object().cloned().unwrap_or_default();
        let mut store = self.state.store();
        store
            .create(&canonical(object_type), to_props(&map))
            .id
            .to_string()
    }

    /// Adds a validation rule for inputs of `object_type` (default code
    /// `INVALID_PROPERTY_VALUE`, reported as a `VALIDATION_ERROR`).
    pub fn add_rule(&self, object_type: &str, rule: Rule) {
        self.state.store().add_rule(object_type, rule);
    }

    /// Makes `property` of `object_type` unique (usable as `idProperty`, checked on writes).
    pub fn add_unique_property(&self, object_type: &str, property: &str) {
        self.state.store().add_unique(object_type, property);
    }

    /// Declares property `name` of `object_type` with HubSpot's `type` (`string`, `number`,
    /// `bool`, `date`, `datetime`, `enumeration`); the object becomes known to the
    /// properties and list endpoints.
    pub fn add_property(&self, object_type: &str, name: &str, kind: &str) {
        let field_type = match kind {
            "number" => "number",
            "bool" => "booleancheckbox",
            "date" | "datetime" => "date",
            "enumeration" => "select",
            _ => "text",
        };
        self.state.store().declare(
            object_type,
            name,
            PropDef {
                kind: kind.to_string(),
                field_type: field_type.to_string(),
                read_only: false,
            },
        );
    }

    /// Changes how invalid inputs are reported.
    pub fn set_error_mode(&self, mode: BatchErrorMode) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error_mode = mode;
    }

    /// Returns batch results in reverse input order (or not).
    pub fn set_reverse_results(&self, reverse: bool) {
        self.state
            .config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reverse_results = reverse;
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop().await
    }
}
