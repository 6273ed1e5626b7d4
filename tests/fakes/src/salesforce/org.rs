//! The fake org: records per sObject, the recycle bin, the per-object rules tests configure,
//! and the one-record save engine that sObject Collections and Bulk API 2.0 share, so both
//! APIs write the same store with the same per-record errors.
//!
//! Per-record status codes are values of the API `StatusCode` enum
//! (<https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm>);
//! message wording follows what the API is commonly observed to send.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::rules::{lookup, Rule};
use crate::util::scalar_text;

use super::RecordFault;

/// A per-record failure (`errors[]` entry of a SaveResult / UpsertResult / DeleteResult).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordError {
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub(crate) fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        Self {
            status_code: code.to_string(),
            message: message.into(),
            fields,
        }
    }
}

/// A successful save.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub id: String,
    pub created: bool,
}

/// What to do with one record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<'a> {
    Create,
    Update,
    Upsert(&'a str),
    Delete { hard: bool },
}

/// Record data, cloned whole to roll back an `allOrNone` request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Data {
    objects: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    index: HashMap<String, String>,
    deleted: HashMap<String, String>,
}

/// The org: data plus schema rules and injected per-record faults.
#[derive(Debug, Default)]
pub(crate) struct Org {
    pub data: Data,
    pub next_id: u64,
    pub unique: Vec<(String, String)>,
    pub required: Vec<(String, String)>,
    pub rules: Vec<(String, Rule)>,
    pub faults: Vec<RecordFault>,
}

/// Key prefix of record ids of standard objects (custom objects get `a01`).
fn key_prefix(sobject: &str) -> &'static str {
    match sobject.to_ascii_lowercase().as_str() {
        "account" => "001",
        "contact" => "003",
        "opportunity" => "006",
        "lead" => "00Q",
        "case" => "500",
        "user" => "005",
        "campaign" => "701",
        "campaignmember" => "00v",
        "task" => "00T",
        "event" => "00U",
        _ => "a01",
    }
}

/// 15- or 18-character alphanumeric, as record ids are.
pub(crate) fn well_formed_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

fn id_of(record: &Map<String, Value>) -> Option<String> {
    lookup(record, "Id", true)
        .filter(|v| !v.is_null())
        .map(scalar_text)
}

