//! Every row and every cell of the mode table, and the product documents' worked examples
//! (Alice, Bob*, Carol, Dave) played through the same decisions the planner and apply use.

use std::collections::BTreeMap;

use super::*;
use crate::ports::{KeyChange, KeyEntry, KeyOrigin, KeyState, RecordOutcome, WriteOp};

use Decision::{NeedsLookup as Lookup, Op, Skipped as Skip, Unchanged as Same};
use OpKind::{Create as C, Delete as D, Update as U};

/// One row: the decision for each situation a model key can be in.
struct Row {
    mode: SyncMode,
    /// Key unknown to the key set, the destination cannot look up.
    new_key: Decision,
    /// Key unknown to the key set, the destination can look up.
    new_key_lookup: Decision,
    /// After that lookup: the destination holds the key (with other values) / lacks it.
    found: Decision,
    not_found: Decision,
    /// Key present with the same values; with changed values; same values in a full resync.
    same: Decision,
    changed: Decision,
    same_resync: Decision,
    /// Key that `delete` mode deleted earlier.
    deleted: Decision,
    /// Whether keys that left the model are deleted.
    deletes_missing: bool,
}

const ROWS: [Row; 7] = [
    Row {
        mode: SyncMode::Upsert,
        new_key: Op(C),
        new_key_lookup: Op(C),
        found: Skip,
        not_found: Skip,
        same: Same,
        changed: Op(U),
        same_resync: Op(U),
        deleted: Op(C),
        deletes_missing: false,
    },
    Row {
        mode: SyncMode::Mirror,
        new_key: Op(C),
        new_key_lookup: Op(C),
        found: Skip,
        not_found: Skip,
        same: Same,
        changed: Op(U),
        same_resync: Op(U),
        deleted: Op(C),
        deletes_missing: true,
    },
    Row {
        mode: SyncMode::Append,
        new_key: Op(C),
        new_key_lookup: Op(C),
        found: Skip,
        not_found: Skip,
        same: Same,
        changed: Skip,
        same_resync: Same,
        deleted: Op(C),
        deletes_missing: false,
    },
    Row {
        mode: SyncMode::Insert,
        new_key: Op(C),
        new_key_lookup: Lookup,
        found: Skip,
        not_found: Op(C),
        same: Same,
        changed: Skip,
        same_resync: Same,
        deleted: Lookup,
        deletes_missing: false,
    },
    Row {
        mode: SyncMode::Update,
        new_key: Skip,
        new_key_lookup: Lookup,
        found: Op(U),
        not_found: Skip,
        same: Same,
        changed: Op(U),
        same_resync: Op(U),
        deleted: Lookup,
        deletes_missing: false,
    },
    Row {
        mode: SyncMode::DeleteOnly,
        new_key: Same,
        new_key_lookup: Same,
        found: Skip,
        not_found: Skip,
        same: Same,
        changed: Same,
        same_resync: Same,
        deleted: Same,
        deletes_missing: true,
    },
    Row {
        mode: SyncMode::Delete,
        new_key: Op(D),
        new_key_lookup: Lookup,
        found: Op(D),
        not_found: Skip,
        same: Op(D),
        changed: Op(D),
        same_resync: Op(D),
        deleted: Same,
        deletes_missing: false,
    },
];

#[test]
fn every_mode_has_one_row_in_table_order() {
    let modes: Vec<SyncMode> = TABLE.iter().map(|r| r.mode).collect();
    assert_eq!(modes, SyncMode::ALL);
    let rows: Vec<SyncMode> = ROWS.iter().map(|r| r.mode).collect();
    assert_eq!(rows, SyncMode::ALL);
}

#[test]
fn names_are_the_yaml_names() {
    for r in &TABLE {
        let yaml = serde_json::to_value(r.mode).unwrap();
        assert_eq!(yaml, r.name, "{:?}", r.mode);
        let back: SyncMode = serde_json::from_value(yaml).unwrap();
        assert_eq!(back, r.mode);
    }
}

