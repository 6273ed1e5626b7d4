//! What a recording webhook receiver ends up holding, replayed the way a receiver that
//! follows the contract would store it: each `event_id` once, `upsert` sets a record,
//! `create` adds one (a second create of a key it holds is a duplicate create), `delete`
//! removes one.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use crate::http::Received;

/// The receiver's records after replaying every stored request.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// key → the record's `fields`.
    pub records: BTreeMap<String, Value>,
    /// Keys created while the receiver already held them (a duplicate create).
    pub duplicate_creates: Vec<String>,
    /// key → the distinct event ids of its creates: more than one is the same record created
    /// under two identities, which no receiver can de-duplicate.
    pub create_events: BTreeMap<String, BTreeSet<String>>,
    /// Record changes stored, before de-duplication by event id.
    pub stored: usize,
    /// Record changes a de-duplicating receiver dropped (an event id seen before).
    pub repeats: usize,
}

impl Ledger {
    /// Replays the records `received` says were stored, in arrival order.
    pub fn replay(received: &[Received]) -> Ledger {
        let mut ledger = Ledger::default();
        let mut seen: HashSet<String> = HashSet::new();
        for r in received {
            let op = r.body["op"].as_str().unwrap_or_default();
            let records = r.body["records"].as_array().cloned().unwrap_or_default();
            for i in &r.processed {
                let Some(rec) = records.get(*i) else { continue };
                ledger.stored += 1;
                let key = key_text(&rec["key"]);
                let event = rec["event_id"].as_str().unwrap_or_default().to_string();
                if !seen.insert(event.clone()) {
                    ledger.repeats += 1;
                    continue;
                }
                ledger.store(op, key, event, rec["fields"].clone());
            }
        }
        ledger
    }

    fn store(&mut self, op: &str, key: String, event: String, fields: Value) {
        match op {
            "create" => {
                self.create_events
                    .entry(key.clone())
                    .or_default()
                    .insert(event);
                match self.records.entry(key) {
                    Entry::Occupied(held) => self.duplicate_creates.push(held.key().clone()),
                    Entry::Vacant(free) => {
                        free.insert(fields);
                    }
                }
            }
            "delete" => {
                self.records.remove(&key);
            }
            _ => {
                self.records.insert(key, fields);
            }
        }
    }

    /// Keys whose creates carried more than one event id.
    pub fn split_creates(&self) -> Vec<&String> {
        self.create_events
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(k, _)| k)
            .collect()
    }

    /// The records as `id → name` (the campaign's two-column model).
    pub fn people(&self) -> BTreeMap<i64, String> {
        self.records
            .iter()
            .filter_map(|(k, f)| {
                let id = k.parse().ok()?;
                Some((id, f["name"].as_str().unwrap_or_default().to_string()))
            })
            .collect()
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
