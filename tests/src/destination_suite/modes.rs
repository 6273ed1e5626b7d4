//! Every mode a destination supports, played through the product documents' worked example
//! (destination: Alice, Bobby, Dave; model: Alice, Bob*, Carol), then run again to show an
//! idempotent re-run writes nothing; and every mode it does not support refused by
//! `retl validate`.

use super::harness::{capabilities, count, held, modes, Harness};
use super::{DestinationUnderTest, Held};
use retl_shared::modes::{unsupported_reason, SyncMode};

/// What the destination holds before the run.
pub const BEFORE: &[(i64, &str)] = &[(1, "Alice"), (2, "Bobby"), (4, "Dave")];
/// What the model returns.
pub const MODEL: &[(i64, &str)] = &[(1, "Alice"), (2, "Bob*"), (3, "Carol")];

/// What one mode must do with the worked example.
struct Expected {
    after: Held,
    creates: u64,
    updates: u64,
    deletes: u64,
    skipped: u64,
    unchanged: u64,
}

/// The worked example's outcome under `mode`: the README's mode table, row by row.
/// `can_lookup`: the destination can say whether it holds Carol. Counts are creates,
/// updates, deletes, skipped, unchanged (Alice is unchanged wherever she is not deleted;
/// `delete_only` leaves all three model rows alone).
fn expected(d: &dyn DestinationUnderTest, mode: SyncMode, can_lookup: bool) -> Expected {
    let e = |after: &[(i64, &str)], [creates, updates, deletes, skipped, unchanged]: [u64; 5]| {
        Expected {
            after: held(d, after),
            creates,
            updates,
            deletes,
            skipped,
            unchanged,
        }
    };
    match mode {
        // Bob* updated, Carol created, Dave kept.
        SyncMode::Upsert => e(
            &[(1, "Alice"), (2, "Bob*"), (3, "Carol"), (4, "Dave")],
            [1, 1, 0, 0, 1],
        ),
        // As upsert, and Dave deleted: he left the model.
        SyncMode::Mirror => e(&[(1, "Alice"), (2, "Bob*"), (3, "Carol")], [1, 1, 1, 0, 1]),
        // Carol created; Bobby exists and is never updated (skipped).
        SyncMode::Append | SyncMode::Insert => e(
            &[(1, "Alice"), (2, "Bobby"), (3, "Carol"), (4, "Dave")],
            [1, 0, 0, 1, 1],
        ),
        // Bob* updated; Carol does not exist (skipped, counted).
        SyncMode::Update => e(&[(1, "Alice"), (2, "Bob*"), (4, "Dave")], [0, 1, 0, 1, 1]),
        // Only Dave, who left the model, is deleted; Bobby stays Bobby.
        SyncMode::DeleteOnly => e(&[(1, "Alice"), (2, "Bobby")], [0, 0, 1, 0, 3]),
        // The model is a list of erasure requests: Alice and Bobby go; Carol is absent. A
        // destination that can look up skips her; one that cannot is sent her delete.
        SyncMode::Delete if can_lookup => e(&[(4, "Dave")], [0, 0, 2, 1, 0]),
        SyncMode::Delete => e(&[(4, "Dave")], [0, 0, 3, 0, 0]),
    }
}

/// One mode's worked example, then the same run again.
async fn worked_example(d: &dyn DestinationUnderTest, mode: SyncMode) {
    let h = Harness::new(d, mode.as_str(), "").await;
    h.before(BEFORE).await;
    h.set_mode(mode);
    h.model(MODEL);
    let what = format!("{mode} worked example");
    let v = h.run_ok(&what).await;
    let caps = capabilities(d);
    let want = expected(d, mode, caps.lookup);
    let name = d.name();
    assert_eq!(
        h.d.holds(&h.object).await,
        want.after,
        "{name}: {what}: {v}"
    );
    let got = |k| count(&v, k);
    let counts = ["creates", "updates", "unchanged", "rejected", "failed"].map(got);
    assert_eq!(
        counts,
        [want.creates, want.updates, want.unchanged, 0, 0],
        "{name}: {what}: creates, updates, unchanged, rejected, failed: {v}"
    );
    // A destination that cannot look up is sent Carol's delete, and may answer that she
    // was not there (skipped) or not say (delivered).
    let [deletes, skipped] = [got("deletes"), got("skipped")];
    if mode == SyncMode::Delete && !caps.lookup {
        assert!(
            deletes >= 2 && deletes + skipped == 3,
            "{name}: {what}: deletes, skipped: {v}"
        );
    } else {
        assert_eq!(
            [deletes, skipped],
            [want.deletes, want.skipped],
            "{name}: {what}: deletes, skipped: {v}"
        );
    }
    rerun_sends_nothing(&h, &what, &want.after).await;
}

/// The same model again: nothing written, the destination unchanged.
async fn rerun_sends_nothing(h: &Harness<'_>, what: &str, after: &Held) {
    let name = h.d.name();
    h.d.clear_log().await;
    let v = h.run_ok(&format!("{what}, run again")).await;
    for k in ["creates", "updates", "deletes", "rejected", "failed"] {
        assert_eq!(count(&v, k), 0, "{name}: {what}, run again: {k}: {v}");
    }
    if let Some(writes) = h.d.writes().await {
        assert!(
            writes.is_empty(),
            "{name}: {what}, run again wrote {writes:?}"
        );
    }
    assert_eq!(
        &h.d.holds(&h.object).await,
        after,
        "{name}: {what}, run again"
    );
}

/// Every mode the connector's capabilities allow: the worked example, then an idempotent
/// re-run that writes nothing.
pub async fn worked_examples_in_every_supported_mode(d: &dyn DestinationUnderTest) {
    let supported = modes(d);
    assert!(
        supported.contains(&SyncMode::Upsert),
        "{}: the suite needs upsert (supported: {supported:?})",
        d.name()
    );
    for mode in supported {
        worked_example(d, mode).await;
    }
}

/// Every mode the capabilities allow validates; every other is refused by `retl validate`,
/// naming the mode, the destination, why, and the modes it supports.
pub async fn unsupported_modes_are_refused(d: &dyn DestinationUnderTest) {
    let caps = capabilities(d);
    let supported: Vec<&str> = modes(d).iter().map(|m| m.as_str()).collect();
    let h = Harness::new(d, "validate", "").await;
    for mode in SyncMode::ALL {
        h.set_mode(*mode);
        let out = h.project.run(&["validate"]).await;
        let text = format!("{}{}", out.stdout, out.stderr);
        let Some(reason) = unsupported_reason(*mode, &caps) else {
            assert_eq!(out.code, 0, "{}: {mode} is supported: {text}", d.name());
            continue;
        };
        assert_eq!(out.code, 2, "{}: {mode} must be refused: {text}", d.name());
        let want = format!(
            "mode `{mode}` is not supported by the {} destination `dest`: {reason}",
            d.name()
        );
        assert!(text.contains(&want), "{}: {text}", d.name());
        let list = format!("use one of: {}", supported.join(", "));
        assert!(
            text.contains(&list),
            "{}: the supported modes: {text}",
            d.name()
        );
    }
}