/// A row's cells, each checked on its own so a failure names the cell.
#[test]
fn each_cell_of_each_row() {
    for row in &ROWS {
        let m = row.mode;
        let cells: [(&str, Decision, Decision); 9] = [
            (
                "new key",
                decide(m, Known::Absent, false, false),
                row.new_key,
            ),
            (
                "new key (lookup)",
                decide(m, Known::Absent, false, true),
                row.new_key_lookup,
            ),
            (
                "found by lookup",
                decide_after_lookup(m, Some(7), 8, false),
                row.found,
            ),
            (
                "not found by lookup",
                decide_after_lookup(m, None, 8, false),
                row.not_found,
            ),
            (
                "same values",
                decide(m, Known::Present { same: true }, false, true),
                row.same,
            ),
            (
                "changed values",
                decide(m, Known::Present { same: false }, false, true),
                row.changed,
            ),
            (
                "same values, full resync",
                decide(m, Known::Present { same: true }, true, true),
                row.same_resync,
            ),
            (
                "deleted earlier",
                decide(m, Known::Deleted, false, true),
                row.deleted,
            ),
            (
                "deletes missing",
                if m.deletes_missing() { Op(D) } else { Same },
                if row.deletes_missing { Op(D) } else { Same },
            ),
        ];
        for (cell, got, want) in cells {
            assert_eq!(got, want, "mode {m}, cell `{cell}`");
        }
    }
}

#[test]
fn a_lookup_that_finds_the_same_values_is_unchanged_for_update() {
    assert_eq!(
        decide_after_lookup(SyncMode::Update, Some(8), 8, false),
        Same
    );
    assert_eq!(
        decide_after_lookup(SyncMode::Update, Some(8), 8, true),
        Op(U)
    );
}

#[test]
fn table_cells_agree_with_the_decisions() {
    for r in &TABLE {
        let m = r.mode;
        let creates = decide(m, Known::Absent, false, false) == Op(C)
            || decide_after_lookup(m, None, 1, false) == Op(C);
        assert_eq!(creates, r.creates_text != "never", "{m} creates");
        let updates = decide(m, Known::Present { same: false }, false, false) == Op(U);
        assert_eq!(updates, r.updates_text != "never", "{m} updates");
        let deletes = m.deletes_missing() || decide(m, Known::Absent, false, false) == Op(D);
        assert_eq!(deletes, r.deletes_text != "never", "{m} deletes");
        let looks_up = decide(m, Known::Absent, false, true) == Lookup;
        assert_eq!(looks_up, r.looks_up_text != "nothing", "{m} looks up");
        assert_eq!(m.creates_records(), r.creates != Creates::Never, "{m}");
    }
}

#[test]
fn writes_per_mode() {
    let expect = [
        (SyncMode::Upsert, WriteOp::Upsert),
        (SyncMode::Mirror, WriteOp::Upsert),
        (SyncMode::Append, WriteOp::Create),
        (SyncMode::Insert, WriteOp::Create),
        (SyncMode::Update, WriteOp::Update),
    ];
    for (m, w) in expect {
        assert_eq!(write_op(m, C), w, "{m} create");
        assert_eq!(write_op(m, U), w, "{m} update");
    }
    for m in SyncMode::ALL {
        assert_eq!(write_op(*m, D), WriteOp::Delete, "{m}");
    }
}

fn entry(hash: u128, state: KeyState, origin: KeyOrigin) -> KeyEntry {
    KeyEntry {
        hash,
        state,
        origin,
        updated_at: 5,
    }
}

#[test]
fn the_key_set_moves_only_on_acknowledged_outcomes() {
    let ok = RecordOutcome::Delivered;
    let skipped = RecordOutcome::Skipped { reason: "x".into() };
    let rejected = RecordOutcome::Rejected {
        code: "c".into(),
        message: "m".into(),
    };
    let failed = RecordOutcome::Failed {
        code: "c".into(),
        message: "m".into(),
    };
    let put = |h, s, o| {
        Some(KeyChange::Put {
            key: "k".into(),
            entry: entry(h, s, o),
        })
    };
    let remove = Some(KeyChange::Remove { key: "k".into() });
    use KeyOrigin::{Baseline, Synced};
    use KeyState::{Deleted, Present};
    assert_eq!(
        key_change(WriteOp::Upsert, "k", 9, &ok, 5),
        put(9, Present, Synced)
    );
    assert_eq!(key_change(WriteOp::Upsert, "k", 9, &rejected, 5), None);
    assert_eq!(key_change(WriteOp::Upsert, "k", 9, &failed, 5), None);
    assert_eq!(key_change(WriteOp::Upsert, "k", 9, &skipped, 5), None);
    assert_eq!(
        key_change(WriteOp::Create, "k", 9, &skipped, 5),
        put(0, Present, Baseline)
    );
    assert_eq!(key_change(WriteOp::Update, "k", 9, &skipped, 5), remove);
    // A delete leaves a tombstone (delete mode must not delete again; a later create gets
    // new event ids).
    assert_eq!(
        key_change(WriteOp::Delete, "k", 0, &ok, 5),
        put(0, Deleted, Synced)
    );
    assert_eq!(
        key_change(WriteOp::Delete, "k", 0, &skipped, 5),
        put(0, Deleted, Synced)
    );
}

