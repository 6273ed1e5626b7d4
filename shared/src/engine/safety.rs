//! Safety rules, enforced on the plan before anything is written.

use serde::{Deserialize, Serialize};

use crate::config::SyncDef;
use crate::ports::Counts;

/// What the safety rules decided about a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum SafetyVerdict {
    /// Apply it.
    Proceed,
    /// Stop before writing and wait for a person's approval.
    NeedsApproval {
        /// Why.
        reason: String,
    },
    /// Stop before writing; nothing to approve (the model looks broken).
    Abort {
        /// Why.
        reason: String,
    },
}

/// Applies the rules: empty-result protection for modes that delete missing keys, the delete
/// threshold (a share of the existing records) and the absolute `max_deletes`.
pub fn evaluate(sync: &SyncDef, planned: &Counts, existing: u64, valid_rows: u64) -> SafetyVerdict {
    if sync.mode.deletes_missing() && valid_rows == 0 {
        let why = if planned.rows == 0 {
            "the model returned 0 rows".to_string()
        } else {
            format!("all {} rows of the model were rejected", planned.rows)
        };
        return SafetyVerdict::Abort {
            reason: format!(
                "{why}; mode {} would delete all {existing} records of the destination. \
                 Aborted before writing anything: check the model query and the warehouse",
                sync.mode
            ),
        };
    }
    let deletes = planned.deletes;
    if deletes == 0 {
        return SafetyVerdict::Proceed;
    }
    let threshold = sync.safety.delete_threshold_pct;
    if existing > 0 {
        let pct = deletes as f64 * 100.0 / existing as f64;
        if pct > threshold {
            return SafetyVerdict::NeedsApproval {
                reason: format!(
                    "{deletes} deletes are {pct:.1}% of the {existing} existing records, above the \
                     {threshold}% delete threshold"
                ),
            };
        }
    }
    if let Some(max) = sync.safety.max_deletes {
        if deletes > max {
            return SafetyVerdict::NeedsApproval {
                reason: format!("{deletes} deletes are more than max_deletes ({max})"),
            };
        }
    }
    SafetyVerdict::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SafetyConfig, SyncMode};

    fn sync(mode: SyncMode, max: Option<u64>) -> SyncDef {
        let safety = SafetyConfig {
            max_deletes: max,
            ..SafetyConfig::default()
        };
        SyncDef::for_tests(mode, safety)
    }

    fn planned(rows: u64, deletes: u64) -> Counts {
        Counts {
            rows,
            deletes,
            ..Counts::default()
        }
    }

    #[test]
    fn empty_model_aborts_mirror_and_delete_only_but_not_upsert() {
        for mode in [SyncMode::Mirror, SyncMode::DeleteOnly] {
            assert!(matches!(
                evaluate(&sync(mode, None), &planned(0, 10), 10, 0),
                SafetyVerdict::Abort { .. }
            ));
        }
        assert_eq!(
            evaluate(&sync(SyncMode::Upsert, None), &planned(0, 0), 10, 0),
            SafetyVerdict::Proceed
        );
    }

    #[test]
    fn threshold_is_a_share_of_existing_records() {
        let s = sync(SyncMode::Mirror, None);
        assert_eq!(evaluate(&s, &planned(5, 5), 10, 5), SafetyVerdict::Proceed);
        assert!(matches!(
            evaluate(&s, &planned(4, 6), 10, 4),
            SafetyVerdict::NeedsApproval { .. }
        ));
    }

    #[test]
    fn max_deletes_is_absolute() {
        let s = sync(SyncMode::Mirror, Some(3));
        assert!(matches!(
            evaluate(&s, &planned(100, 4), 1000, 100),
            SafetyVerdict::NeedsApproval { .. }
        ));
        assert_eq!(
            evaluate(&s, &planned(100, 3), 1000, 100),
            SafetyVerdict::Proceed
        );
    }
}
