//! `POST /users/track` (<https://www.braze.com/docs/api/endpoints/user_data/post_user_track/>):
//! `attributes`, `events`, `purchases` arrays; each object names one user. Invalid objects
//! do not fail the request: the answer is still `{"message":"success", ...}` with an
//! `errors[]` of `{type, input_array, index}` (index into the array as sent), and the rest
//! is processed. Too many objects is fatal: 400 "Max Input Length Exceeded".

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::state::{message, BrState};
use super::users::{apply, identify, Users};
use super::TrackLimit;
use crate::log::BatchSize;

/// Fields an event or purchase object must carry besides its identifier.
const EVENT_FIELDS: [&str; 2] = ["name", "time"];
const PURCHASE_FIELDS: [&str; 4] = ["product_id", "currency", "price", "time"];

fn error(kind: &str, index: usize, text: String) -> Value {
    json!({"type": text, "input_array": kind, "index": index})
}

/// The `/users/track` handler.
pub(crate) async fn track(State(s): State<Arc<BrState>>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad syntax: the body must be a JSON object",
        );
    };
    let mut arrays: [(&str, &[Value]); 3] =
        [("attributes", &[]), ("events", &[]), ("purchases", &[])];
    for (name, slot) in arrays.iter_mut() {
        match body.get(*name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => *slot = a.as_slice(),
            Some(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    &format!("Bad syntax: '{name}' must be an array"),
                )
            }
        }
    }
    let present = |name: &str| body.get(name).is_some_and(Value::is_array);
    let total: usize = arrays.iter().map(|(_, a)| a.len()).sum();
    if !arrays.iter().any(|(n, _)| present(n)) {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad syntax: provide attributes, events or purchases",
        );
    }
    let too_many = match s.config().track_limit {
        TrackLimit::Combined(max) => total > max,
        TrackLimit::PerArray(max) => arrays.iter().any(|(_, a)| a.len() > max),
    };
    if too_many {
        let mut resp = message(StatusCode::BAD_REQUEST, "Max Input Length Exceeded");
        resp.extensions_mut().insert(BatchSize(total));
        return resp;
    }
    let mut users = s.users();
    let mut errors = Vec::new();
    let mut out = Map::new();
    out.insert("message".into(), json!("success"));
    for (name, items) in arrays {
        let processed = match name {
            "attributes" => attributes(&mut users, items, &mut errors),
            "events" => activity(&mut users, items, name, &EVENT_FIELDS, &mut errors),
            _ => activity(&mut users, items, name, &PURCHASE_FIELDS, &mut errors),
        };
        if present(name) {
            out.insert(format!("{name}_processed"), json!(processed));
        }
    }
    if !errors.is_empty() {
        out.insert("errors".into(), Value::Array(errors));
    }
    let mut resp = (StatusCode::CREATED, Json(Value::Object(out))).into_response();
    resp.extensions_mut().insert(BatchSize(total));
    resp
}

fn attributes(users: &mut Users, items: &[Value], errors: &mut Vec<Value>) -> usize {
    let mut processed = 0;
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(error(
                "attributes",
                i,
                "attributes object must be a JSON object".into(),
            ));
            continue;
        };
        let who = match identify(obj) {
            Ok(w) => w,
            Err(t) => {
                errors.push(error("attributes", i, t));
                continue;
            }
        };
        let exists = users.profiles.contains_key(&who.key);
        if let Some(rule) = users.rules.iter().find(|r| r.violated(obj, !exists, false)) {
            errors.push(error("attributes", i, rule.message_for(obj, false)));
            continue;
        }
        processed += 1;
        let update_only = obj
            .get("_update_existing_only")
            .and_then(Value::as_bool)
            .unwrap_or(who.update_only_default);
        if update_only && !exists {
            continue;
        }
        let profile = users.profiles.entry(who.key).or_default();
        apply(profile, obj);
    }
    processed
}

fn activity(
    users: &mut Users,
    items: &[Value],
    kind: &str,
    required: &[&str],
    errors: &mut Vec<Value>,
) -> usize {
    let mut processed = 0;
    for (i, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(error(
                kind,
                i,
                format!("{kind} object must be a JSON object"),
            ));
            continue;
        };
        let who = match identify(obj) {
            Ok(w) => w,
            Err(t) => {
                errors.push(error(kind, i, t));
                continue;
            }
        };
        if let Some(missing) = required
            .iter()
            .find(|f| obj.get(**f).is_none_or(Value::is_null))
        {
            errors.push(error(kind, i, format!("'{missing}' is required")));
            continue;
        }
        processed += 1;
        let list = if kind == "events" {
            &mut users.events
        } else {
            &mut users.purchases
        };
        list.entry(who.key).or_default().push(item.clone());
    }
    processed
}
