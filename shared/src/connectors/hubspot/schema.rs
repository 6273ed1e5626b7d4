//! An object's property definitions (`GET /crm/v3/properties/{objectType}`,
//! <https://developers.hubspot.com/docs/api-reference/legacy/crm/properties/get-properties>):
//! what `prepare` checks a sync against, and how values read back are typed.

use std::collections::BTreeMap;

use serde_json::{Number, Value};

use super::errors::{json_body, text};
use crate::config::{did_you_mean, SyncDef};
use crate::record::Values;

/// HubSpot's record id property: readable on every object, never writable, and not an
/// `idProperty` for update or upsert (HubSpot answers "non-unique ... property
/// hs_object_id"); records are addressed by it through `id` alone.
pub(super) const RECORD_ID: &str = "hs_object_id";

/// How a property's values are typed when read back (HubSpot returns every value as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `type: number`: the text is turned back into a JSON number.
    Number,
    /// `type: bool`: `"true"` / `"false"` become JSON booleans.
    Bool,
    /// Everything else (string, enumeration, date, datetime, phone_number) stays text.
    Text,
}

/// One property definition.
#[derive(Debug, Clone)]
pub(super) struct Property {
    pub kind: Kind,
    /// `hasUniqueValue`: usable as `idProperty`.
    pub unique: bool,
    /// `modificationMetadata.readOnlyValue` or `calculated`: writes are refused.
    pub read_only: bool,
}

/// The properties of one object type.
#[derive(Debug, Clone, Default)]
pub(super) struct Schema {
    pub props: BTreeMap<String, Property>,
}

impl Schema {
    /// Parses the `results` of the properties endpoint.
    pub fn parse(body: &Value) -> Schema {
        let mut props = BTreeMap::new();
        for p in body
            .get("results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = text(p, "name") else {
                continue;
            };
            let kind = match text(p, "type") {
                Some("number") => Kind::Number,
                Some("bool") => Kind::Bool,
                _ => Kind::Text,
            };
            let flag = |v: Option<&Value>| v.and_then(Value::as_bool).unwrap_or(false);
            let read_only = flag(
                p.get("modificationMetadata")
                    .and_then(|m| m.get("readOnlyValue")),
            ) || flag(p.get("calculated"));
            props.insert(
                name.to_string(),
                Property {
                    kind,
                    unique: flag(p.get("hasUniqueValue")),
                    read_only,
                },
            );
        }
        Schema { props }
    }

    /// Parses an HTTP body.
    pub fn from_response(resp: &crate::delivery::http::HttpResponse) -> Schema {
        Schema::parse(&json_body(resp))
    }

    /// Why `sync` cannot run against this object, with what to do; `None` when it fits.
    pub fn check(&self, sync: &SyncDef) -> Option<String> {
        let object = &sync.object;
        let key = match sync.key_fields.as_slice() {
            [single] => single,
            fields => {
                return Some(format!(
                    "HubSpot matches records by one unique property, but the key maps to {} \
                     fields ({}); store the combined key in one custom property created with \
                     \"unique values\" (hasUniqueValue) and make it the primary key",
                    fields.len(),
                    fields.join(", ")
                ));
            }
        };
        let mut missing = Vec::new();
        for field in sync.mapping.keys() {
            if !self.props.contains_key(field) {
                let hint = did_you_mean(field, self.props.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                missing.push(format!("`{field}`{hint}"));
            }
        }
        if !missing.is_empty() {
            return Some(format!(
                "HubSpot object `{object}` has no property {}; create the properties in \
                 HubSpot or fix the mapping (destination field: source column)",
                missing.join(", ")
            ));
        }
        let read_only: Vec<&String> = sync
            .mapping
            .keys()
            .filter(|f| f.as_str() != key || key != RECORD_ID)
            .filter(|f| self.props.get(*f).is_some_and(|p| p.read_only))
            .collect();
        if !read_only.is_empty() {
            let names: Vec<String> = read_only.iter().map(|f| format!("`{f}`")).collect();
            return Some(format!(
                "properties {} of `{object}` are read-only in HubSpot (calculated or set by \
                 HubSpot); remove them from the mapping",
                names.join(", ")
            ));
        }
        if key == RECORD_ID {
            return match sync.mode {
                mode if !mode.creates_records() => None,
                mode => Some(format!(
                    "the key maps to `{RECORD_ID}`, HubSpot's record id, which HubSpot assigns \
                     itself, so mode `{mode}` cannot create records by it; use a unique \
                     property as the key (e.g. `email` for contacts, or a custom property with \
                     unique values), or use mode update, delete or delete_only"
                )),
            };
        }
        let unique =
            self.props.get(key).is_some_and(|p| p.unique) || is_email_of_contacts(object, key);
        if !unique {
            return Some(format!(
                "the key maps to property `{key}`, whose values are not unique in HubSpot, so \
                 HubSpot cannot match records by it (idProperty); map the key to `email` for \
                 contacts, or to a custom property created with \"unique values\" \
                 (hasUniqueValue), or to `{RECORD_ID}` for update and delete modes"
            ));
        }
        None
    }

    /// A record read back, as the mapping's destination fields: absent and empty values are
    /// null (what a null in the model clears to), numbers and booleans get their JSON types,
    /// so an already-equal record hashes like the model's row.
    pub fn values(&self, fields: &[String], record: &Value) -> Values {
        let props = record.get("properties");
        let mut out = Values::new();
        for f in fields {
            let raw = props.and_then(|p| p.get(f));
            let raw = match raw {
                Some(Value::Null) | None if f == RECORD_ID => record.get("id"),
                other => other,
            };
            let kind = self.props.get(f).map_or(Kind::Text, |p| p.kind);
            out.insert(f.clone(), typed(raw, kind));
        }
        out
    }
}

