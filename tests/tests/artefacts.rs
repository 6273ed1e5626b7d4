//! What runs leave on disk: a dry run (`retl plan`) keeps no extract parts and no plan
//! operations once it ends, however often it is repeated, and a later run still plans and
//! applies on its own.

use std::path::Path;

use retl_tests::fixtures::{people, people_project, set_model};

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
