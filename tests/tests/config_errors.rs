//! Config errors name the file, line and column, say what is wrong and what to do.

use retl_tests::Project;

fn project(sync: &str) -> Project {
    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  app_db: { type: postgres, url_env: APP_DB_URL }\n  hook: { type: webhook, url: \"http://127.0.0.1:9/x\" }\n",
    );
    p.write("syncs/people.yaml", sync);
    p
}

const GOOD: &str = "name: people
source: { connection: warehouse, sql: \"select id, name from model\" }
primary_key: id
destination: { connection: app_db, object: public.people }
mapping: { id: id, name: name }
mode: upsert
";

fn validate(p: &Project) -> (i32, String) {
    let out = p.retl(&["validate"]);
    (out.code, out.stderr + &out.stdout)
}

#[test]
fn a_valid_project_validates() {
    let (code, out) = validate(&project(GOOD));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 3 connections, 1 sync\n"), "{out}");
}

#[test]
fn an_unknown_key_points_at_it_and_suggests_the_right_one() {
    let (code, out) = validate(&project(&GOOD.replace("mapping:", "mapings:")));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:5:1"), "{out}");
    assert!(out.contains("unknown field `mapings`"), "{out}");
    assert!(out.contains("did you mean `mapping`?"), "{out}");
}

#[test]
fn an_unknown_connection_suggests_a_defined_one() {
    let (code, out) = validate(&project(
        &GOOD.replace("connection: app_db", "connection: app_dbb"),
    ));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:4:28"), "{out}");
    assert!(
        out.contains("connection `app_dbb` is not defined in retl.yaml"),
        "{out}"
    );
    assert!(out.contains("did you mean `app_db`?"), "{out}");
}

#[test]
fn an_unmapped_primary_key_is_reported() {
    let (code, out) = validate(&project(
        &GOOD.replace("mapping: { id: id, name: name }", "mapping: { name: name }"),
    ));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:3:14"), "{out}");
    assert!(
        out.contains("primary key column `id` is not mapped"),
        "{out}"
    );
    assert!(out.contains("add `id: id` under mapping"), "{out}");
}

#[test]
fn a_mode_the_destination_does_not_support_is_reported() {
    let sync = GOOD
        .replace(
            "connection: app_db, object: public.people",
            "connection: hook, object: people",
        )
        .replace("mode: upsert", "mode: update");
    let (code, out) = validate(&project(&sync));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:6:7"), "{out}");
    assert!(
        out.contains("mode `update` is not supported by the webhook destination `hook`"),
        "{out}"
    );
    assert!(out.contains("use one of: upsert, mirror"), "{out}");
}

#[test]
fn a_bad_schedule_and_an_unknown_mode_are_both_reported() {
    let sync = GOOD.replace("mode: upsert", "mode: upsrt\nschedule: \"cron(0 * * *)\"");
    let (code, out) = validate(&project(&sync));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown variant `upsrt`"), "{out}");
    assert!(out.contains("did you mean `upsert`?"), "{out}");
    let sync = GOOD.to_string() + "schedule: \"cron(0 * * *)\"\n";
    let (code, out) = validate(&project(&sync));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:7:11"), "{out}");
    assert!(out.contains("cron needs 6 fields"), "{out}");
}

#[test]
fn problems_in_several_files_are_reported_together() {
    let p = project(&GOOD.replace("primary_key: id", "primary_key: [id, id]"));
    p.write(
        "syncs/other.yaml",
        &GOOD
            .replace("name: people", "name: other")
            .replace("warehouse,", "warehous,"),
    );
    let (code, out) = validate(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:3:14"), "{out}");
    assert!(out.contains("listed twice"), "{out}");
    assert!(out.contains("syncs/other.yaml:2:23"), "{out}");
    assert!(out.contains("2 config errors"), "{out}");
}

#[test]
fn broken_yaml_and_unknown_connection_types_have_positions() {
    let p = project("name: people\nsource: { connection: warehouse\n");
    let (code, out) = validate(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:"), "{out}");

    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  wh:\n    type: snowflak\n    path: x\n",
    );
    let (code, out) = validate(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("retl.yaml:3:5"), "{out}");
    assert!(out.contains("unknown variant `snowflak`"), "{out}");
    assert!(out.contains("expected one of"), "{out}");
}

#[test]
fn json_output_lists_diagnostics() {
    let p = project(&GOOD.replace("mapping:", "mapings:"));
    let (code, v) = p.retl_json(&["validate"]);
    assert_eq!(code, 2);
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 5);
    assert_eq!(v["errors"][0]["hint"], "did you mean `mapping`?");
}

#[test]
fn a_missing_project_or_sync_is_a_usage_error() {
    let empty = Project::new();
    let out = empty.retl(&["run", "people"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no retl.yaml found"), "{}", out.stderr);
    let p = project(GOOD);
    let out = p.retl(&["run", "peple"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("did you mean `people`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_secret_says_how_to_provide_it() {
    let p = project(GOOD);
    p.warehouse("CREATE TABLE model (id INTEGER, name TEXT)");
    let out = p.retl(&["run", "people"]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("secret `APP_DB_URL` is not set: export APP_DB_URL="),
        "{}",
        out.stdout
    );
}

#[test]
fn invalid_utf8_gives_its_position_once() {
    let p = project(GOOD);
    let mut bytes = GOOD.as_bytes().to_vec();
    // Line 2, column 9: "source: " is eight characters; a Latin-1 "é" follows.
    bytes.splice(8 + 13..8 + 13, [0xE9]);
    std::fs::write(p.path().join("syncs/people.yaml"), &bytes).unwrap();
    let (code, out) = validate(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/people.yaml:2:9:"), "{out}");
    assert!(out.contains("byte 0xE9 at byte offset 21"), "{out}");
    assert_eq!(
        out.matches("not valid UTF-8").count(),
        1,
        "said once: {out}"
    );
    assert!(!out.contains("stream did not contain"), "{out}");
    assert!(out.contains("save the file as UTF-8"), "{out}");
}

/// No message of the YAML library's API reaches the user: what is wrong in the file and
/// what to do, at file:line:column.
fn no_parser_internals(out: &str) {
    for internal in [
        "DuplicateKeyPolicy",
        "Options",
        "from_str",
        "Option<",
        "expected u32",
    ] {
        assert!(!out.contains(internal), "`{internal}` leaked: {out}");
    }
}

#[test]
fn a_duplicate_key_says_which_and_where() {
    let (code, out) = validate(&project(&format!("{GOOD}mode: mirror\n")));
    assert_eq!(code, 2, "{out}");
    no_parser_internals(&out);
    assert!(out.contains("syncs/people.yaml:7:"), "{out}");
    assert!(out.contains("`mode` is given twice"), "{out}");
    assert!(out.contains("keep one `mode:`"), "{out}");
}

#[test]
fn two_documents_in_one_file_say_what_to_do() {
    let (code, out) = validate(&project(&format!("{GOOD}---\n{GOOD}")));
    assert_eq!(code, 2, "{out}");
    no_parser_internals(&out);
    assert!(out.contains("syncs/people.yaml:"), "{out}");
    assert!(out.contains("more than one YAML document"), "{out}");
    assert!(out.contains("one sync per file"), "{out}");
}

#[test]
fn a_wrong_type_names_what_to_write() {
    let (code, out) = validate(&project(&format!("{GOOD}shards: many\n")));
    assert_eq!(code, 2, "{out}");
    no_parser_internals(&out);
    assert!(out.contains("syncs/people.yaml:7:"), "{out}");
    assert!(out.contains("a whole number"), "{out}");
}

#[test]
fn a_syntax_error_gives_its_position_once() {
    let (code, out) = validate(&project(&GOOD.replace(
        "mapping: { id: id, name: name }",
        "mapping: { id: id, name: name",
    )));
    assert_eq!(code, 2, "{out}");
    no_parser_internals(&out);
    assert!(out.contains("syncs/people.yaml:"), "{out}");
    assert!(
        !out.contains(" at line ") && !out.contains("line 5 column"),
        "the position is given once, as file:line:column: {out}"
    );
}

#[test]
fn alert_rules_out_of_range_are_reported_at_their_values() {
    let sync = format!(
        "{GOOD}alerts:\n  rejected_over_pct: 150\n  row_count_change: {{ over_pct: 20, runs: 0 }}\n  no_success_for_hours: -1\n  slack_webhook_url_env: \"not a name\"\n"
    );
    let (code, out) = validate(&project(&sync));
    assert_eq!(code, 2, "{out}");
    for (at, says) in [
        (
            "syncs/people.yaml:8:22",
            "alerts.rejected_over_pct is 150; it must be at most 100",
        ),
        (
            "syncs/people.yaml:9:43",
            "alerts.row_count_change.runs is 0; it must be between 1 and 100",
        ),
        (
            "syncs/people.yaml:10:25",
            "alerts.no_success_for_hours is -1; it must be a number above 0",
        ),
        (
            "syncs/people.yaml:11:26",
            "alerts.slack_webhook_url_env `not a name` is not a variable or secret name",
        ),
    ] {
        assert!(
            out.contains(&format!("{at}: {says}")),
            "{at} {says}:\n{out}"
        );
    }
    let (code, out) = validate(&project(&format!("{GOOD}alerts: {{ on_falure: true }}\n")));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown field `on_falure`"), "{out}");
    assert!(out.contains("did you mean `on_failure`?"), "{out}");
    let valid = format!(
        "{GOOD}alerts: {{ rejected_over_pct: 5, row_count_change: {{ over_pct: 50 }}, no_success_for_hours: 24, runtime_over_minutes: 30, slack_webhook_url_env: SLACK_WEBHOOK_URL }}\n"
    );
    let (code, out) = validate(&project(&valid));
    assert_eq!(code, 0, "{out}");
}
