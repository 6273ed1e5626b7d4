//! The sync modes, in one place: what each mode creates, updates and deletes, what it looks up
//! in the destination, what it skips and why, and what it needs from a destination.
//!
//! [`TABLE`] is the README's mode table as data; `README.md` is checked against
//! [`markdown_table`] by a test, so the two cannot drift. Planning ([`decide`],
//! [`decide_after_lookup`]), applying ([`write_op`], [`key_change`], [`already_applied`]),
//! validation and connector capabilities ([`supported_modes`], [`unsupported_reason`]) and the
//! safety rules ([`SyncMode::deletes_missing`]) all read the same rows. The tests next to this
//! file check every row and every cell, and the product documents' worked examples.

mod rules;
#[cfg(test)]
mod tests;

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use rules::{
    already_applied, decide, decide_after_lookup, key_change, write_op, Decision, Known, OpKind,
};

/// How model rows are applied to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Create new keys, update changed rows, never delete.
    Upsert,
    /// Create, update, and delete records that left the model.
    Mirror,
    /// Create keys never synced before; never update or delete.
    Append,
    /// Create keys the destination lacks; never update or delete.
    Insert,
    /// Update records that exist in the destination; skip the rest.
    Update,
    /// Only delete records whose keys left the model.
    DeleteOnly,
    /// Delete the destination records whose keys the model returns.
    Delete,
}

impl SyncMode {
    /// Every mode, in the order of the table.
    pub const ALL: &'static [SyncMode] = &[
        SyncMode::Upsert,
        SyncMode::Mirror,
        SyncMode::Append,
        SyncMode::Insert,
        SyncMode::Update,
        SyncMode::DeleteOnly,
        SyncMode::Delete,
    ];

    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        self.rules().name
    }

    /// This mode's row of [`TABLE`].
    pub fn rules(self) -> &'static Rules {
        TABLE
            .iter()
            .find(|r| r.mode == self)
            .expect("TABLE has a row for every mode")
    }

    /// Whether the mode deletes the records whose keys left the model (so an empty model
    /// would delete everything, and the empty-model protection applies).
    pub fn deletes_missing(self) -> bool {
        self.rules().deletes == Deletes::LeftModel
    }

    /// Whether the mode deletes destination records at all (mirror, delete_only, delete):
    /// deploying one needs a safety grant on AWS.
    pub fn deletes_records(self) -> bool {
        self.rules().deletes != Deletes::Never
    }

    /// Whether the mode can read an incremental model (only rows above a high watermark):
    /// only if it never deletes, since a row the filter leaves out is not a deletion and a
    /// model that lists deletions must be read whole.
    pub fn allows_incremental(self) -> bool {
        self.rules().deletes == Deletes::Never
    }

    /// Whether the mode ever creates records (a destination keyed by an id it assigns itself
    /// cannot create by that key).
    pub fn creates_records(self) -> bool {
        self.rules().creates != Creates::Never
    }
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which model rows become creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creates {
    /// None.
    Never,
    /// Rows whose key the key set does not hold.
    NewKeys,
    /// Rows whose key was never synced in any earlier run (the key set keeps keys that left
    /// the model).
    KeysNeverSynced,
    /// Rows whose key the destination lacks: keys unknown to the key set are looked up.
    KeysTheDestinationLacks,
}

/// Which model rows become updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updates {
    /// None: an existing record is never changed.
    Never,
    /// Rows whose mapped values differ from what was last delivered.
    ChangedRows,
    /// Changed rows whose record exists in the destination (looked up when unknown).
    ChangedRowsThatExist,
}

/// Which records become deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletes {
    /// None.
    Never,
    /// Records of the key set whose keys left the model (within the delete scope).
    LeftModel,
    /// The destination records whose keys the model returns.
    KeysInTheModel,
}

/// One row of the mode table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The mode.
    pub mode: SyncMode,
    /// YAML name.
    pub name: &'static str,
    /// What it creates.
    pub creates: Creates,
    /// What it updates.
    pub updates: Updates,
    /// What it deletes.
    pub deletes: Deletes,
    /// README cell: creates.
    pub creates_text: &'static str,
    /// README cell: updates.
    pub updates_text: &'static str,
    /// README cell: deletes.
    pub deletes_text: &'static str,
    /// README cell: what it looks up in the destination, and when.
    pub looks_up_text: &'static str,
    /// README cell: what it skips, and why.
    pub skips_text: &'static str,
}

