//! `POST /crm/v3/objects/{objectType}/batch/{create|update|upsert|archive|read}`.
//! Contract: <https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/objects/batch/create-objects>,
//! `.../contacts/batch/update-contacts`, `.../custom-objects/batch/upsert-custom-objects`,
//! and the generated SDK models (HubSpot/hubspot-api-nodejs `codegen/crm/objects`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::errors::{detail, error, validation, whole_batch, ItemError};
use super::state::HsState;
use super::store::{canonical, label, render, to_props, type_id, Store};
use super::{BatchErrorMode, HubSpotConfig};
use crate::log::BatchSize;
use crate::util::{now_iso, scalar_text};

/// Properties the API refuses to write.
const READ_ONLY: [&str; 2] = ["hs_object_id", "lastmodifieddate"];

type Props = BTreeMap<String, Option<String>>;

/// Dispatches one batch call.
pub(crate) async fn batch(
    State(s): State<Arc<HsState>>,
    Path((object_type, action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let object = canonical(&object_type);
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return validation(&format!("Invalid input JSON: {e}")),
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return validation("Some required fields were not set: [inputs]");
    };
    let config = s.config();
    let with_history = body
        .get("propertiesWithHistory")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let limit = if action == "read" && with_history {
        config.read_history_limit
    } else {
        config.batch_limit
    };
    let mut resp = if inputs.len() > limit {
        validation(&format!(
            "Too many inputs: {}. The maximum number of inputs in a batch request is {limit}.",
            inputs.len()
        ))
    } else {
        let mut store = s.store();
        match action.as_str() {
            "create" => create(&mut store, &object, inputs, &config),
            "update" => write(&mut store, &object, inputs, &config, false),
            "upsert" => write(&mut store, &object, inputs, &config, true),
            "archive" => archive(&mut store, &object, inputs),
            "read" => {
                let archived = query.get("archived").is_some_and(|v| v == "true");
                read(&store, &object, inputs, &body, archived)
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "Unknown batch action",
            ),
        }
    };
    resp.extensions_mut().insert(BatchSize(inputs.len()));
    resp
}

/// Whether failures are reported per input (207) instead of failing the whole batch.
fn multi_status(mode: BatchErrorMode, inputs: &[Value]) -> bool {
    match mode {
        BatchErrorMode::WholeBatch => false,
        BatchErrorMode::MultiStatus => true,
        BatchErrorMode::MultiStatusWhenTraced => {
            !inputs.is_empty() && inputs.iter().all(|i| trace_of(i).is_some())
        }
    }
}

fn trace_of(input: &Value) -> Option<String> {
    input
        .get("objectWriteTraceId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn properties_of(input: &Value) -> Map<String, Value> {
    input
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn id_of(input: &Value) -> Option<String> {
    match input.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(scalar_text(v)),
    }
}

/// Read-only properties and test rules; the error names `inputs[i].properties.<name>`.
fn check_props(
    store: &Store,
    object: &str,
    index: usize,
    map: &Map<String, Value>,
    creating: bool,
) -> Option<ItemError> {
    let mut details = Vec::new();
    let mut problems = Vec::new();
    for name in READ_ONLY.iter().filter(|n| map.contains_key(**n)) {
        let message = format!("{name} is a read only property; its value cannot be set.");
        details.push(detail(
            &message,
            "READ_ONLY_VALUE",
            location(index, name),
            name,
        ));
        problems.push(
            json!({"isValid": false, "message": message, "error": "READ_ONLY_VALUE", "name": name}),
        );
    }
    // `""` clears a property (update-contacts reference), so rules see it as absent.
    let cleared: Map<String, Value> = map
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) if s.is_empty() => (k.clone(), Value::Null),
            other => (k.clone(), other.clone()),
        })
        .collect();
    for rule in store.rules(object) {
        if rule.violated(&cleared, creating, false) {
            let message = rule.message_for(&cleared, false);
            let code = rule.code_or("INVALID_PROPERTY_VALUE");
            details.push(detail(
                &message,
                &code,
                location(index, &rule.field),
                &rule.field,
            ));
            problems.push(
                json!({"isValid": false, "message": message, "error": code, "name": rule.field}),
            );
        }
    }
    if details.is_empty() {
        return None;
    }
    let mut err = ItemError::new(
        "VALIDATION_ERROR",
        format!("Property values were not valid: {}", Value::Array(problems)),
    );
    err.details = details;
    Some(err)
}

