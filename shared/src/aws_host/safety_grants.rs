//! Who may make a sync delete (seed 004, "restrict who can edit sync mode"): a sync whose mode
//! deletes records (mirror, delete_only, delete) runs only under a safety grant, an item of
//! the safety-grants table that holds the mode and the loosest delete thresholds allowed, and
//! who granted them. The template's `DeployerPolicy` lets deployers read that table and
//! `SafetyDeployerPolicy` alone lets them write it, so IAM, not the CLI, decides who may
//! deploy a destructive mode or raise its thresholds: a definition written straight into the
//! config table with the deployer policy alone is refused by every function that loads it.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::adapters::aws::error::{is_access_denied, store_error};
use crate::config::SyncDef;
use crate::engine::EngineError;
use crate::modes::SyncMode;
use crate::ports::StoreError;

/// What a safety deployer allowed for one sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyGrant {
    /// The sync.
    pub sync: String,
    /// The deleting mode allowed.
    pub mode: SyncMode,
    /// The highest `delete_threshold_pct` allowed.
    pub delete_threshold_pct: f64,
    /// The highest `max_deletes` allowed; `None` allows no count limit at all.
    pub max_deletes: Option<u64>,
    /// The IAM ARN that wrote the grant (STS GetCallerIdentity of the deployer).
    pub granted_by: String,
    /// When (RFC 3339).
    pub granted_at: String,
}

impl SafetyGrant {
    /// The grant that allows exactly `def`'s mode and thresholds.
    pub fn for_def(def: &SyncDef, granted_by: &str) -> Self {
        SafetyGrant {
            sync: def.name.clone(),
            mode: def.mode,
            delete_threshold_pct: def.safety.delete_threshold_pct,
            max_deletes: def.safety.max_deletes,
            granted_by: granted_by.to_string(),
            granted_at: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// Why `def` is not covered: another mode, or a threshold looser than the grant's.
    /// Tighter thresholds are covered: they stop for approval sooner.
    pub fn shortfall(&self, def: &SyncDef) -> Option<String> {
        if def.mode != self.mode {
            return Some(format!(
                "its mode is {}, and the grant allows {}",
                def.mode, self.mode
            ));
        }
        if def.safety.delete_threshold_pct > self.delete_threshold_pct {
            return Some(format!(
                "its delete_threshold_pct is {}, above the {} granted",
                def.safety.delete_threshold_pct, self.delete_threshold_pct
            ));
        }
        match (def.safety.max_deletes, self.max_deletes) {
            (None, Some(granted)) => Some(format!(
                "it sets no max_deletes, and the grant allows at most {granted}"
            )),
            (Some(asked), Some(granted)) if asked > granted => Some(format!(
                "its max_deletes is {asked}, above the {granted} granted"
            )),
            _ => None,
        }
    }
}

/// Whether `def` runs only under a safety grant: its mode deletes records.
pub fn needs_grant(def: &SyncDef) -> bool {
    def.mode.deletes_records()
}

/// The refusal of a sync that `grant` does not cover, or nothing when it needs none or is
/// covered.
pub fn check(def: &SyncDef, grant: Option<&SafetyGrant>) -> Result<(), EngineError> {
    if !needs_grant(def) {
        return Ok(());
    }
    let what = match grant {
        None => format!(
            "its mode {} deletes records and it has no safety grant",
            def.mode
        ),
        Some(g) => match g.shortfall(def) {
            None => return Ok(()),
            Some(why) => format!("{why} (granted by {} at {})", g.granted_by, g.granted_at),
        },
    };
    Err(EngineError::SafetyNotGranted {
        sync: def.name.clone(),
        what,
    })
}

/// The safety-grants table (`sync` = sync name, `body` = the grant as JSON).
#[derive(Debug, Clone)]
pub struct SafetyGrants {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl SafetyGrants {
    /// The table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        SafetyGrants {
            client,
            table: table.into(),
        }
    }

    /// The grant of `sync`, if any.
    pub async fn get(&self, sync: &str) -> Result<Option<SafetyGrant>, StoreError> {
        let what = format!("read the safety grant of sync {sync}");
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("sync", AttributeValue::S(sync.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&what, e))?;
        match out.item().and_then(|i| i.get("body")) {
            None => Ok(None),
            Some(AttributeValue::S(body)) => serde_json::from_str(body)
                .map(Some)
                .map_err(|e| StoreError::Other(format!("{what}: unreadable grant: {e}"))),
            Some(_) => Err(StoreError::Other(format!("{what}: its body is not text"))),
        }
    }

    /// Writes `grant`; refused by IAM unless the caller has the stack's
    /// `SafetyDeployerPolicy`, and said so with what to do.
    pub async fn put(&self, grant: &SafetyGrant, stack: &str) -> Result<(), EngineError> {
        let body = serde_json::to_string(grant).map_err(|e| StoreError::Other(e.to_string()))?;
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("sync", AttributeValue::S(grant.sync.clone()))
            .item("body", AttributeValue::S(body))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_access_denied(&e) => Err(EngineError::SafetyNotGranted {
                sync: grant.sync.clone(),
                what: format!(
                    "deploying mode {} (it deletes records) or looser delete thresholds \
                         needs the stack's safety deployer policy ({stack}-safety-deployer), \
                         which {} lacks; ask someone who has it to deploy this sync",
                    grant.mode, grant.granted_by
                ),
            }),
            Err(e) => Err(store_error(
                &format!("write the safety grant of sync {}", grant.sync),
                e,
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SafetyConfig;

    fn def(mode: SyncMode, pct: f64, max: Option<u64>) -> SyncDef {
        let safety = SafetyConfig {
            delete_threshold_pct: pct,
            max_deletes: max,
            ..SafetyConfig::default()
        };
        SyncDef::for_tests(mode, safety)
    }

    #[test]
    fn only_deleting_modes_need_a_grant() {
        for mode in SyncMode::ALL {
            let needs = needs_grant(&def(*mode, 50.0, None));
            let deletes = matches!(
                mode,
                SyncMode::Mirror | SyncMode::DeleteOnly | SyncMode::Delete
            );
            assert_eq!(needs, deletes, "{mode}");
        }
        assert!(check(&def(SyncMode::Upsert, 100.0, None), None).is_ok());
    }

    #[test]
    fn a_grant_covers_its_mode_and_tighter_thresholds_only() {
        let granted = def(SyncMode::Mirror, 50.0, Some(1000));
        let g = SafetyGrant::for_def(&granted, "arn:aws:iam::1:user/lead");
        assert!(check(&granted, Some(&g)).is_ok());
        assert!(check(&def(SyncMode::Mirror, 20.0, Some(10)), Some(&g)).is_ok());
        for (looser, says) in [
            (
                def(SyncMode::Mirror, 80.0, Some(1000)),
                "delete_threshold_pct is 80",
            ),
            (
                def(SyncMode::Mirror, 50.0, Some(5000)),
                "max_deletes is 5000",
            ),
            (def(SyncMode::Mirror, 50.0, None), "sets no max_deletes"),
            (def(SyncMode::Delete, 50.0, Some(1000)), "mode is delete"),
        ] {
            let err = check(&looser, Some(&g)).expect_err(says).to_string();
            assert!(
                err.contains(says) && err.contains("arn:aws:iam::1:user/lead"),
                "{err}"
            );
        }
        let none = check(&granted, None).expect_err("no grant").to_string();
        assert!(none.contains("no safety grant"), "{none}");
    }
}