/// Contacts are matched by `email` although HubSpot does not flag it `hasUniqueValue`
/// (<https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts>).
pub(super) fn is_email_of_contacts(object: &str, key: &str) -> bool {
    key == "email" && (object.eq_ignore_ascii_case("contacts") || object == "0-1")
}

/// One property value read back, typed by its property kind.
fn typed(raw: Option<&Value>, kind: Kind) -> Value {
    let s = match raw {
        None | Some(Value::Null) => return Value::Null,
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return other.clone(),
    };
    if s.is_empty() {
        return Value::Null;
    }
    match kind {
        Kind::Text => Value::String(s.to_string()),
        Kind::Bool => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s.to_string()),
        },
        Kind::Number => {
            // Integers stay integers (the warehouse's 42, not 42.0); others as floats.
            if let Ok(i) = s.parse::<i64>() {
                return Value::Number(i.into());
            }
            s.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or_else(|| Value::String(s.to_string()), Value::Number)
        }
    }
}

/// A value as HubSpot accepts it in `properties` (a string map in its API schema): null
/// clears the property (`""`), numbers and booleans as their text, lists as
/// multiple-checkbox values (`a;b`), objects as JSON text.
pub(super) fn property_value(v: &Value) -> Value {
    Value::String(match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(";"),
        Value::Object(_) => v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SyncMode;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::parse(&json!({"results": [
            {"name": "email", "type": "string", "hasUniqueValue": false},
            {"name": "firstname", "type": "string"},
            {"name": "age", "type": "number"},
            {"name": "vip", "type": "bool"},
            {"name": "ext_id", "type": "string", "hasUniqueValue": true},
            {"name": "hs_object_id", "type": "number", "modificationMetadata": {"readOnlyValue": true}},
            {"name": "score", "type": "number", "calculated": true},
        ]}))
    }

    fn sync(object: &str, key: &[&str], fields: &[&str], mode: SyncMode) -> SyncDef {
        SyncDef {
            name: "s".into(),
            description: None,
            source_connection: "w".into(),
            sql: "select 1".into(),
            incremental: None,
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            key_fields: key.iter().map(|k| k.to_string()).collect(),
            destination_connection: "hs".into(),
            object: object.into(),
            mapping: fields
                .iter()
                .map(|f| (f.to_string(), f.to_string()))
                .collect(),
            mode,
            delete_scope: Default::default(),
            safety: Default::default(),
            alerts: Default::default(),
            schedule: None,
            triggers: Vec::new(),
            shards: 16,
        }
    }

    #[test]
    fn checks_the_key_and_the_mapping() {
        let s = schema();
        assert!(s
            .check(&sync(
                "contacts",
                &["email"],
                &["email", "age"],
                SyncMode::Upsert
            ))
            .is_none());
        assert!(s
            .check(&sync("p_x", &["ext_id"], &["ext_id"], SyncMode::Mirror))
            .is_none());
        let composite = s
            .check(&sync(
                "contacts",
                &["email", "ext_id"],
                &["email", "ext_id"],
                SyncMode::Upsert,
            ))
            .unwrap();
        assert!(composite.contains("one unique property"), "{composite}");
        let not_unique = s
            .check(&sync("companies", &["email"], &["email"], SyncMode::Upsert))
            .unwrap();
        assert!(not_unique.contains("not unique"), "{not_unique}");
        let missing = s
            .check(&sync(
                "contacts",
                &["email"],
                &["email", "firstnme"],
                SyncMode::Upsert,
            ))
            .unwrap();
        assert!(missing.contains("did you mean `firstname`"), "{missing}");
        let read_only = s
            .check(&sync(
                "contacts",
                &["email"],
                &["email", "score"],
                SyncMode::Upsert,
            ))
            .unwrap();
        assert!(read_only.contains("read-only"), "{read_only}");
        assert!(s
            .check(&sync(
                "contacts",
                &["hs_object_id"],
                &["hs_object_id", "age"],
                SyncMode::Update
            ))
            .is_none());
        assert!(s
            .check(&sync(
                "contacts",
                &["hs_object_id"],
                &["hs_object_id"],
                SyncMode::Upsert
            ))
            .is_some());
    }

    #[test]
    fn types_values_read_back() {
        let s = schema();
        let fields: Vec<String> = ["email", "age", "vip", "firstname", "hs_object_id"]
            .iter()
            .map(|f| f.to_string())
            .collect();
        let v = s.values(
            &fields,
            &json!({"id": "7", "properties": {"email": "a@x.io", "age": "42", "vip": "true", "firstname": ""}}),
        );
        assert_eq!(
            Value::Object(v),
            json!({"email": "a@x.io", "age": 42, "vip": true, "firstname": null, "hs_object_id": 7})
        );
        let v = s.values(&fields[1..2], &json!({"properties": {"age": "4.5"}}));
        assert_eq!(v["age"], json!(4.5));
    }

    #[test]
    fn sends_values_as_text() {
        assert_eq!(property_value(&json!(null)), json!(""));
        assert_eq!(property_value(&json!(42)), json!("42"));
        assert_eq!(property_value(&json!(true)), json!("true"));
        assert_eq!(property_value(&json!(["a", "b"])), json!("a;b"));
    }
}
