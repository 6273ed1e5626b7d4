//! `retl validate` refuses `after_sync` triggers that would start syncs forever: a sync that
//! follows itself, and chains that come back to where they started, each reported at the
//! trigger (file:line:column) with what to do.

use retl_tests::Project;

/// A project whose syncs each follow the syncs listed beside them.
fn project(syncs: &[(&str, &[&str])]) -> Project {
    let p = Project::new();
    for (name, after) in syncs {
        let triggers: Vec<String> = after
            .iter()
            .map(|a| format!("{{ after_sync: {a} }}"))
            .collect();
        write_sync(&p, name, &triggers);
    }
    p
}

/// Writes `retl.yaml` and the sync `name` with these trigger mappings (one list item each,
/// from line 8 on).
fn write_sync(p: &Project, name: &str, triggers: &[String]) {
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  app_db: { type: postgres, url_env: APP_DB_URL }\n",
    );
    let triggers: String = triggers.iter().map(|t| format!("  - {t}\n")).collect();
    let triggers = if triggers.is_empty() {
        String::new()
    } else {
        format!("triggers:\n{triggers}")
    };
    p.write(
        &format!("syncs/{name}.yaml"),
        &format!(
            "name: {name}\nsource: {{ connection: warehouse, sql: \"select id from model\" }}\n\
             primary_key: id\ndestination: {{ connection: app_db, object: public.{name} }}\n\
             mapping: {{ id: id }}\nmode: upsert\n{triggers}"
        ),
    );
}

fn validate(p: &Project) -> (i32, String) {
    let out = p.retl(&["validate"]);
    (out.code, out.stderr + &out.stdout)
}

#[test]
fn a_sync_that_follows_itself_is_refused_at_its_trigger() {
    let (code, out) = validate(&project(&[
        ("people", &["orders", "people"]),
        ("orders", &[]),
    ]));
    assert_eq!(code, 2, "{out}");
    // The second trigger, line 9, column 5 (`- ` then the mapping).
    assert!(out.contains("syncs/people.yaml:9:5"), "{out}");
    assert!(
        out.contains("sync `people` cannot trigger itself (after_sync)"),
        "{out}"
    );
    assert!(
        out.contains("remove the trigger, or name another sync"),
        "{out}"
    );
    assert!(!out.contains("orders.yaml"), "orders is fine: {out}");
}

#[test]
fn a_cycle_of_after_sync_triggers_is_refused_at_each_trigger_on_it() {
    let (code, out) = validate(&project(&[
        ("a", &["c"]),
        ("b", &["a"]),
        ("c", &["b"]),
        ("d", &["a"]),
    ]));
    assert_eq!(code, 2, "{out}");
    for (file, cycle) in [
        ("syncs/a.yaml:8:5", "a -> c -> b -> a"),
        ("syncs/b.yaml:8:5", "b -> a -> c -> b"),
        ("syncs/c.yaml:8:5", "c -> b -> a -> c"),
    ] {
        assert!(out.contains(file), "{file}: {out}");
        assert!(
            out.contains(&format!("after_sync triggers form a cycle: {cycle}")),
            "{cycle}: {out}"
        );
    }
    assert!(out.contains("remove one trigger"), "{out}");
    assert!(
        !out.contains("syncs/d.yaml"),
        "d follows the cycle, it is not on it: {out}"
    );
}

#[test]
fn a_chain_without_a_cycle_validates() {
    let (code, out) = validate(&project(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 syncs"), "{out}");
}

#[test]
fn dbt_cloud_job_triggers_validate_and_wrong_ones_are_refused_at_the_trigger() {
    let p = Project::new();
    write_sync(&p, "people", &["{ dbt_cloud_job: 12345 }".into()]);
    let (code, out) = validate(&p);
    assert_eq!(code, 0, "{out}");

    write_sync(&p, "zero", &["{ dbt_cloud_job: 0 }".into()]);
    write_sync(
        &p,
        "both",
        &[
            "{ after_sync: people }".into(),
            "{ dbt_cloud_job: 7, after_sync: people }".into(),
        ],
    );
    let (code, out) = validate(&p);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("syncs/zero.yaml:8:5"), "{out}");
    assert!(
        out.contains("trigger dbt_cloud_job is 0; dbt Cloud job ids start at 1"),
        "{out}"
    );
    assert!(
        out.contains("syncs/both.yaml:9:5"),
        "the second trigger: {out}"
    );
    assert!(
        out.contains("a trigger has one kind: `after_sync`, `event_pattern` or `dbt_cloud_job`"),
        "{out}"
    );
    assert!(out.contains("write each as its own list item"), "{out}");
    assert!(!out.contains("people.yaml"), "people is fine: {out}");
}
