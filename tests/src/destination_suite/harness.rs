//! One scenario of a check: a project syncing the SQLite `model` into one object of the
//! destination under test, the connector's capabilities read from its registry entry, and the
//! `retl` runs with what they reported.

use retl_shared::config::ConnectionConfig;
use retl_shared::modes::{supported_modes, Capabilities, SyncMode};
use retl_shared::ports::DeliveryDefaults;
use serde_json::Value;

use super::DestinationUnderTest;
use crate::fixtures::set_model;
use crate::{Project, RetlOutput};

/// The sync every scenario runs.
pub const SYNC: &str = "people";

/// The connector behind `d`'s connection, as the registry opens it.
fn connector(d: &dyn DestinationUnderTest) -> ConnectionConfig {
    let yaml = format!("{{ {} }}", d.connection(""));
    serde_saphyr::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{}: the connection does not parse ({e}): {yaml}", d.name()))
}

/// The capabilities `d`'s connector declares.
pub fn capabilities(d: &dyn DestinationUnderTest) -> Capabilities {
    connector(d)
        .as_destination()
        .unwrap_or_else(|| panic!("{} is not a destination connector", d.name()))
        .capabilities()
}

/// The modes `d`'s connector supports: derived from its capabilities, as `retl validate` does.
pub fn modes(d: &dyn DestinationUnderTest) -> Vec<SyncMode> {
    supported_modes(&capabilities(d))
}

/// The delivery defaults `d`'s connector documents for a run of `planned` records.
pub fn defaults(d: &dyn DestinationUnderTest, planned: u64) -> DeliveryDefaults {
    connector(d)
        .as_destination()
        .unwrap_or_else(|| panic!("{} is not a destination connector", d.name()))
        .delivery_defaults_for(planned)
}

/// A project syncing `model` into one object of the destination under test.
pub struct Harness<'a> {
    /// The destination.
    pub d: &'a dyn DestinationUnderTest,
    /// The project.
    pub project: Project,
    /// The destination object.
    pub object: String,
}

impl<'a> Harness<'a> {
    /// A project over a fresh object labelled `label`, with `delivery` settings.
    pub async fn new(d: &'a dyn DestinationUnderTest, label: &str, delivery: &str) -> Self {
        let object = d.fresh_object(label).await;
        let mut project = Project::new();
        for (k, v) in d.env() {
            project.env(&k, &v);
        }
        project.write(
            "retl.yaml",
            &format!(
                "connections:\n  warehouse: {{ type: sqlite, path: warehouse.db }}\n  dest: {{ {} }}\n",
                d.connection(delivery)
            ),
        );
        let h = Harness { d, project, object };
        h.set_mode(SyncMode::Upsert);
        h
    }

    /// Rewrites the sync with `mode` (the key set stays: the mode is not part of a record's
    /// identity). The delete threshold is lifted: the worked example deletes two of three
    /// records in `delete` mode, and the safety rules have their own tests.
    pub fn set_mode(&self, mode: SyncMode) {
        let shape = self.d.shape();
        self.project.write(
            &format!("syncs/{SYNC}.yaml"),
            &format!(
                "name: {SYNC}\nsource: {{ connection: warehouse, sql: \"{}\" }}\n\
                 primary_key: {}\ndestination: {{ connection: dest, object: \"{}\" }}\n\
                 mapping: {}\nmode: {mode}\n\
                 safety: {{ delete_threshold_pct: 100 }}\n",
                shape.sql, shape.primary_key, self.object, shape.mapping
            ),
        );
    }

    /// Replaces the model's rows.
    pub fn model(&self, rows: &[(i64, &str)]) {
        set_model(&self.project, rows);
    }

    /// `retl --json run people`, with its exit code.
    pub async fn run(&self) -> (i32, Value) {
        self.project.run_json(&["run", SYNC]).await
    }

    /// A run that must succeed.
    pub async fn run_ok(&self, what: &str) -> Value {
        let (code, v) = self.run().await;
        assert_eq!(code, 0, "{}: {what}: the run failed: {v}", self.d.name());
        assert_eq!(v["status"], "succeeded", "{}: {what}: {v}", self.d.name());
        v
    }

    /// `retl` with `args` and extra environment variables.
    pub async fn retl_env(&self, args: &[&str], env: &[(&str, &str)]) -> RetlOutput {
        let mut c = self.project.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        tokio::process::Command::from(c)
            .output()
            .await
            .expect("retl runs")
            .into()
    }

    /// The entries `retl errors RUN` lists for run `v`.
    pub async fn errors(&self, v: &Value) -> Vec<Value> {
        let run = v["run_id"].as_str().expect("a run id");
        let (code, e) = self.project.run_json(&["errors", run]).await;
        assert_eq!(code, 0, "{}: retl errors failed: {e}", self.d.name());
        e["errors"].as_array().cloned().unwrap_or_default()
    }

    /// Puts `records` in the object before the scenario: written straight into it when the
    /// destination lists its records (the first run's baseline finds them), else delivered by
    /// an `upsert` run (the key set then knows them as the baseline would). Leaves the sync in
    /// upsert mode and the log empty.
    pub async fn before(&self, records: &[(i64, &str)]) {
        let seeded = capabilities(self.d).list && self.d.seed(&self.object, records).await;
        if !seeded {
            self.model(records);
            let v = self
                .run_ok("creating the records the scenario starts from")
                .await;
            assert_eq!(v["creates"], records.len(), "{}: {v}", self.d.name());
        }
        assert_eq!(
            self.d.holds(&self.object).await,
            held(self.d, records),
            "{}: the records the scenario starts from",
            self.d.name()
        );
        self.d.clear_log().await;
    }
}

/// `records` as destination `d` holds them.
pub fn held(d: &dyn DestinationUnderTest, records: &[(i64, &str)]) -> super::Held {
    records.iter().map(|(i, n)| (*i, d.stored(n))).collect()
}

/// The counts of a run summary, by name.
pub fn count(v: &Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} missing in {v}"))
}
