//! The state machine definition checked against what AWS enforces and against template.yaml:
//! a Lambda task outlives its function (so Step Functions never starts a second copy of a
//! step that still runs), and a Distributed Map's result stays under the 256 KiB state
//! limit however many units it runs. Also the loaders the other definition tests share.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::engine::steps::{ApplyStep, ShardStep};
use crate::ports::Counts;

/// Seconds a Lambda task's `TimeoutSeconds` must exceed its function's `Timeout` by: the
/// invocation's own latency, a throttled invoke's queueing and a cold start's Init phase
/// (up to 10 s) come before Lambda's clock starts.
const INVOKE_MARGIN_SECONDS: u64 = 30;

/// Step Functions' limit on a state's input, output and result (256 KiB).
const STATE_PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

/// Items a Distributed Map is checked with: more apply units than the largest runs make.
const MANY_ITEMS: usize = 2_500;

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `infra/statemachine/sync.asl.json` as JSON. Quoted substitutions (`"${ExtractFunctionArn}"`)
/// stay as they are, naming the template's substitution; the bare numeric ones
/// (`${PlanConcurrency}`) become `1`.
pub(super) fn definition() -> Value {
    let text = repo_file("infra/statemachine/sync.asl.json");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        let quoted = rest[..at].ends_with('"');
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a closed substitution") + at;
        out.push_str(if quoted { &rest[at..=end] } else { "1" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).expect("the state machine definition is JSON")
}

/// Calls `f` with every state of the definition, nested Map processors included.
pub(super) fn walk_states(asl: &Value, f: &mut dyn FnMut(&str, &Value)) {
    for (name, state) in asl["States"].as_object().into_iter().flatten() {
        f(name, state);
        if let Some(processor) = state.get("ItemProcessor") {
            walk_states(processor, f);
        }
    }
}

/// The synchronous Lambda tasks (`arn:aws:states:::lambda:invoke`), by state name.
/// Every Lambda task, the approval wait (`.waitForTaskToken`) included.
pub(super) fn every_lambda_task(asl: &Value) -> BTreeMap<String, Value> {
    let mut tasks = BTreeMap::new();
    walk_states(asl, &mut |name, state| {
        let resource = state["Resource"].as_str().unwrap_or_default();
        if resource.starts_with("arn:aws:states:::lambda:invoke") {
            tasks.insert(name.to_string(), state.clone());
        }
    });
    tasks
}

pub(super) fn lambda_tasks(asl: &Value) -> BTreeMap<String, Value> {
    let mut tasks = BTreeMap::new();
    walk_states(asl, &mut |name, state| {
        if state["Resource"] == "arn:aws:states:::lambda:invoke" {
            tasks.insert(name.to_string(), state.clone());
        }
    });
    tasks
}

/// The parts of template.yaml these checks read (CloudFormation's `!GetAtt X.Arn` tags are
/// ignored by the YAML reader: their scalar `X.Arn` remains).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Template {
    globals: Globals,
    resources: BTreeMap<String, Resource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Globals {
    function: Properties,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    properties: Option<Properties>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Properties {
    timeout: Option<u64>,
    definition_substitutions: Option<BTreeMap<String, String>>,
    logging_config: Option<LoggingConfig>,
    dead_letter_queue: Option<DeadLetterQueue>,
    retention_in_days: Option<Value>,
    dimensions: Option<Vec<Dimension>>,
    alarm_actions: Option<Vec<String>>,
    schema_name: Option<String>,
    #[serde(rename = "Type")]
    schema_type: Option<String>,
    /// A schema's Content is its text; an SSM document's is a mapping.
    content: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LoggingConfig {
    log_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeadLetterQueue {
    target_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Dimension {
    value: String,
}

impl Template {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Properties)> {
        self.resources
            .iter()
            .filter(move |(_, r)| r.kind == kind)
            .filter_map(|(name, r)| Some((name.as_str(), r.properties.as_ref()?)))
    }
}

/// Every function logs to a log group the stack declares, with the stack's retention (one
/// Lambda creates on first use keeps logs forever and outlives the stack).
#[test]
fn every_function_logs_to_a_declared_group_with_retention() {
    let t = template();
    let mut functions = 0;
    for (name, props) in t.of_kind("AWS::Serverless::Function") {
        functions += 1;
        let group = props
            .logging_config
            .as_ref()
            .and_then(|l| l.log_group.as_deref())
            .unwrap_or_else(|| panic!("{name}: no LoggingConfig.LogGroup"));
        let declared = t.resources.get(group);
        assert!(
            declared.is_some_and(|g| g.kind == "AWS::Logs::LogGroup"),
            "{name}: its LogGroup {group} is not a declared AWS::Logs::LogGroup"
        );
        let retention = declared
            .and_then(|g| g.properties.as_ref())
            .and_then(|p| p.retention_in_days.as_ref());
        assert!(retention.is_some(), "{group} has no RetentionInDays");
    }
    assert_eq!(functions, 7);
}

/// The schema registry holds the published schemas themselves: each event's
/// `AWS::EventSchemas::Schema` is named `<event>.v<version>`, is draft 4 (a type the registry
/// takes), and its Content is `docs/events/<event>.v<version>.schema.json` as committed (which
/// `retl schema --event` regenerates; cli/tests/schema.rs checks that).
#[test]
fn the_schema_registry_holds_the_published_event_schemas() {
    use super::event_schemas::{event_schema, event_schema_file, EVENTS, EVENT_SCHEMA_VERSION};
    let t = template();
    let schemas: BTreeMap<&str, &Properties> = t
        .of_kind("AWS::EventSchemas::Schema")
        .map(|(_, p)| (p.schema_name.as_deref().expect("a SchemaName"), p))
        .collect();
    assert_eq!(schemas.len(), EVENTS.len(), "{:?}", schemas.keys());
    for event in EVENTS {
        let name = format!("{event}.v{EVENT_SCHEMA_VERSION}");
        let schema = schemas
            .get(name.as_str())
            .unwrap_or_else(|| panic!("template.yaml registers no schema {name}"));
        assert_eq!(
            schema.schema_type.as_deref(),
            Some("JSONSchemaDraft4"),
            "{name}"
        );
        let file = event_schema_file(event);
        let content = schema.content.as_ref().and_then(Value::as_str);
        let content = content.expect("a Content string");
        assert_eq!(
            content.trim(),
            repo_file(&file).trim(),
            "the Content of schema {name} in template.yaml is not {file}: copy the file into it \
             (indented under `Content: |`)"
        );
        let parsed: Value = serde_json::from_str(content).expect("the Content is JSON");
        assert_eq!(Some(parsed), event_schema(event), "{name}");
    }
}

/// The trigger function, invoked asynchronously by schedules and rules, keeps what it failed
/// on in a dead-letter queue, and an alarm on that queue publishes to the stack's topic.
#[test]
fn the_trigger_function_has_a_dead_letter_queue_with_an_alarm() {
    let t = template();
    let trigger = t.resources["TriggerFunction"].properties.as_ref();
    let target = trigger
        .and_then(|p| p.dead_letter_queue.as_ref())
        .map(|d| d.target_arn.as_str())
        .expect("TriggerFunction has a DeadLetterQueue");
    let queue = target
        .strip_suffix(".Arn")
        .expect("a GetAtt of a queue's Arn");
    assert_eq!(t.resources[queue].kind, "AWS::SQS::Queue");
    let alarmed = t.of_kind("AWS::CloudWatch::Alarm").any(|(_, a)| {
        let on_queue = a
            .dimensions
            .iter()
            .flatten()
            .any(|d| d.value.starts_with(&format!("{queue}.")));
        let notifies = a.alarm_actions.iter().flatten().any(|x| x == "AlertsTopic");
        on_queue && notifies
    });
    assert!(alarmed, "no alarm on {queue} publishing to AlertsTopic");
}

fn template() -> Template {
    serde_saphyr::from_str(&repo_file("template.yaml")).expect("template.yaml parses")
}

/// The `Timeout` of each function a substitution of the state machine names, by
/// substitution (`ExtractFunctionArn` -> 900).
fn function_timeouts(t: &Template) -> BTreeMap<String, u64> {
    let default = t
        .globals
        .function
        .timeout
        .expect("Globals.Function.Timeout");
    let machine = t
        .resources
        .values()
        .find(|r| r.kind == "AWS::Serverless::StateMachine")
        .and_then(|r| r.properties.as_ref())
        .and_then(|p| p.definition_substitutions.clone())
        .expect("the state machine's DefinitionSubstitutions");
    machine
        .into_iter()
        .filter_map(|(name, value)| {
            let function = value.strip_suffix(".Arn")?;
            let resource = t.resources.get(function)?;
            (resource.kind == "AWS::Serverless::Function").then(|| {
                let own = resource.properties.as_ref().and_then(|p| p.timeout);
                (name, own.unwrap_or(default))
            })
        })
        .collect()
}

/// A synchronous Lambda task cannot heartbeat, so its `TimeoutSeconds` must outlast the
/// function: then Lambda ends (and reports) the invocation before Step Functions gives up on
/// it, and no retry starts while the first copy still runs.
#[test]
fn every_lambda_task_outlives_its_function() {
    let timeouts = function_timeouts(&template());
    assert_eq!(timeouts.len(), 5, "{timeouts:?}");
    let tasks = lambda_tasks(&definition());
    assert!(tasks.len() >= 9, "{tasks:?}");
    for (name, task) in tasks {
        let function = task["Parameters"]["FunctionName"]
            .as_str()
            .and_then(|f| f.strip_prefix("${")?.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{name}: FunctionName is not a substitution"));
        let limit = timeouts[function];
        let task_timeout = task["TimeoutSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has no TimeoutSeconds"));
        assert!(
            task_timeout >= limit + INVOKE_MARGIN_SECONDS,
            "{name}: TimeoutSeconds {task_timeout} must exceed {function}'s Timeout {limit} \
             by {INVOKE_MARGIN_SECONDS} s, or Step Functions may retry a step that still runs"
        );
        assert!(
            task.get("HeartbeatSeconds").is_none(),
            "{name}: a synchronous Lambda task cannot send heartbeats"
        );
    }
}

/// What one iteration of the Map named `label` returns (the function's response, as large
/// as its numbers get).
fn iteration_response(label: &str, item: usize) -> Value {
    let big = u64::MAX / 2;
    let counts = Counts {
        rows: big,
        creates: big,
        updates: big,
        deletes: big,
        unchanged: big,
        skipped: big,
        rejected: big,
        failed: big,
    };
    match label {
        "ApplyUnits" => json!(ApplyStep { unit: item, counts }),
        "PlanShards" => json!(ShardStep {
            shard: u32::try_from(item).unwrap_or(u32::MAX),
            ops: big,
        }),
        other => panic!("no response model for the Map {other}"),
    }
}

/// A Distributed Map's result as Step Functions builds it for `items` iterations: with a
/// `ResultWriter`, the reference to the results it wrote to S3; without, the array of every
/// child execution's output.
fn map_result(name: &str, map: &Value, items: usize) -> Value {
    if let Some(writer) = map.get("ResultWriter") {
        let prefix = writer["Parameters"]["Prefix"].as_str().unwrap_or_default();
        let map_run = "0f4a6c2e-1b9d-4e57-9a3c-7d2b8e6f1a40";
        return json!({
            "MapRunArn": format!(
                "arn:aws:states:ap-southeast-2:123456789012:mapRun:\
                 a-stack-name-of-thirty-two-chars-sync/{name}:{map_run}"
            ),
            "ResultWriterDetails": {
                "Bucket": "retl-artifacts-123456789012-ap-southeast-2",
                "Key": format!("{prefix}/{map_run}/manifest.json"),
            }
        });
    }
    let processor = &map["ItemProcessor"];
    let last = &processor["States"][processor["StartAt"].as_str().expect("StartAt")];
    let output = |item| match last.get("OutputPath") {
        Some(Value::Null) => json!({}),
        Some(p) if p == "$.Payload" => iteration_response(name, item),
        other => panic!("{name}: OutputPath {other:?} is not modelled"),
    };
    Value::Array((0..items).map(output).collect())
}

/// Every Distributed Map's result stays under the state payload limit at 2,500 items, so a
/// sync with that many apply units does not fail with `States.DataLimitExceeded`.
#[test]
fn distributed_map_results_fit_the_state_limit_at_thousands_of_units() {
    let asl = definition();
    let mut maps = 0;
    walk_states(&asl, &mut |name, state| {
        if state["ItemProcessor"]["ProcessorConfig"]["Mode"] != "DISTRIBUTED" {
            return;
        }
        maps += 1;
        let size = map_result(name, state, MANY_ITEMS).to_string().len();
        assert!(
            size < STATE_PAYLOAD_LIMIT_BYTES,
            "{name}: the result of {MANY_ITEMS} iterations is {size} bytes, over Step \
             Functions' {STATE_PAYLOAD_LIMIT_BYTES}; write it to S3 (ResultWriter)"
        );
    });
    assert_eq!(maps, 2, "the plan and apply Maps");
}
