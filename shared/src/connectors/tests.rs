//! The registry's contract with every connector: a folder named by its `type` with a docs
//! page whose YAML example parses, whose `docs()` is that page, and whose stated modes are the
//! ones its capabilities give.

use std::path::PathBuf;

use super::ConnectionConfig;
use crate::modes::supported_modes;

fn docs_page(ty: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/connectors")
        .join(ty)
        .join("README.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "connector `{ty}` needs its docs page {}: {e}",
            path.display()
        )
    });
    (path, text)
}

/// The connections of the page's YAML examples that are of type `ty`.
fn examples(ty: &str, page: &str) -> Vec<ConnectionConfig> {
    let mut out = Vec::new();
    for block in page.split("```yaml").skip(1) {
        let yaml = block.split("```").next().unwrap_or_default();
        let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(yaml) else {
            continue;
        };
        let Some(conns) = doc.get("connections").and_then(|c| c.as_object()) else {
            continue;
        };
        for (name, c) in conns {
            if c.get("type").and_then(|t| t.as_str()) == Some(ty) {
                let parsed: ConnectionConfig = serde_json::from_value(c.clone())
                    .unwrap_or_else(|e| panic!("{ty} docs example `{name}` does not parse: {e}"));
                out.push(parsed);
            }
        }
    }
    out
}

#[test]
fn every_connector_has_a_docs_page_with_a_working_example() {
    for ty in ConnectionConfig::TYPES {
        let (path, page) = docs_page(ty);
        assert!(
            page.contains(&format!("`type: {ty}`")),
            "{} must name its `type: {ty}` in its title",
            path.display()
        );
        let examples = examples(ty, &page);
        assert!(
            !examples.is_empty(),
            "{} needs a ```yaml example under `connections:`",
            path.display()
        );
        for c in &examples {
            assert_eq!(c.type_name(), *ty);
            assert_eq!(
                c.connector().docs(),
                page,
                "{ty}: docs() must be its README.md"
            );
            assert!(
                c.as_source().is_some() || c.as_destination().is_some(),
                "{ty} has no role"
            );
        }
    }
}

#[test]
fn destination_docs_state_the_modes_the_capabilities_give() {
    for ty in ConnectionConfig::TYPES {
        let (path, page) = docs_page(ty);
        let Some(dest) = examples(ty, &page)
            .into_iter()
            .find(|c| c.as_destination().is_some())
        else {
            continue;
        };
        let modes: Vec<&str> = supported_modes(&dest.as_destination().unwrap().capabilities())
            .iter()
            .map(|m| m.as_str())
            .collect();
        let line = format!("Modes: {}.", modes.join(", "));
        assert!(
            page.lines().any(|l| l.starts_with(&line)),
            "{} must say `{line}`",
            path.display()
        );
    }
}

#[test]
fn source_docs_have_a_type_mapping_table() {
    for ty in ConnectionConfig::TYPES {
        let (path, page) = docs_page(ty);
        if examples(ty, &page).iter().any(|c| c.as_source().is_some()) {
            assert!(
                page.contains("## As a source") && page.contains("| value |"),
                "{} must have an `## As a source` section with a type-mapping table",
                path.display()
            );
        }
    }
}
