//! The fault campaign's YAML mutations (issue 8): the example project's files, mutated at
//! random (lines deleted, repeated or swapped, scalars changed, wrong types, truncation,
//! invalid UTF-8, tabs, indentation, indicators, misspelt keys), each checked by
//! `retl validate`. No mutant may panic, and every problem reported must say where it is
//! (a line and column, or "line N" in its message).

use std::path::Path;

use retl_tests::campaign::mutate::{mutant, Mutation};
use retl_tests::campaign::{Campaign, Trial, TrialResult};
use retl_tests::{ensure, Project};
use serde_json::Value;

/// Mutants checked (each one `retl validate`).
const MUTANTS: u64 = 300;
const PARALLEL: usize = 4;

/// The example project's files that a user edits.
const FILES: [&str; 2] = ["retl.yaml", "syncs/contacts.yaml"];

fn example(rel: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("reading the example {rel}: {e}"))
}

/// Whether a diagnostic says where the problem is.
fn positioned(d: &Value) -> bool {
    let line = d["line"].as_u64().unwrap_or(0);
    let message = d["message"].as_str().unwrap_or_default();
    line > 0 || has_line_number(message)
}

/// "line 12" (any case) somewhere in the text.
fn has_line_number(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("line ").any(|(i, m)| {
        lower[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

async fn trial(mut trial: Trial) -> TrialResult {
    let p = Project::new();
    for rel in FILES {
        let path = p.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        std::fs::write(&path, example(rel)).expect("write");
    }
    let target = if trial.rng.chance(70) {
        FILES[1]
    } else {
        FILES[0]
    };
    let (bytes, kinds) = mutant(&example(target), &mut trial.rng);
    std::fs::write(p.path().join(target), &bytes).expect("write the mutant");
    let what = format!(
        "{target} after {kinds:?}:\n---\n{}\n---",
        String::from_utf8_lossy(&bytes)
    );
    let out = p.run(&["--json", "validate"]).await;
    ensure!(
        out.code != 101 && !out.stderr.contains("panicked"),
        "{what}\nretl validate panicked (exit {}): {}",
        out.code,
        out.stderr
    );
    let mut tags: Vec<String> = kinds.iter().map(|k| format!("{k:?}")).collect();
    if out.code == 0 {
        tags.push("still valid".into());
        return Ok(tags);
    }
    ensure!(
        out.code == 2,
        "{what}\nan invalid config is exit 2, got {}: {}{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    let diagnostics = v["errors"].as_array().cloned().unwrap_or_default();
    ensure!(
        !diagnostics.is_empty(),
        "{what}\nan invalid config is reported as positioned diagnostics: {v}"
    );
    let unplaced: Vec<&Value> = diagnostics.iter().filter(|d| !positioned(d)).collect();
    ensure!(
        unplaced.is_empty(),
        "{what}\nproblems reported without a position: {unplaced:?}"
    );
    tags.push("refused with a position".into());
    Ok(tags)
}

#[tokio::test(flavor = "multi_thread")]
async fn mutated_sync_files_never_panic_and_every_error_has_a_position() {
    let campaign = Campaign::new("mutations");
    let summary = campaign.run(MUTANTS, PARALLEL, trial).await;
    for kind in Mutation::ALL {
        assert!(
            summary.tagged(&format!("{kind:?}")) > 0,
            "no mutant used {kind:?}"
        );
    }
    assert!(
        summary.tagged("refused with a position") * 2 > summary.trials,
        "most mutants should be refused: {summary:?}"
    );
}

#[test]
fn line_numbers_in_messages_count_as_positions() {
    assert!(has_line_number("invalid UTF-8 at line 3, column 7"));
    assert!(!has_line_number("no position here (line unknown)"));
}
