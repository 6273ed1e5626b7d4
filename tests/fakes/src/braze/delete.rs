//! `POST /users/delete` (<https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/>):
//! exactly one of `external_ids`, `user_aliases`, `braze_ids`, `email_addresses`,
//! `phone_numbers`, at most 50 identifiers; answers `{"deleted": N}` where N counts the
//! identifiers queued for deletion (deletion is asynchronous at Braze, so every accepted
//! identifier is counted, known or not). An email or phone matching several profiles
//! deletes none of them, as the docs say for ambiguous matches.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::state::{message, BrState};
use super::users::{alias_key, Users};
use crate::log::BatchSize;

const KINDS: [&str; 5] = [
    "external_ids",
    "user_aliases",
    "braze_ids",
    "email_addresses",
    "phone_numbers",
];

/// The `/users/delete` handler.
pub(crate) async fn delete(State(s): State<Arc<BrState>>, body: Bytes) -> Response {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad syntax: the body must be a JSON object",
        );
    };
    let given: Vec<(&str, &Vec<Value>)> = KINDS
        .iter()
        .filter_map(|k| body.get(*k).and_then(Value::as_array).map(|a| (*k, a)))
        .collect();
    let [(kind, ids)] = given.as_slice() else {
        return message(
            StatusCode::BAD_REQUEST,
            "Exactly one of external_ids, user_aliases, braze_ids, email_addresses or phone_numbers must be provided",
        );
    };
    let limit = s.config().delete_limit;
    let mut resp = if ids.len() > limit {
        message(
            StatusCode::BAD_REQUEST,
            "The max number of external_ids and aliases per request was exceeded",
        )
    } else {
        let mut users = s.users();
        for id in ids.iter() {
            remove(&mut users, kind, id);
        }
        let body = json!({"deleted": ids.len(), "message": "success"});
        (StatusCode::CREATED, Json(body)).into_response()
    };
    resp.extensions_mut().insert(BatchSize(ids.len()));
    resp
}

fn remove(users: &mut Users, kind: &str, id: &Value) {
    let keys: Vec<String> = match kind {
        "external_ids" => id.as_str().map(str::to_string).into_iter().collect(),
        "braze_ids" => id
            .as_str()
            .map(|b| format!("braze_id:{b}"))
            .into_iter()
            .collect(),
        "user_aliases" => alias_key(id).into_iter().collect(),
        _ => {
            let (field, prefix) = if kind == "email_addresses" {
                ("email", "email:")
            } else {
                ("phone", "phone:")
            };
            let Some(value) = id.get(field).and_then(Value::as_str) else {
                return;
            };
            let key = format!("{prefix}{value}");
            users
                .profiles
                .iter()
                .filter(|(k, p)| **k == key || p.get(field).and_then(Value::as_str) == Some(value))
                .map(|(k, _)| k.clone())
                .collect()
        }
    };
    if keys.len() != 1 {
        return;
    }
    let key = &keys[0];
    if users.profiles.remove(key).is_some() {
        users.events.remove(key);
        users.purchases.remove(key);
        users.deleted.push(key.clone());
    }
}
