//! HubSpot's record store: objects by type, string-valued properties, soft-deleted
//! ("archived") records, and which properties are unique (usable as `idProperty`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::rules::Rule;
use crate::util::now_iso;

/// First record id handed out (HubSpot ids are numeric strings).
const FIRST_ID: u64 = 100_001;

/// One stored record.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub id: u64,
    pub props: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

/// A declared property: its `type` and `fieldType` (see [`super::schema`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PropDef {
    pub kind: String,
    pub field_type: String,
    pub read_only: bool,
}

/// All records of a fake portal, plus the per-object schema bits tests configure.
#[derive(Debug, Default)]
pub(crate) struct Store {
    objects: BTreeMap<String, BTreeMap<u64, Record>>,
    next_id: u64,
    unique: BTreeMap<String, BTreeSet<String>>,
    rules: BTreeMap<String, Vec<Rule>>,
    /// Declared properties per object (HubSpot's defaults plus what tests add).
    declared: BTreeMap<String, BTreeMap<String, PropDef>>,
}

/// Maps an object type id to the name the store files it under, so `0-1` and `contacts`
/// address the same records (https://developers.hubspot.com/docs/api/crm/understanding-the-crm).
pub(crate) fn canonical(object_type: &str) -> String {
    match object_type {
        "0-1" => "contacts".into(),
        "0-2" => "companies".into(),
        "0-3" => "deals".into(),
        "0-5" => "tickets".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// The object type id HubSpot names in its error messages.
pub(crate) fn type_id(object: &str) -> &str {
    match object {
        "contacts" => "0-1",
        "companies" => "0-2",
        "deals" => "0-3",
        "tickets" => "0-5",
        other => other,
    }
}

/// Singular label used in "Contact already exists" messages.
pub(crate) fn label(object: &str) -> String {
    match object {
        "contacts" => "Contact".into(),
        "companies" => "Company".into(),
        "deals" => "Deal".into(),
        "tickets" => "Ticket".into(),
        other => other.to_string(),
    }
}

/// Property values as HubSpot stores them: strings; `null` and `""` mean "clear".
pub(crate) fn to_props(properties: &Map<String, Value>) -> BTreeMap<String, Option<String>> {
    properties
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                other => Some(other.to_string()),
            };
            (k.clone(), text)
        })
        .collect()
}

impl Store {
    pub(crate) fn new(unique: &[(String, String)]) -> Self {
        let mut store = Store {
            next_id: FIRST_ID,
            ..Store::default()
        };
        for (object, props) in super::schema::defaults() {
            for (name, def) in props {
                store.declare(object, name, def);
            }
        }
        for (object, prop) in unique {
            store.add_unique(object, prop);
        }
        store
    }

    /// Declares (or redefines) a property of `object`.
    pub(crate) fn declare(&mut self, object: &str, name: &str, def: PropDef) {
        self.declared
            .entry(canonical(object))
            .or_default()
            .insert(name.to_string(), def);
    }

    /// Whether `object` exists: a standard object, or one with declared properties, unique
    /// properties or records.
    pub(crate) fn knows(&self, object: &str) -> bool {
        self.declared.contains_key(object)
            || self.unique.contains_key(object)
            || self.objects.contains_key(object)
    }

    /// Every property of `object`: declared ones, unique ones and any name a record holds
    /// (the fake accepts writes of undeclared properties and lists them as text).
    pub(crate) fn properties(&self, object: &str) -> BTreeMap<String, PropDef> {
        let mut out = self.declared.get(object).cloned().unwrap_or_default();
        let text = || PropDef {
            kind: "string".into(),
            field_type: "text".into(),
            read_only: false,
        };
        for name in self.unique.get(object).into_iter().flatten() {
            out.entry(name.clone()).or_insert_with(text);
        }
        for record in self
            .objects
            .get(object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            for name in record.props.keys() {
                out.entry(name.clone()).or_insert_with(text);
            }
        }
        out
    }