fn location(index: usize, property: &str) -> String {
    format!("inputs[{index}].properties.{property}")
}

/// Unique-property clashes with stored records or earlier inputs of the same batch.
fn conflict(
    store: &Store,
    object: &str,
    props: &Props,
    self_id: Option<u64>,
    pending: &mut BTreeMap<(String, String), usize>,
    index: usize,
) -> Option<ItemError> {
    for prop in store.unique_props(object) {
        let Some(Some(value)) = props.get(&prop) else {
            continue;
        };
        if let Some(existing) = store.find(object, &prop, value) {
            if Some(existing.id) != self_id {
                let message = format!(
                    "{} already exists. Existing ID: {}",
                    label(object),
                    existing.id
                );
                let mut err = ItemError::new("CONFLICT", message.clone());
                err.details = vec![detail(&message, "CONFLICT", location(index, &prop), &prop)];
                return Some(err.context("ids", &existing.id.to_string()));
            }
        }
        let key = (prop.clone(), value.clone());
        if pending.get(&key).is_some_and(|owner| *owner != index) {
            let message =
                format!("Duplicate value for unique property {prop} in batch input: {value}");
            let mut err = ItemError::new("CONFLICT", message.clone());
            err.details = vec![detail(&message, "CONFLICT", location(index, &prop), &prop)];
            return Some(err);
        }
        pending.insert(key, index);
    }
    None
}

fn traced(mut err: ItemError, trace: &Option<String>) -> ItemError {
    if let Some(t) = trace {
        err = err.context("objectWriteTraceId", t);
    }
    err
}

