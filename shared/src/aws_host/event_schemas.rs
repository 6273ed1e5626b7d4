//! The EventBridge events of the AWS bundle as Rust types, and their published JSON Schemas
//! (`docs/events/*.schema.json`, printed by `retl schema --event NAME`): `retl.trigger`,
//! which other tools put on the bus to start a sync, and `retl.run.completed`, which the
//! finalize function puts when a run ends (and which chains `after_sync` triggers).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ports::{Counts, RunRecord, RunStatus};

/// The `source` of every retl event.
pub const EVENT_SOURCE: &str = "retl";

/// `detail-type` of the event that asks a stack to start a run.
pub const TRIGGER_EVENT: &str = "retl.trigger";

/// `detail-type` of the event a stack puts when a run ends.
pub const RUN_COMPLETED_EVENT: &str = "retl.run.completed";

/// Version of the events' shape, in each schema's `$id` and file name. A field added is
/// compatible; a field removed, renamed or retyped makes a new version.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The event names `retl schema --event` knows.
pub const EVENTS: [&str; 2] = [TRIGGER_EVENT, RUN_COMPLETED_EVENT];

/// The JSON Schema draft of the published schemas: one the EventBridge schema registry takes
/// (`AWS::EventSchemas::Schema` of `Type: JSONSchemaDraft4`), so `template.yaml` registers
/// the very files of `docs/events/`.
pub const EVENT_SCHEMA_DRAFT: &str = "http://json-schema.org/draft-04/schema#";

/// `detail` of a `retl.trigger` event: start a run of `sync` (as a scheduled run would, on
/// the stack whose trigger function receives it). Other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TriggerDetail {
    /// The sync to run, as named in its file.
    pub sync: String,
    /// The stack meant (CloudFormation stack name); a stack ignores a trigger naming another.
    /// Optional: the stack's own bus already says which stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

/// `detail` of a `retl.run.completed` event: how a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunCompletedDetail {
    /// The stack (CloudFormation stack name) the run belongs to.
    pub stack: String,
    /// The sync.
    pub sync: String,
    /// The run.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// Records read, created, updated, deleted, unchanged, skipped, rejected and failed.
    pub counts: Counts,
    /// When it ended (RFC 3339, UTC).
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The `Retl.*` name of the error that ended it, when one did.
    pub error_name: Option<String>,
}

impl RunCompletedDetail {
    /// The detail of `run` of `stack`.
    pub fn of(stack: &str, run: &RunRecord) -> Self {
        RunCompletedDetail {
            stack: stack.to_string(),
            sync: run.sync.clone(),
            run_id: run.run_id.clone(),
            status: run.status,
            counts: run.counts.clone(),
            finished_at: run.finished_at,
            error_name: run.error_name.clone(),
        }
    }
}

/// Draft-04 schemas: draft 7's settings (`definitions`, no `$ref` siblings, no
/// `prefixItems`) without `const`, which draft 4 lacks (a one-value `enum` instead).
fn draft04() -> schemars::SchemaGenerator {
    schemars::generate::SchemaSettings::draft07()
        .with(|s| {
            s.meta_schema = Some(EVENT_SCHEMA_DRAFT.into());
            s.transforms
                .push(Box::new(schemars::transform::ReplaceConstValue::default()));
        })
        .into_generator()
}

/// The JSON Schema (draft 4) of the whole EventBridge event `name` (`source`, `detail-type`
/// and the typed `detail`), versioned by [`EVENT_SCHEMA_VERSION`]; `None` for an unknown name.
pub fn event_schema(name: &str) -> Option<Value> {
    let (detail, what) = match name {
        TRIGGER_EVENT => (
            draft04().into_root_schema_for::<TriggerDetail>(),
            "Put on the stack's event bus to start a run of a sync.",
        ),
        RUN_COMPLETED_EVENT => (
            draft04().into_root_schema_for::<RunCompletedDetail>(),
            "Put by the stack when a run ends; syncs with `after_sync` on a succeeded run start.",
        ),
        _ => return None,
    };
    let mut detail = serde_json::to_value(detail).ok()?;
    let definitions = detail
        .as_object_mut()
        .and_then(|d| d.remove("definitions"))
        .unwrap_or_else(|| json!({}));
    if let Some(d) = detail.as_object_mut() {
        d.remove("$schema");
    }
    Some(json!({
        "$schema": EVENT_SCHEMA_DRAFT,
        "id": format!("urn:retl:event:{name}:v{EVENT_SCHEMA_VERSION}"),
        "title": format!("{name} v{EVENT_SCHEMA_VERSION}"),
        "description": what,
        "type": "object",
        "required": ["source", "detail-type", "detail"],
        "properties": {
            "source": { "enum": [EVENT_SOURCE] },
            "detail-type": { "enum": [name] },
            "detail": detail,
        },
        "definitions": definitions,
    }))
}

/// The file under `docs/events/` that publishes the schema of `name`.
pub fn event_schema_file(name: &str) -> String {
    format!("docs/events/{name}.v{EVENT_SCHEMA_VERSION}.schema.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_versioned_schema_of_its_detail() {
        for name in EVENTS {
            let s = event_schema(name).expect("a schema");
            assert_eq!(s["properties"]["detail-type"]["enum"], json!([name]));
            assert_eq!(s["id"], format!("urn:retl:event:{name}:v1"));
            assert_eq!(s["$schema"], EVENT_SCHEMA_DRAFT);
            // Draft 4 has neither `const` nor `$defs`: EventBridge's registry would refuse it.
            let text = s.to_string();
            assert!(
                !text.contains("\"const\"") && !text.contains("$defs"),
                "{s}"
            );
            assert!(
                s["properties"]["detail"]["properties"]["sync"].is_object(),
                "{s}"
            );
        }
        let completed = event_schema(RUN_COMPLETED_EVENT).unwrap();
        let required = completed["properties"]["detail"]["required"].to_string();
        for field in ["stack", "run_id", "status", "counts"] {
            assert!(required.contains(field), "{required}");
        }
        assert!(
            completed.to_string().contains("partially_failed"),
            "{completed}"
        );
        assert!(event_schema("retl.other").is_none());
    }

    #[test]
    fn a_run_completed_detail_carries_the_run() {
        let mut run = RunRecord::new("r1".into(), "people", "manual", 1);
        run.status = RunStatus::Succeeded;
        let v = serde_json::to_value(RunCompletedDetail::of("stack", &run)).unwrap();
        assert_eq!(v["sync"], "people");
        assert_eq!(v["status"], "succeeded");
        assert_eq!(v["stack"], "stack");
        assert!(v["counts"]["creates"].is_u64(), "{v}");
    }
}