fn without_id(record: &Map<String, Value>) -> Map<String, Value> {
    record
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("id") && k.as_str() != "attributes")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Data {
    pub(crate) fn records(&self, sobject: &str) -> Vec<Map<String, Value>> {
        self.objects
            .get(sobject)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn deleted_ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.deleted.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The full id stored for `id` (18 characters, or 15 matching its prefix).
    fn resolve(&self, id: &str) -> Option<(String, String)> {
        if let Some(o) = self.index.get(id) {
            return Some((id.to_string(), o.clone()));
        }
        (id.len() == 15).then_some(())?;
        self.index
            .iter()
            .find(|(full, _)| full.starts_with(id))
            .map(|(full, o)| (full.clone(), o.clone()))
    }

    fn matching(&self, sobject: &str, field: &str, value: &str) -> Vec<String> {
        self.objects
            .get(sobject)
            .map(|m| {
                m.iter()
                    .filter(|(_, r)| {
                        lookup(r, field, true)
                            .is_some_and(|v| !v.is_null() && scalar_text(v) == value)
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Org {
    /// Saves one record of `sobject` (ignored for deletes, which carry only an id).
    pub(crate) fn execute(
        &mut self,
        sobject: &str,
        op: Op<'_>,
        record: &Map<String, Value>,
    ) -> Result<Outcome, RecordError> {
        match op {
            Op::Create => {
                if id_of(record).is_some() {
                    return Err(RecordError::new(
                        "INVALID_FIELD",
                        "Cannot specify Id in an insert call",
                        vec!["Id".into()],
                    ));
                }
                self.create(sobject, record)
            }
            Op::Update => {
                let Some(id) = id_of(record) else {
                    return Err(RecordError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        vec![],
                    ));
                };
                self.update(&id, record)
            }
            Op::Upsert(field) => self.upsert(sobject, field, record),
            Op::Delete { hard } => {
                let id = id_of(record).unwrap_or_default();
                self.delete(&id, hard)
            }
        }
    }

    fn create(
        &mut self,
        sobject: &str,
        record: &Map<String, Value>,
    ) -> Result<Outcome, RecordError> {
        let fields = without_id(record);
        self.injected(sobject, &fields)?;
        self.validate(sobject, &fields, true, None)?;
        self.next_id += 1;
        let id = format!("{}000{:09}AAA", key_prefix(sobject), self.next_id);
        let mut stored = fields;
        stored.insert("Id".into(), Value::String(id.clone()));
        self.data
            .objects
            .entry(sobject.to_string())
            .or_default()
            .insert(id.clone(), stored);
        self.data.index.insert(id.clone(), sobject.to_string());
        Ok(Outcome { id, created: true })
    }

    /// Finds a live record, or the error an update/delete of `id` gets.
    fn live(&self, id: &str) -> Result<(String, String), RecordError> {
        if !well_formed_id(id) {
            return Err(RecordError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                vec![],
            ));
        }
        if let Some(found) = self.data.resolve(id) {
            return Ok(found);
        }
        let deleted = self.data.deleted.contains_key(id)
            || (id.len() == 15 && self.data.deleted.keys().any(|k| k.starts_with(id)));
        if deleted {
            Err(RecordError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                vec![],
            ))
        } else {
            Err(RecordError::new(
                "NOT_FOUND",
                "The requested resource does not exist",
                vec![],
            ))
        }
    }

    fn update(&mut self, id: &str, record: &Map<String, Value>) -> Result<Outcome, RecordError> {
        let (id, sobject) = self.live(id)?;
        let fields = without_id(record);
        let mut merged = self.data.objects[&sobject][&id].clone();
        merged.extend(fields.clone());
        self.injected(&sobject, &merged)?;
        self.validate(&sobject, &fields, false, Some(&id))?;
        if let Some(stored) = self
            .data
            .objects
            .get_mut(&sobject)
            .and_then(|m| m.get_mut(&id))
        {
            stored.extend(fields);
        }
        Ok(Outcome { id, created: false })
    }

    fn upsert(
        &mut self,
        sobject: &str,
        field: &str,
        record: &Map<String, Value>,
    ) -> Result<Outcome, RecordError> {
        if id_of(record).is_some() {
            return Err(RecordError::new(
                "INVALID_FIELD",
                "Cannot specify Id in an upsert call by external id",
                vec!["Id".into()],
            ));
        }
        let value = lookup(record, field, true)
            .filter(|v| !v.is_null())
            .map(scalar_text)
            .filter(|v| !v.is_empty());
        let Some(value) = value else {
            return Err(RecordError::new(
                "MISSING_ARGUMENT",
                format!("{field} not specified"),
                vec![field.to_string()],
            ));
        };
        let matches = self.data.matching(sobject, field, &value);
        match matches.as_slice() {
            [] => self.create(sobject, record),
            [id] => {
                let id = id.clone();
                self.update(&id, record)
            }
            many => Err(RecordError::new(
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{field}: more than one record found for external id field: [{}]",
                    many.join(", ")
                ),
                vec![field.to_string()],
            )),
        }
    }

    fn delete(&mut self, id: &str, hard: bool) -> Result<Outcome, RecordError> {
        let (id, sobject) = self.live(id)?;
        let stored = self.data.objects[&sobject][&id].clone();
        self.injected(&sobject, &stored)?;
        if let Some(m) = self.data.objects.get_mut(&sobject) {
            m.remove(&id);
        }
        self.data.index.remove(&id);
        if !hard {
            self.data.deleted.insert(id.clone(), sobject);
        }
        Ok(Outcome { id, created: false })
    }

    /// Injected faults fire first: they model the environment (locks), not the data.
    fn injected(&mut self, sobject: &str, record: &Map<String, Value>) -> Result<(), RecordError> {
        for fault in &mut self.faults {
            if !fault.matches(sobject, record) {
                continue;
            }
            match fault.times {
                Some(0) => continue,
                Some(n) => fault.times = Some(n - 1),
                None => {}
            }
            return Err(RecordError::new(
                &fault.status_code,
                fault.message.clone(),
                fault.fields.clone(),
            ));
        }
        Ok(())
    }

    fn validate(
        &self,
        sobject: &str,
        fields: &Map<String, Value>,
        creating: bool,
        self_id: Option<&str>,
    ) -> Result<(), RecordError> {
        if creating {
            let missing: Vec<String> = self
                .required
                .iter()
                .filter(|(o, f)| o == sobject && Rule::required(f).violated(fields, true, true))
                .map(|(_, f)| f.clone())
                .collect();
            if !missing.is_empty() {
                return Err(RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", missing.join(", ")),
                    missing,
                ));
            }
        }
        for (o, rule) in &self.rules {
            if o == sobject && rule.violated(fields, creating, true) {
                return Err(RecordError::new(
                    &rule.code_or("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                    rule.message_for(fields, true),
                    vec![rule.field.clone()],
                ));
            }
        }
        for (o, field) in &self.unique {
            if o != sobject {
                continue;
            }
            let Some(value) = lookup(fields, field, true)
                .filter(|v| !v.is_null())
                .map(scalar_text)
            else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            if let Some(other) = self
                .data
                .matching(sobject, field, &value)
                .into_iter()
                .find(|id| Some(id.as_str()) != self_id)
            {
                return Err(RecordError::new(
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {field} duplicates value on record with id: {other}"),
                    vec![field.clone()],
                ));
            }
        }
        Ok(())
    }

    /// Seeds a record, bypassing rules and faults.
    pub(crate) fn seed(&mut self, sobject: &str, fields: &Map<String, Value>) -> String {
        let (rules, required, faults) = (
            std::mem::take(&mut self.rules),
            std::mem::take(&mut self.required),
            std::mem::take(&mut self.faults),
        );
        let unique = std::mem::take(&mut self.unique);
        let id = self
            .create(sobject, fields)
            .map(|o| o.id)
            .unwrap_or_default();
        (self.rules, self.required, self.faults, self.unique) = (rules, required, faults, unique);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn upsert_creates_then_updates_and_delete_moves_to_recycle_bin() {
        let mut org = Org::default();
        let rec = map(json!({"Ext__c": "e1", "LastName": "A"}));
        let first = org.execute("Contact", Op::Upsert("Ext__c"), &rec).unwrap();
        assert!(first.created);
        assert!(first.id.starts_with("003") && first.id.len() == 18);
        let again = org.execute("Contact", Op::Upsert("ext__c"), &rec).unwrap();
        assert_eq!((again.id.clone(), again.created), (first.id.clone(), false));
        let del = map(json!({"Id": first.id}));
        org.execute("Contact", Op::Delete { hard: false }, &del)
            .unwrap();
        let err = org.execute("Contact", Op::Update, &del).unwrap_err();
        assert_eq!(err.status_code, "ENTITY_IS_DELETED");
    }
}
