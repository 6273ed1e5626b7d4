//! The published JSON Schemas describe the config files users write.

use std::process::Command;

fn retl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_retl"))
        .args(args)
        .output()
        .expect("retl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn sync_schema_lists_every_sync_field_and_mode() {
    let (code, out) = retl(&["schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("schema is JSON");
    let props = v["properties"].as_object().expect("properties");
    for f in [
        "name",
        "source",
        "primary_key",
        "destination",
        "mapping",
        "mode",
        "safety",
        "schedule",
    ] {
        assert!(props.contains_key(f), "schema lacks {f}");
    }
    let text = out.as_str();
    for mode in [
        "upsert",
        "mirror",
        "append",
        "insert",
        "update",
        "delete_only",
        "delete",
    ] {
        assert!(
            text.contains(&format!("\"{mode}\"")),
            "schema lacks mode {mode}"
        );
    }
}

#[test]
fn project_schema_describes_connections() {
    let (code, out) = retl(&["schema", "--project-file"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("schema is JSON");
    assert!(v["properties"]["connections"].is_object(), "{v}");
    for t in ["sqlite", "postgres", "webhook"] {
        assert!(
            out.contains(&format!("\"{t}\"")),
            "schema lacks connection type {t}"
        );
    }
}

#[test]
fn event_schemas_name_their_event_and_version() {
    for name in ["retl.trigger", "retl.run.completed"] {
        let (code, out) = retl(&["schema", "--event", name]);
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("schema is JSON");
        // Draft 4 (what the EventBridge schema registry takes): `enum`, not `const`; `id`.
        assert_eq!(
            v["$schema"], "http://json-schema.org/draft-04/schema#",
            "{v}"
        );
        assert_eq!(
            v["properties"]["detail-type"]["enum"],
            serde_json::json!([name]),
            "{v}"
        );
        assert_eq!(
            v["properties"]["source"]["enum"],
            serde_json::json!(["retl"]),
            "{v}"
        );
        assert_eq!(v["id"], format!("urn:retl:event:{name}:v1"), "{v}");
    }
    let (code, _) = retl(&["schema", "--event", "retl.other"]);
    assert_eq!(code, 2, "an unknown event is a usage error");
}

#[test]
fn committed_schema_files_are_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, args) in [
        ("docs/sync.schema.json", vec!["schema"]),
        ("docs/retl.schema.json", vec!["schema", "--project-file"]),
        (
            "docs/events/retl.trigger.v1.schema.json",
            vec!["schema", "--event", "retl.trigger"],
        ),
        (
            "docs/events/retl.run.completed.v1.schema.json",
            vec!["schema", "--event", "retl.run.completed"],
        ),
    ] {
        let (_, out) = retl(&args);
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert_eq!(
            committed.trim(),
            out.trim(),
            "{file} is out of date: regenerate it with `retl {}` > {file}",
            args.join(" ")
        );
    }
}
