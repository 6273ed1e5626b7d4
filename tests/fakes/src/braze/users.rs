//! Braze user profiles: how an object names its user (`external_id`, `braze_id`,
//! `user_alias`, else `email`, else `phone`) and how attribute updates apply (`null`
//! removes, `{"inc": n}`, `{"add": [..]}`, `{"remove": [..]}`).
//! Source: <https://www.braze.com/docs/api/objects_filters/user_attributes_object/>.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::rules::Rule;

/// Keys that identify a user rather than set an attribute.
const IDENTIFIER_KEYS: [&str; 4] = [
    "external_id",
    "braze_id",
    "user_alias",
    "_update_existing_only",
];

/// In-memory profiles and their events and purchases.
#[derive(Debug, Default)]
pub(crate) struct Users {
    pub profiles: BTreeMap<String, Map<String, Value>>,
    pub events: BTreeMap<String, Vec<Value>>,
    pub purchases: BTreeMap<String, Vec<Value>>,
    pub deleted: Vec<String>,
    pub rules: Vec<Rule>,
}

/// Who an object is about.
pub(crate) struct Identity {
    /// Store key: the external id itself, or `braze_id:..`, `alias:<label>:<name>`,
    /// `email:..`, `phone:..`.
    pub key: String,
    /// `_update_existing_only` when the object does not say (true for aliases and Braze ids).
    pub update_only_default: bool,
}

/// The store key of an alias.
pub(crate) fn alias_key(alias: &Value) -> Option<String> {
    let name = alias.get("alias_name")?.as_str()?;
    let label = alias.get("alias_label")?.as_str()?;
    Some(format!("alias:{label}:{name}"))
}

/// Resolves the identifier of an attributes, event or purchase object; `Err` is the
/// `type` text of the non-fatal error Braze reports.
pub(crate) fn identify(obj: &Map<String, Value>) -> Result<Identity, String> {
    let given = |k: &str| obj.get(k).filter(|v| !v.is_null());
    let primary = ["external_id", "braze_id", "user_alias"]
        .iter()
        .filter(|k| given(k).is_some())
        .count();
    if primary > 1 {
        return Err("only one of 'external_id', 'braze_id' or 'user_alias' may be provided".into());
    }
    let text = |k: &str| given(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let id = |key: String, update_only_default: bool| Identity {
        key,
        update_only_default,
    };
    if given("external_id").is_some() {
        return text("external_id")
            .map(|e| id(e.to_string(), false))
            .ok_or_else(|| "'external_id' must be a non-empty string".into());
    }
    if given("braze_id").is_some() {
        return text("braze_id")
            .map(|b| id(format!("braze_id:{b}"), true))
            .ok_or_else(|| "'braze_id' must be a non-empty string".into());
    }
    if let Some(alias) = given("user_alias") {
        return alias_key(alias)
            .map(|k| id(k, true))
            .ok_or_else(|| "'user_alias' must have 'alias_name' and 'alias_label'".into());
    }
    if let Some(e) = text("email") {
        return Ok(id(format!("email:{e}"), false));
    }
    if let Some(p) = text("phone") {
        return Ok(id(format!("phone:{p}"), false));
    }
    Err("'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required".into())
}

fn add_numbers(current: Option<&Value>, inc: &Number) -> Value {
    let cur = current.and_then(Value::as_number);
    match (
        cur.and_then(Number::as_i64).or(cur.is_none().then_some(0)),
        inc.as_i64(),
    ) {
        (Some(a), Some(b)) => Value::from(a + b),
        _ => {
            let a = cur.and_then(Number::as_f64).unwrap_or(0.0);
            Number::from_f64(a + inc.as_f64().unwrap_or(0.0)).map_or(Value::Null, Value::Number)
        }
    }
}

/// Applies one attributes object to `profile`.
pub(crate) fn apply(profile: &mut Map<String, Value>, obj: &Map<String, Value>) {
    for (k, v) in obj {
        if IDENTIFIER_KEYS.contains(&k.as_str()) {
            continue;
        }
        let op = v.as_object().filter(|m| m.len() == 1);
        match (v, op.and_then(|m| m.iter().next())) {
            (Value::Null, _) => {
                profile.remove(k);
            }
            (_, Some((name, Value::Number(n)))) if name == "inc" => {
                let next = add_numbers(profile.get(k), n);
                profile.insert(k.clone(), next);
            }
            (_, Some((name, Value::Array(items)))) if name == "add" || name == "remove" => {
                let mut list = profile
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if name == "add" {
                    list.extend(items.iter().cloned());
                } else {
                    list.retain(|x| !items.contains(x));
                }
                profile.insert(k.clone(), Value::Array(list));
            }
            _ => {
                profile.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_and_updates() {
        let obj =
            json!({"external_id": "u1", "email": "a@b.c", "n": {"inc": 2}, "tags": {"add": ["x"]}});
        let obj = obj.as_object().unwrap();
        assert_eq!(identify(obj).unwrap().key, "u1");
        let mut profile = Map::new();
        apply(&mut profile, obj);
        apply(&mut profile, obj);
        assert_eq!(profile["n"], json!(4));
        assert_eq!(profile["tags"], json!(["x", "x"]));
        assert_eq!(profile["email"], json!("a@b.c"));
        let alias = json!({"user_alias": {"alias_name": "n", "alias_label": "l"}});
        let who = identify(alias.as_object().unwrap()).unwrap();
        assert_eq!(
            (who.key.as_str(), who.update_only_default),
            ("alias:l:n", true)
        );
        assert!(identify(json!({"first_name": "x"}).as_object().unwrap()).is_err());
    }
}
