//! Contract suites of the ports, in the style of object_store's `integration.rs`: one suite
//! per port (`shared/src/ports/`), a set of async functions taking the port (or a factory of
//! it), that every backend runs. A backend's test file calls each function once, so adding a
//! backend is one call line per contract; what only one backend does (S3 multipart uploads,
//! DynamoDB item layouts, the SDK's error mapping) stays in that backend's own tests.

pub mod keyset;
pub mod notifier;
pub mod object_store;
pub mod runs;
pub mod secrets;
mod slow;

use retl_shared::config::{load_project, SyncDef};

use crate::Project;

pub use slow::SlowRuns;

/// A validated `people` sync named `name` with model SQL `sql`. Nothing is connected: the
/// stores only keep the definition.
pub fn sync_def(name: &str, sql: &str) -> SyncDef {
    let p = Project::new();
    p.write(
        "retl.yaml",
        "connections:\n  warehouse: { type: sqlite, path: warehouse.db }\n  \
         app_db: { type: postgres, url: \"postgres://postgres@127.0.0.1:5432/test\" }\n",
    );
    p.write(
        &format!("syncs/{name}.yaml"),
        &format!(
            "name: {name}\nsource: {{ connection: warehouse, sql: \"{sql}\" }}\nprimary_key: id\n\
             destination: {{ connection: app_db, object: people }}\n\
             mapping: {{ id: id, name: name }}\nmode: upsert\n"
        ),
    );
    let project = load_project(p.path()).unwrap_or_else(|e| panic!("{e}"));
    project.sync(name).unwrap().clone()
}