fn respond(
    ok: StatusCode,
    mut results: Vec<Value>,
    errors: Vec<ItemError>,
    reverse: bool,
) -> Response {
    if reverse {
        results.reverse();
    }
    let now = now_iso();
    let mut body =
        json!({"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now});
    if errors.is_empty() {
        return (ok, Json(body)).into_response();
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = errors.iter().map(ItemError::standard_error).collect();
    (StatusCode::MULTI_STATUS, Json(body)).into_response()
}

fn rendered(record: &super::store::Record, trace: &Option<String>, new: Option<bool>) -> Value {
    let mut v = render(record, None);
    if let Some(t) = trace {
        v["objectWriteTraceId"] = json!(t);
    }
    if let Some(new) = new {
        v["new"] = json!(new);
    }
    v
}

fn create(store: &mut Store, object: &str, inputs: &[Value], config: &HubSpotConfig) -> Response {
    let multi = multi_status(config.error_mode, inputs);
    let (mut plans, mut errors, mut pending) = (Vec::new(), Vec::new(), BTreeMap::new());
    for (i, input) in inputs.iter().enumerate() {
        let trace = trace_of(input);
        let map = properties_of(input);
        let props = to_props(&map);
        let failed = check_props(store, object, i, &map, true)
            .or_else(|| conflict(store, object, &props, None, &mut pending, i));
        match failed {
            Some(e) => errors.push(traced(e, &trace)),
            None => plans.push((props, trace)),
        }
    }
    if !errors.is_empty() && !multi {
        return whole_batch(&errors);
    }
    let results = plans
        .into_iter()
        .map(|(props, trace)| rendered(&store.create(object, props), &trace, None))
        .collect();
    respond(StatusCode::CREATED, results, errors, config.reverse_results)
}

/// Request-level checks shared by update and upsert: ids present and distinct, and each
/// `idProperty` unique for the object.
fn check_ids(store: &Store, object: &str, inputs: &[Value], upsert: bool) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut dups = BTreeSet::new();
    for input in inputs {
        let Some(id) = id_of(input) else {
            return Err("Some required fields were not set: [id]".into());
        };
        if !seen.insert(id.clone()) {
            dups.insert(id);
        }
        match input.get("idProperty").and_then(Value::as_str) {
            None if upsert => {
                return Err("Some required fields were not set: [idProperty]".into());
            }
            Some(p) if !store.is_unique(object, p) => {
                return Err(format!(
                    "Unable to perform update/upsert by non-unique {} property {p}",
                    type_id(object)
                ));
            }
            _ => {}
        }
    }
    if !dups.is_empty() {
        let list: Vec<_> = dups.into_iter().collect();
        return Err(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            list.join(", ")
        ));
    }
    Ok(())
}

enum Plan {
    Update(u64, Props, Option<String>, bool),
    Create(Props, Option<String>),
}

/// Batch update (`upsert == false`) or upsert.
fn write(
    store: &mut Store,
    object: &str,
    inputs: &[Value],
    config: &HubSpotConfig,
    upsert: bool,
) -> Response {
    if let Err(message) = check_ids(store, object, inputs, upsert) {
        return validation(&message);
    }
    let multi = multi_status(config.error_mode, inputs);
    let (mut plans, mut errors, mut pending) = (Vec::new(), Vec::new(), BTreeMap::new());
    for (i, input) in inputs.iter().enumerate() {
        let trace = trace_of(input);
        let id = id_of(input).unwrap_or_default();
        let id_prop = input.get("idProperty").and_then(Value::as_str);
        let existing = match id_prop {
            Some(p) => store.find(object, p, &id),
            None => store.find_by_id(object, &id),
        }
        .map(|r| r.id);
        let mut map = properties_of(input);
        if existing.is_none() && !upsert {
            let message = format!(
                "Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."
            );
            let err = ItemError::new("OBJECT_NOT_FOUND", message).context("ids", &id);
            errors.push(traced(err, &trace));
            continue;
        }
        if existing.is_none() {
            if let Some(p) = id_prop {
                map.insert(p.to_string(), Value::String(id.clone()));
            }
        }
        let props = to_props(&map);
        let failed = check_props(store, object, i, &map, existing.is_none())
            .or_else(|| conflict(store, object, &props, existing, &mut pending, i));
        match (failed, existing) {
            (Some(e), _) => errors.push(traced(e.context("ids", &id), &trace)),
            (None, Some(rid)) => plans.push(Plan::Update(rid, props, trace, upsert)),
            (None, None) => plans.push(Plan::Create(props, trace)),
        }
    }
    if !errors.is_empty() && !multi {
        return whole_batch(&errors);
    }
    let mut results = Vec::new();
    for plan in plans {
        match plan {
            Plan::Update(rid, props, trace, is_upsert) => {
                if let Some(r) = store.update(object, rid, props) {
                    results.push(rendered(&r, &trace, is_upsert.then_some(false)));
                }
            }
            Plan::Create(props, trace) => {
                results.push(rendered(&store.create(object, props), &trace, Some(true)));
            }
        }
    }
    respond(StatusCode::OK, results, errors, config.reverse_results)
}

fn archive(store: &mut Store, object: &str, inputs: &[Value]) -> Response {
    for input in inputs {
        if let Some(id) = id_of(input) {
            store.archive(object, &id);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

fn read(store: &Store, object: &str, inputs: &[Value], body: &Value, archived: bool) -> Response {
    let id_prop = body.get("idProperty").and_then(Value::as_str);
    if let Some(p) = id_prop {
        if !store.is_unique(object, p) && p != "hs_object_id" {
            return validation(&format!(
                "{p} is not a unique property of {}",
                type_id(object)
            ));
        }
    }
    let names = |key: &str| -> Option<Vec<String>> {
        let list: Vec<String> = body
            .get(key)?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        (!list.is_empty()).then_some(list)
    };
    let filter = names("properties");
    let history = names("propertiesWithHistory");
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in inputs {
        let id = id_of(input).unwrap_or_default();
        let found = match (archived, id_prop) {
            (true, _) => store.find_archived(object, &id),
            (false, Some(p)) => store.find(object, p, &id),
            (false, None) => store.find_by_id(object, &id),
        };
        let Some(record) = found else {
            missing.push(id);
            continue;
        };
        let mut v = render(record, filter.as_deref());
        if let Some(history) = &history {
            let mut h = Map::new();
            for p in history {
                if let Some(value) = record.props.get(p) {
                    h.insert(
                        p.clone(),
                        json!([{"value": value, "timestamp": record.updated_at, "sourceType": "API"}]),
                    );
                }
            }
            v["propertiesWithHistory"] = Value::Object(h);
        }
        results.push(v);
    }
    let mut errors = Vec::new();
    if !missing.is_empty() {
        let mut err = ItemError::new(
            "OBJECT_NOT_FOUND",
            format!("Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."),
        );
        err.context.insert("ids".into(), json!(missing));
        errors.push(err);
    }
    respond(StatusCode::OK, results, errors, false)
}
