//! What retl sends to Braze: the sync checks, `/users/track` attributes objects and the
//! `/users/delete` body (<https://www.braze.com/docs/api/objects_filters/user_attributes_object/>,
//! <https://www.braze.com/docs/api/endpoints/user_data/post_user_delete/>).

use serde_json::{json, Map, Value};

use crate::config::SyncDef;
use crate::ports::{OutRecord, WriteOp};

/// The identifier retl sends: Braze's `external_id`.
pub(super) const EXTERNAL_ID: &str = "external_id";

/// Fields that would give an attributes object a second identifier or change how it is
/// processed; Braze wants exactly one identifier per object, and retl's is `external_id`.
const RESERVED: [&str; 3] = ["braze_id", "user_alias", "_update_existing_only"];

/// Checks that a sync fits Braze user profiles; `Err` says what to change.
pub(super) fn check_sync(sync: &SyncDef) -> Result<(), String> {
    if sync.object != "users" {
        return Err(format!(
            "Braze writes user profiles: set `object: users` (got `{}`)",
            sync.object
        ));
    }
    let key_field = match sync.key_fields.as_slice() {
        [one] => one,
        _ => {
            return Err(
                "Braze identifies a user by one external_id: use a single-column primary_key \
                 (e.g. a user id column mapped as `external_id: user_id`)"
                    .into(),
            )
        }
    };
    if let Some(bad) = sync.mapping.keys().find(|f| RESERVED.contains(&f.as_str())) {
        return Err(format!(
            "the mapping writes `{bad}`, which Braze reads as an identifier or a processing \
             flag; retl identifies users by external_id (the key field `{key_field}`): remove \
             `{bad}` from the mapping"
        ));
    }
    if key_field != EXTERNAL_ID && sync.mapping.contains_key(EXTERNAL_ID) {
        return Err(format!(
            "the key field `{key_field}` is sent as external_id, and the mapping also writes \
             `external_id`: remove one of them (or make `external_id` the key field)"
        ));
    }
    Ok(())
}

/// One `attributes` object: `external_id` from the key, then every mapped field except the
/// key field itself (it would otherwise become a custom attribute repeating the id).
fn attributes_object(key_field: &str, op: WriteOp, record: &OutRecord) -> Value {
    let mut obj = Map::with_capacity(record.values.len() + 2);
    // The key is the text form of the key column, so a numeric user id becomes the string
    // Braze expects for external_id.
    obj.insert(EXTERNAL_ID.into(), Value::String(record.key.clone()));
    for (field, value) in &record.values {
        if field != key_field && field != EXTERNAL_ID {
            obj.insert(field.clone(), value.clone());
        }
    }
    if op == WriteOp::Update {
        // Without it Braze creates a profile for an unknown external_id.
        obj.insert("_update_existing_only".into(), Value::Bool(true));
    }
    Value::Object(obj)
}

/// The `/users/track` body for one batch: one attributes object per record, in order, so
/// that an error's `index` is the record's position in the batch.
pub(super) fn track_body(key_field: &str, op: WriteOp, records: &[OutRecord]) -> Value {
    let attributes: Vec<Value> = records
        .iter()
        .map(|r| attributes_object(key_field, op, r))
        .collect();
    json!({ "attributes": attributes })
}

/// The `/users/delete` body: the external ids of the batch.
pub(super) fn delete_body(records: &[OutRecord]) -> Value {
    let ids: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    json!({ "external_ids": ids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SafetyConfig, SyncMode};

    fn sync(object: &str, key: &[&str], fields: &[&str]) -> SyncDef {
        SyncDef {
            name: "users".into(),
            description: None,
            source_connection: "w".into(),
            sql: "select 1".into(),
            incremental: None,
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            key_fields: key.iter().map(|k| k.to_string()).collect(),
            destination_connection: "braze".into(),
            object: object.into(),
            mapping: fields
                .iter()
                .map(|f| (f.to_string(), f.to_string()))
                .collect(),
            mode: SyncMode::Upsert,
            delete_scope: Default::default(),
            safety: SafetyConfig::default(),
            alerts: Default::default(),
            schedule: None,
            triggers: vec![],
            shards: 4,
        }
    }

    #[test]
    fn checks_object_key_and_reserved_fields() {
        assert!(check_sync(&sync("users", &["external_id"], &["external_id", "email"])).is_ok());
        assert!(check_sync(&sync("users", &["user_id"], &["user_id", "email"])).is_ok());
        let err = check_sync(&sync("people", &["external_id"], &["external_id"])).unwrap_err();
        assert!(err.contains("object: users"), "{err}");
        let err = check_sync(&sync("users", &["a", "b"], &["a", "b"])).unwrap_err();
        assert!(err.contains("single-column"), "{err}");
        let err = check_sync(&sync("users", &["id"], &["id", "braze_id"])).unwrap_err();
        assert!(err.contains("braze_id"), "{err}");
        let err = check_sync(&sync("users", &["id"], &["id", "external_id"])).unwrap_err();
        assert!(err.contains("remove one"), "{err}");
    }

    fn rec(key: &str, values: Value) -> OutRecord {
        OutRecord {
            key: key.into(),
            values: values.as_object().cloned().unwrap_or_default(),
            event_id: String::new(),
        }
    }

    #[test]
    fn the_key_field_becomes_external_id_and_is_not_repeated() {
        let r = rec("42", json!({"user_id": 42, "email": "a@b.c", "plan": null}));
        let body = track_body("user_id", WriteOp::Upsert, &[r]);
        assert_eq!(
            body,
            json!({"attributes": [{"external_id": "42", "email": "a@b.c", "plan": null}]})
        );
        let r = rec("7", json!({"external_id": 7, "n": 1}));
        let body = track_body("external_id", WriteOp::Update, &[r]);
        assert_eq!(
            body,
            json!({"attributes": [{"external_id": "7", "n": 1, "_update_existing_only": true}]})
        );
        let del = delete_body(&[rec("1", json!({})), rec("2", json!({}))]);
        assert_eq!(del, json!({"external_ids": ["1", "2"]}));
    }
}