/// The mode table: the README's table as data, one row per mode.
pub const TABLE: [Rules; 7] = [
    Rules {
        mode: SyncMode::Upsert,
        name: "upsert",
        creates: Creates::NewKeys,
        updates: Updates::ChangedRows,
        deletes: Deletes::Never,
        creates_text: "new keys",
        updates_text: "changed rows",
        deletes_text: "never",
        looks_up_text: "nothing",
        skips_text: "nothing",
    },
    Rules {
        mode: SyncMode::Mirror,
        name: "mirror",
        creates: Creates::NewKeys,
        updates: Updates::ChangedRows,
        deletes: Deletes::LeftModel,
        creates_text: "new keys",
        updates_text: "changed rows",
        deletes_text: "destination records whose keys left the model (first run included: the baseline lists them)",
        looks_up_text: "nothing",
        skips_text: "nothing",
    },
    Rules {
        mode: SyncMode::Append,
        name: "append",
        creates: Creates::KeysNeverSynced,
        updates: Updates::Never,
        deletes: Deletes::Never,
        creates_text: "keys never synced in any earlier run",
        updates_text: "never",
        deletes_text: "never",
        looks_up_text: "nothing",
        skips_text: "changed rows of keys already synced (never updated)",
    },
    Rules {
        mode: SyncMode::Insert,
        name: "insert",
        creates: Creates::KeysTheDestinationLacks,
        updates: Updates::Never,
        deletes: Deletes::Never,
        creates_text: "keys the destination lacks (looked up)",
        updates_text: "never",
        deletes_text: "never",
        looks_up_text: "keys unknown to the key set, when the destination can look up",
        skips_text: "keys the destination already holds",
    },
    Rules {
        mode: SyncMode::Update,
        name: "update",
        creates: Creates::Never,
        updates: Updates::ChangedRowsThatExist,
        deletes: Deletes::Never,
        creates_text: "never",
        updates_text: "rows whose key exists in the destination",
        deletes_text: "never",
        looks_up_text: "keys unknown to the key set",
        skips_text: "keys the destination lacks (counted)",
    },
    Rules {
        mode: SyncMode::DeleteOnly,
        name: "delete_only",
        creates: Creates::Never,
        updates: Updates::Never,
        deletes: Deletes::LeftModel,
        creates_text: "never",
        updates_text: "never",
        deletes_text: "keys that left the model, as mirror",
        looks_up_text: "nothing",
        skips_text: "nothing",
    },
    Rules {
        mode: SyncMode::Delete,
        name: "delete",
        creates: Creates::Never,
        updates: Updates::Never,
        deletes: Deletes::KeysInTheModel,
        creates_text: "never",
        updates_text: "never",
        deletes_text: "destination records whose keys the model returns (e.g. erasure requests)",
        looks_up_text: "keys unknown to the key set, when the destination can look up",
        skips_text: "keys absent from the destination, and keys already deleted",
    },
];

/// What a destination connector can do; the modes it supports follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Create-or-update by key.
    pub upsert: bool,
    /// Create only.
    pub create: bool,
    /// A create never changes a record that already exists: the destination skips it (or,
    /// for message destinations, nothing can be overwritten). Lets `insert` work without
    /// lookups.
    pub create_keeps_existing: bool,
    /// Update only.
    pub update: bool,
    /// Delete by key.
    pub delete: bool,
    /// Lists every record of the object (the baseline of a first run).
    pub list: bool,
    /// Looks records up by key.
    pub lookup: bool,
}

impl Capabilities {
    /// Everything: a database table or a CRM object with reads.
    pub const ALL: Capabilities = Capabilities {
        upsert: true,
        create: true,
        create_keeps_existing: true,
        update: true,
        delete: true,
        list: true,
        lookup: true,
    };
}

/// Why `mode` cannot run against a destination with `caps`, or `None` when it can.
pub fn unsupported_reason(mode: SyncMode, caps: &Capabilities) -> Option<&'static str> {
    let r = mode.rules();
    if r.creates == Creates::NewKeys && !caps.upsert {
        return Some("it creates and updates records, and the destination has no upsert");
    }
    if r.deletes != Deletes::Never && !caps.delete {
        return Some("it deletes records, and the destination cannot delete");
    }
    match r.creates {
        Creates::KeysNeverSynced if !caps.create => {
            return Some("it creates records, and the destination has no create-only write")
        }
        Creates::KeysTheDestinationLacks if !caps.create => {
            return Some("it creates records, and the destination has no create-only write")
        }
        Creates::KeysTheDestinationLacks if !caps.lookup && !caps.create_keeps_existing => {
            return Some(
                "it must know which keys the destination holds, and the destination can neither \
                 look records up nor refuse to overwrite them",
            )
        }
        _ => {}
    }
    if r.updates == Updates::ChangedRowsThatExist && !(caps.update && caps.lookup) {
        return Some(
            "it updates only records that exist, which needs an update-only write and lookups",
        );
    }
    None
}

/// The modes a destination with `caps` supports, in table order.
pub fn supported_modes(caps: &Capabilities) -> Vec<SyncMode> {
    SyncMode::ALL
        .iter()
        .copied()
        .filter(|m| unsupported_reason(*m, caps).is_none())
        .collect()
}

/// The README's mode table, rendered from [`TABLE`].
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| mode | creates | updates | deletes | looks up | skips |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in &TABLE {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            r.name, r.creates_text, r.updates_text, r.deletes_text, r.looks_up_text, r.skips_text
        ));
    }
    out
}