    /// Records of `object` (live or archived) with an id above `after`, at most `limit`,
    /// in id order.
    pub(crate) fn page(
        &self,
        object: &str,
        archived: bool,
        after: u64,
        limit: usize,
    ) -> Vec<&Record> {
        self.objects
            .get(object)
            .map(|m| {
                m.range(after.saturating_add(1)..)
                    .map(|(_, r)| r)
                    .filter(|r| r.archived_at.is_some() == archived)
                    .take(limit)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn add_unique(&mut self, object: &str, prop: &str) {
        self.unique
            .entry(canonical(object))
            .or_default()
            .insert(prop.to_string());
    }

    pub(crate) fn add_rule(&mut self, object: &str, rule: Rule) {
        self.rules.entry(canonical(object)).or_default().push(rule);
    }

    pub(crate) fn rules(&self, object: &str) -> &[Rule] {
        self.rules.get(object).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn is_unique(&self, object: &str, prop: &str) -> bool {
        self.unique.get(object).is_some_and(|s| s.contains(prop))
    }

    pub(crate) fn unique_props(&self, object: &str) -> Vec<String> {
        self.unique
            .get(object)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Live (non-archived) record whose `prop` equals `value`; `hs_object_id` means the id.
    pub(crate) fn find(&self, object: &str, prop: &str, value: &str) -> Option<&Record> {
        if prop == "hs_object_id" {
            return self.find_by_id(object, value);
        }
        self.objects.get(object)?.values().find(|r| {
            r.archived_at.is_none() && r.props.get(prop).map(String::as_str) == Some(value)
        })
    }

    /// Live record with this record id.
    pub(crate) fn find_by_id(&self, object: &str, id: &str) -> Option<&Record> {
        let id: u64 = id.trim().parse().ok()?;
        self.objects
            .get(object)?
            .get(&id)
            .filter(|r| r.archived_at.is_none())
    }

    /// Archived record with this record id.
    pub(crate) fn find_archived(&self, object: &str, id: &str) -> Option<&Record> {
        let id: u64 = id.trim().parse().ok()?;
        self.objects
            .get(object)?
            .get(&id)
            .filter(|r| r.archived_at.is_some())
    }

    pub(crate) fn create(
        &mut self,
        object: &str,
        props: BTreeMap<String, Option<String>>,
    ) -> Record {
        let id = self.next_id;
        self.next_id += 1;
        let now = now_iso();
        let record = Record {
            id,
            props: props
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            created_at: now.clone(),
            updated_at: now,
            archived_at: None,
        };
        self.objects
            .entry(object.to_string())
            .or_default()
            .insert(id, record.clone());
        record
    }

    pub(crate) fn update(
        &mut self,
        object: &str,
        id: u64,
        props: BTreeMap<String, Option<String>>,
    ) -> Option<Record> {
        let record = self.objects.get_mut(object)?.get_mut(&id)?;
        for (k, v) in props {
            match v {
                Some(v) => {
                    record.props.insert(k, v);
                }
                None => {
                    record.props.remove(&k);
                }
            }
        }
        record.updated_at = now_iso();
        Some(record.clone())
    }

    /// Soft-deletes; unknown or already archived ids are ignored, as archive is idempotent.
    pub(crate) fn archive(&mut self, object: &str, id: &str) {
        let Ok(id) = id.trim().parse::<u64>() else {
            return;
        };
        if let Some(r) = self.objects.get_mut(object).and_then(|m| m.get_mut(&id)) {
            if r.archived_at.is_none() {
                r.archived_at = Some(now_iso());
            }
        }
    }

    /// Records of `object`, live or archived, in id order.
    pub(crate) fn list(&self, object: &str, archived: bool) -> Vec<&Record> {
        self.objects
            .get(object)
            .map(|m| {
                m.values()
                    .filter(|r| r.archived_at.is_some() == archived)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A record as the API returns it (`SimplePublicObject`). `filter` limits the properties
/// to those named (plus `hs_object_id`), as `properties` does on batch/read.
pub(crate) fn render(record: &Record, filter: Option<&[String]>) -> Value {
    let mut props = Map::new();
    let all = record
        .props
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([
            ("hs_object_id".to_string(), record.id.to_string()),
            ("createdate".to_string(), record.created_at.clone()),
            ("lastmodifieddate".to_string(), record.updated_at.clone()),
        ]);
    for (k, v) in all {
        let wanted = match filter {
            Some(f) => k == "hs_object_id" || f.contains(&k),
            None => true,
        };
        if wanted {
            props.insert(k, Value::String(v));
        }
    }
    let mut out = json!({
        "id": record.id.to_string(),
        "properties": props,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "archived": record.archived_at.is_some(),
    });
    if let Some(at) = &record.archived_at {
        out["archivedAt"] = json!(at);
    }
    out
}