#[test]
fn a_resumed_apply_skips_what_the_key_set_already_reflects() {
    let present = entry(9, KeyState::Present, KeyOrigin::Synced);
    let deleted = entry(0, KeyState::Deleted, KeyOrigin::Synced);
    assert!(already_applied(SyncMode::Upsert, C, 9, Some(&present)));
    assert!(!already_applied(SyncMode::Upsert, U, 8, Some(&present)));
    assert!(!already_applied(SyncMode::Upsert, C, 9, None));
    assert!(already_applied(SyncMode::Mirror, D, 0, None));
    assert!(!already_applied(SyncMode::Mirror, D, 0, Some(&present)));
    assert!(!already_applied(SyncMode::Delete, D, 0, None));
    assert!(already_applied(SyncMode::Delete, D, 0, Some(&deleted)));
}

#[test]
fn modes_follow_from_capabilities() {
    assert_eq!(supported_modes(&Capabilities::ALL), SyncMode::ALL);
    let events = Capabilities {
        upsert: true,
        create: true,
        create_keeps_existing: true,
        delete: true,
        ..Capabilities::default()
    };
    use SyncMode::*;
    assert_eq!(
        supported_modes(&events),
        [Upsert, Mirror, Append, Insert, DeleteOnly, Delete]
    );
    let profiles = Capabilities {
        create_keeps_existing: false,
        ..events
    };
    assert_eq!(
        supported_modes(&profiles),
        [Upsert, Mirror, Append, DeleteOnly, Delete]
    );
    let append_only = Capabilities {
        create: true,
        ..Capabilities::default()
    };
    assert_eq!(supported_modes(&append_only), [Append]);
    assert!(unsupported_reason(Update, &events)
        .unwrap()
        .contains("lookups"));
}

#[test]
fn the_readme_table_is_this_table() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&markdown_table()),
        "README.md's mode table differs from shared/src/modes; paste this:\n{}",
        markdown_table()
    );
}

/// Plays one run of `mode` as planning and apply do, against a destination that holds
/// `dest` and can list and look up, starting from `keys` (the key set). Returns the
/// destination and the key set after the run.
fn play(
    mode: SyncMode,
    model: &[(u32, &str)],
    mut dest: BTreeMap<u32, String>,
    mut keys: BTreeMap<u32, KeyEntry>,
) -> (BTreeMap<u32, String>, BTreeMap<u32, KeyEntry>) {
    let h = |name: &str| xxhash_rust::xxh3::xxh3_128(name.as_bytes()).max(1);
    let mut ops = Vec::new();
    for (id, name) in model {
        let known = Known::of(keys.get(id), h(name));
        let decision = match decide(mode, known, false, true) {
            Lookup => decide_after_lookup(mode, dest.get(id).map(|v| h(v)), h(name), false),
            d => d,
        };
        if let Op(op) = decision {
            ops.push((op, *id, name.to_string()));
        }
    }
    if mode.deletes_missing() {
        for id in keys.keys() {
            if !model.iter().any(|(m, _)| m == id) {
                ops.push((D, *id, String::new()));
            }
        }
    }
    for (op, id, name) in ops {
        let write = write_op(mode, op);
        let outcome = match write {
            WriteOp::Create if dest.contains_key(&id) => RecordOutcome::Skipped {
                reason: "exists".into(),
            },
            WriteOp::Update if !dest.contains_key(&id) => RecordOutcome::Skipped {
                reason: "missing".into(),
            },
            WriteOp::Delete if dest.remove(&id).is_none() => RecordOutcome::Skipped {
                reason: "missing".into(),
            },
            WriteOp::Delete => RecordOutcome::Delivered,
            _ => {
                dest.insert(id, name.clone());
                RecordOutcome::Delivered
            }
        };
        match key_change(write, &id.to_string(), h(&name), &outcome, 1) {
            Some(KeyChange::Put { entry, .. }) => {
                keys.insert(id, entry);
            }
            Some(KeyChange::Remove { .. }) => {
                keys.remove(&id);
            }
            None => {}
        }
    }
    (dest, keys)
}

