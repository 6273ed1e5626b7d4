//! Where a run's artifacts live in the object store, and how key sets are named: the one
//! place these names are made.
//!
//! ```text
//! extract/<run>/part-00000.bin        model rows grouped by key-set shard (parts.rs layout)
//! extract/<run>/part-0003-00000.bin   the same, from the warehouse's export object 3
//! extract/<run>/export/...            the warehouse's export, removed once read
//! extract/<run>/manifest.json         ExtractManifest: parts, rows, columns
//! extract/<run>/shards.json           [{"shard": n}]: what the plan Map iterates
//! plan/<run>/context.json             PlanContext: key set, shards, resync reason
//! plan/<run>/shard-0003.json          ShardPlan of one shard
//! plan/<run>/ops-0003-000.jsonl       planned operations of shard 3, file 0
//! plan/<run>/manifest.json            PlanManifest: files, counts, safety verdict
//! plan/<run>/units.json               [{"unit": n}]: what the apply Map iterates
//! plan/<run>/deletes-preview.jsonl    the records a run would delete, with their values
//! apply/<run>/unit-00002.json         ApplyOutcome of one apply unit
//! rejected/<run>/<stage>.jsonl        the record log (dead letter queue)
//! ```
//!
//! The kind comes first so that storage lifecycle rules keep each kind for its own time
//! (extracts for days, record logs as long as the user says).

/// The object keys of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunKeys<'a> {
    run_id: &'a str,
}

impl<'a> RunKeys<'a> {
    /// The keys of run `run_id`.
    pub fn new(run_id: &'a str) -> Self {
        RunKeys { run_id }
    }

    fn prefix(&self, kind: &str) -> String {
        format!("{kind}/{}/", self.run_id)
    }

    /// Every extract object of the run.
    pub fn extract_prefix(&self) -> String {
        self.prefix("extract")
    }

    /// Extract part `n`.
    pub fn part(&self, n: usize) -> String {
        format!("{}part-{n:05}.bin", self.extract_prefix())
    }

    /// Part `n` of the export object `slice` (a warehouse's export, read in parallel).
    pub fn slice_part(&self, slice: usize, n: usize) -> String {
        format!("{}part-{slice:04}-{n:05}.bin", self.extract_prefix())
    }

    /// The folder a warehouse exports the model's results to.
    pub fn export_prefix(&self) -> String {
        format!("{}export/", self.extract_prefix())
    }

    /// The extract manifest.
    pub fn extract_manifest(&self) -> String {
        format!("{}manifest.json", self.extract_prefix())
    }

    /// The shard list the plan step fans out over.
    pub fn shard_list(&self) -> String {
        format!("{}shards.json", self.extract_prefix())
    }

    /// Every plan object of the run.
    pub fn plan_prefix(&self) -> String {
        self.prefix("plan")
    }

    /// The plan context.
    pub fn plan_context(&self) -> String {
        format!("{}context.json", self.plan_prefix())
    }

    /// The plan of one shard.
    pub fn shard_plan(&self, shard: u32) -> String {
        format!("{}shard-{shard:04}.json", self.plan_prefix())
    }

    /// Plan file `n` of `shard`.
    pub fn plan_file(&self, shard: u32, n: usize) -> String {
        format!("{}{shard:04}-{n:03}.jsonl", self.plan_ops_prefix())
    }

    /// Every plan file (the operations; the bulk of a plan).
    pub fn plan_ops_prefix(&self) -> String {
        format!("{}ops-", self.plan_prefix())
    }

    /// The plan manifest.
    pub fn plan_manifest(&self) -> String {
        format!("{}manifest.json", self.plan_prefix())
    }

    /// The unit list the apply step fans out over.
    pub fn unit_list(&self) -> String {
        format!("{}units.json", self.plan_prefix())
    }

    /// The deletion preview.
    pub fn deletion_preview(&self) -> String {
        format!("{}deletes-preview.jsonl", self.plan_prefix())
    }

    /// The approval request's text (what the approvers read).
    pub fn approval_message(&self) -> String {
        format!("{}approval-message.txt", self.plan_prefix())
    }

    /// Every apply object of the run.
    pub fn apply_prefix(&self) -> String {
        self.prefix("apply")
    }

    /// The outcome of apply unit `unit`.
    pub fn unit_result(&self, unit: usize) -> String {
        format!("{}unit-{unit:05}.json", self.apply_prefix())
    }

    /// The record log.
    pub fn record_log_prefix(&self) -> String {
        self.prefix("rejected")
    }

    /// The record log of one stage (`extract`, `plan-0003`, `apply-ops-0003-000`).
    pub fn record_log(&self, stage: &str) -> String {
        format!("{}{stage}.jsonl", self.record_log_prefix())
    }
}

/// The shard a plan file belongs to, from its name.
pub fn shard_of_plan_file(key: &str) -> Option<u32> {
    let name = key.rsplit('/').next()?;
    name.strip_prefix("ops-")?.split('-').next()?.parse().ok()
}

/// The stem of a plan file's name (`ops-0003-000`), for its record log.
pub fn plan_file_stem(key: &str) -> &str {
    key.rsplit('/')
        .next()
        .unwrap_or(key)
        .trim_end_matches(".jsonl")
}

/// The key-set namespace of sync `sync` for identity fingerprint `identity` (key columns and
/// destination object): a change of either starts a fresh key set.
pub fn keyset_name(sync: &str, identity: &str) -> String {
    format!("{sync}@{identity}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_files_carry_their_shard() {
        let k = RunKeys::new("r");
        assert_eq!(k.plan_file(7, 1), "plan/r/ops-0007-001.jsonl");
        assert_eq!(shard_of_plan_file(&k.plan_file(7, 1)), Some(7));
        assert_eq!(shard_of_plan_file(&k.plan_manifest()), None);
        assert_eq!(plan_file_stem(&k.plan_file(3, 0)), "ops-0003-000");
    }

    #[test]
    fn each_kind_has_its_own_prefix() {
        let k = RunKeys::new("r1");
        assert!(k.part(0).starts_with(&k.extract_prefix()));
        assert!(k.unit_result(2).starts_with("apply/r1/"));
        assert_eq!(k.record_log("extract"), "rejected/r1/extract.jsonl");
    }
}
