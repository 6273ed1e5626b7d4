//! What runs leave on disk: a dry run (`retl plan`) keeps no extract parts and no plan
//! operations once it ends, however often it is repeated, and a later run still plans and
//! applies on its own; finished runs' artefacts go after the project's retention
//! (`state.retention`), a run awaiting approval keeps its plan.

use std::path::Path;

use retl_tests::fixtures::{people, people_project, people_sync, set_model};

/// Files under `dir` whose name starts with one of `prefixes`.
fn files_named(dir: &Path, prefixes: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(files_named(&path, prefixes));
        } else {
            let name = e.file_name().to_string_lossy().to_string();
            if prefixes.iter().any(|p| name.starts_with(p)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn dry_runs_leave_no_parts_or_plan_operations() {
    let (p, pg) = people_project("artefacts", "mirror", &[], "").await;
    let rows: Vec<(i64, String)> = (1..=1000).map(|i| (i, format!("person {i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    for _ in 0..3 {
        let (code, v) = p.retl_json(&["plan", "people"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["creates"], 1000, "{v}");
    }
    let state = p.path().join(".retl");
    let left = files_named(&state, &["ops-", "part-"]);
    assert!(left.is_empty(), "dry runs left: {left:?}");
    let (_, runs) = p.retl_json(&["runs", "people"]);
    let planned = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let (code, shown) = p.retl_json(&["runs", "show", &planned]);
    assert_eq!(code, 0, "a dry run can still be shown: {shown}");
    assert_eq!(shown["planned"]["creates"], 1000, "{shown}");

    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!((code, v["creates"].clone()), (0, 1000.into()), "{v}");
    assert_eq!(people(&pg).await.as_array().unwrap().len(), 1000);
}

/// Run folders (`<kind>/<run>/`) under the state folder's objects.
fn run_folders(state: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["extract", "plan", "apply", "rejected"] {
        if let Ok(entries) = std::fs::read_dir(state.join("objects").join(kind)) {
            for e in entries.flatten() {
                found.push(format!("{kind}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn finished_runs_artefacts_are_pruned_after_their_retention() {
    let (p, _pg) = people_project("retention", "upsert", &[], "").await;
    set_model(&p, &[(1, "Alice"), (2, "Bob")]);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!((code, v["creates"].clone()), (0, 2.into()), "{v}");
    let state = p.path().join(".retl");
    let kept = run_folders(&state);
    assert!(
        kept.iter().any(|f| f.starts_with("plan/")),
        "the default retention keeps a finished run's plan for 30 days: {kept:?}"
    );

    // A retention of zero days: every finished run's artefacts go at the end of the next run.
    let yaml = std::fs::read_to_string(p.path().join("retl.yaml")).unwrap();
    p.write(
        "retl.yaml",
        &format!(
            "{yaml}state:\n  retention: {{ extract_days: 0, plan_days: 0, record_log_days: 0 }}\n"
        ),
    );
    set_model(&p, &[(1, "Alice"), (2, "Bobby"), (3, "Carol")]);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (v["creates"].clone(), v["updates"].clone()),
        (1.into(), 1.into()),
        "{v}"
    );
    let left = run_folders(&state);
    assert!(
        left.is_empty(),
        "finished runs past retention left: {left:?}"
    );
    // Run records and the key set are not artefacts: history and diffing are intact.
    let (_, runs) = p.retl_json(&["runs", "people"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!((code, v["unchanged"].clone()), (0, 3.into()), "{v}");
}

#[tokio::test]
async fn a_run_awaiting_approval_keeps_its_plan_whatever_the_retention() {
    let (p, pg) = people_project("retention_wait", "mirror", &[], "").await;
    let yaml = std::fs::read_to_string(p.path().join("retl.yaml")).unwrap();
    p.write(
        "retl.yaml",
        &format!(
            "{yaml}state:\n  retention: {{ extract_days: 0, plan_days: 0, record_log_days: 0 }}\n"
        ),
    );
    // A second sync of the same model, whose runs end (and prune) while the first waits.
    pg.exec("CREATE TABLE copy (id integer PRIMARY KEY, name text NOT NULL)")
        .await;
    let copy = people_sync(&pg, "upsert", "")
        .replace("name: people", "name: copy")
        .replace(&pg.table("people"), &pg.table("copy"));
    p.write("syncs/copy.yaml", &copy);
    let rows: Vec<(i64, String)> = (1..=10).map(|i| (i, format!("person {i}"))).collect();
    let refs: Vec<(i64, &str)> = rows.iter().map(|(i, n)| (*i, n.as_str())).collect();
    set_model(&p, &refs);
    let (code, v) = p.retl_json(&["run", "people"]);
    assert_eq!(code, 0, "{v}");
    set_model(&p, &refs[..2]);
    let (code, waiting) = p.retl_json(&["run", "people"]);
    assert_eq!(
        (code, waiting["status"].clone()),
        (3, "awaiting_approval".into()),
        "{waiting}"
    );
    let run_id = waiting["run_id"].as_str().unwrap().to_string();

    let (code, v) = p.retl_json(&["run", "copy"]);
    assert_eq!(code, 0, "{v}");
    let left = run_folders(&p.path().join(".retl"));
    assert!(
        left.contains(&format!("plan/{run_id}")),
        "the waiting run's plan is kept: {left:?}"
    );
    assert!(
        !left
            .iter()
            .any(|f| f.ends_with(v["run_id"].as_str().unwrap())),
        "the finished run's artefacts went: {left:?}"
    );
    let (code, v) = p.retl_json(&["approve", &run_id, "--reason", "expected", "--by", "ops"]);
    assert_eq!((code, v["deletes"].clone()), (0, 8.into()), "{v}");
    assert_eq!(people(&pg).await.as_array().unwrap().len(), 2);
}