/// The key set a first run starts from: the destination's records (the baseline).
fn baseline(dest: &BTreeMap<u32, String>) -> BTreeMap<u32, KeyEntry> {
    let h = |name: &str| xxhash_rust::xxh3::xxh3_128(name.as_bytes()).max(1);
    dest.iter()
        .map(|(id, v)| (*id, entry(h(v), KeyState::Present, KeyOrigin::Baseline)))
        .collect()
}

fn table(rows: &[(u32, &str)]) -> BTreeMap<u32, String> {
    rows.iter().map(|(i, n)| (*i, n.to_string())).collect()
}

const BEFORE: &[(u32, &str)] = &[(1, "Alice"), (2, "Bobby"), (4, "Dave")];
const MODEL: &[(u32, &str)] = &[(1, "Alice"), (2, "Bob*"), (3, "Carol")];

#[test]
fn worked_example_upsert_keeps_dave() {
    let before = table(BEFORE);
    let (after, _) = play(SyncMode::Upsert, MODEL, before.clone(), baseline(&before));
    assert_eq!(
        after,
        table(&[(1, "Alice"), (2, "Bob*"), (3, "Carol"), (4, "Dave")])
    );
}

#[test]
fn worked_example_mirror_deletes_dave() {
    let before = table(BEFORE);
    let (after, keys) = play(SyncMode::Mirror, MODEL, before.clone(), baseline(&before));
    assert_eq!(after, table(MODEL));
    let present: Vec<u32> = keys
        .iter()
        .filter(|(_, e)| e.state == KeyState::Present)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(present, [1, 2, 3]);
    assert_eq!(keys[&4].state, KeyState::Deleted, "Dave leaves a tombstone");
}

#[test]
fn worked_example_append_keeps_alice_as_alice() {
    let run1 = [(1, "Alice"), (2, "Bob")];
    let (dest, keys) = play(SyncMode::Append, &run1, BTreeMap::new(), BTreeMap::new());
    assert_eq!(dest, table(&run1));
    let run2 = [(1, "Alice*"), (2, "Bob"), (3, "Carol")];
    let (dest, _) = play(SyncMode::Append, &run2, dest, keys);
    assert_eq!(dest, table(&[(1, "Alice"), (2, "Bob"), (3, "Carol")]));
}

#[test]
fn worked_example_update_only_and_delete_only() {
    let before = table(BEFORE);
    let (after, _) = play(SyncMode::Update, MODEL, before.clone(), baseline(&before));
    assert_eq!(after, table(&[(1, "Alice"), (2, "Bob*"), (4, "Dave")]));
    let (after, _) = play(
        SyncMode::DeleteOnly,
        MODEL,
        before.clone(),
        baseline(&before),
    );
    assert_eq!(after, table(&[(1, "Alice"), (2, "Bobby")]));
}

#[test]
fn worked_example_insert_and_delete() {
    let before = table(BEFORE);
    // Insert without a baseline: the lookup finds Alice and Bobby, so only Carol is created.
    let (after, _) = play(SyncMode::Insert, MODEL, before.clone(), BTreeMap::new());
    assert_eq!(
        after,
        table(&[(1, "Alice"), (2, "Bobby"), (3, "Carol"), (4, "Dave")])
    );
    // Delete: the model names the records to erase; Carol is not there and is skipped.
    let (after, keys) = play(SyncMode::Delete, MODEL, before.clone(), BTreeMap::new());
    assert_eq!(after, table(&[(4, "Dave")]));
    assert!(keys.values().all(|e| e.state == KeyState::Deleted));
    // Run again: nothing left to delete.
    let (again, _) = play(SyncMode::Delete, MODEL, after.clone(), keys);
    assert_eq!(again, after);
}
