use std::cmp::Ordering;

use serde_json::json;

use super::*;
use crate::config::SyncMode;

fn number(t: &str) -> Value {
    serde_json::from_str(t).expect("a number")
}

fn inc(lookback_seconds: u64) -> Incremental {
    Incremental {
        column: "updated_at".into(),
        lookback_seconds,
    }
}

#[test]
fn values_become_bounds_of_their_kind() {
    assert_eq!(
        bound_of(&number("9007199254740993")),
        Some(Bound::Integer("9007199254740993".into()))
    );
    assert_eq!(
        bound_of(&number("12.50")),
        Some(Bound::Decimal("12.50".into()))
    );
    assert!(matches!(
        bound_of(&json!("2024-03-01T08:00:00+00:00")),
        Some(Bound::Instant(_))
    ));
    assert!(matches!(
        bound_of(&json!("2024-03-01T10:00:00.5")),
        Some(Bound::Naive(_))
    ));
    assert!(matches!(
        bound_of(&json!("2024-02-29")),
        Some(Bound::Date(_))
    ));
    // Not retl's form of a timestamp: compared as the text the warehouse holds.
    assert_eq!(
        bound_of(&json!("2024-03-01 10:00:00")),
        Some(Bound::Text("2024-03-01 10:00:00".into()))
    );
    assert_eq!(bound_of(&json!(true)), None);
}

#[test]
fn numbers_compare_exactly() {
    let b = |t: &str| Bound::Decimal(t.into());
    assert_eq!(
        compare(&b("9007199254740993"), &b("9007199254740992")),
        Some(Ordering::Greater)
    );
    assert_eq!(compare(&b("-12.5"), &b("-12.49")), Some(Ordering::Less));
    assert_eq!(compare(&b("1.50"), &b("1.5")), Some(Ordering::Equal));
    assert_eq!(compare(&b("-0"), &b("0")), Some(Ordering::Equal));
    assert_eq!(compare(&b("10"), &b("9.99")), Some(Ordering::Greater));
    assert_eq!(compare(&b("0.1"), &Bound::Text("a".into())), None);
}

#[test]
fn highest_keeps_the_largest_value_and_ignores_nulls() {
    let mut h = Highest::new("v");
    for v in ["3", "10", "9"] {
        h.see("s", Some(&number(v))).unwrap();
    }
    h.see("s", Some(&Value::Null)).unwrap();
    h.see("s", None).unwrap();
    assert_eq!(h.into_bound(), Some(Bound::Integer("10".into())));
    let err = Highest::new("v").see("s", Some(&json!(true))).unwrap_err();
    assert!(err.to_string().contains("holds booleans"), "{err}");
}

#[test]
fn lookback_moves_timestamps_and_dates_back_and_refuses_numbers() {
    let t = bound_of(&json!("2024-03-01T10:00:00")).unwrap();
    assert_eq!(
        minus_lookback(&t, &inc(600)).unwrap().to_string(),
        "2024-03-01T09:50:00"
    );
    let d = bound_of(&json!("2024-03-01")).unwrap();
    assert_eq!(
        minus_lookback(&d, &inc(3600)).unwrap().to_string(),
        "2024-02-29"
    );
    let n = Bound::Integer("5".into());
    assert!(minus_lookback(&n, &inc(60))
        .unwrap_err()
        .to_string()
        .contains("applies to date and timestamp columns"));
    assert_eq!(minus_lookback(&n, &inc(0)).unwrap(), n);
}

fn sync() -> SyncDef {
    SyncDef {
        name: "s".into(),
        description: None,
        source_connection: "w".into(),
        sql: "select 1".into(),
        incremental: Some(inc(0)),
        primary_key: vec!["id".into()],
        key_fields: vec!["id".into()],
        destination_connection: "d".into(),
        object: "o".into(),
        mapping: Default::default(),
        mode: SyncMode::Upsert,
        delete_scope: Default::default(),
        safety: Default::default(),
        alerts: Default::default(),
        schedule: None,
        triggers: Vec::new(),
        shards: 1,
    }
}

#[test]
fn the_first_run_and_a_full_resync_read_everything() {
    let mut state = SyncState::default();
    let (filter, run) = plan_read(&sync(), &state, None).unwrap().unwrap();
    assert_eq!(filter, None);
    assert_eq!(run.full_read.as_deref(), Some("no watermark is stored yet"));
    state.watermark = Some(Watermark {
        column: "updated_at".into(),
        value: Bound::Integer("7".into()),
    });
    let (filter, run) = plan_read(&sync(), &state, None).unwrap().unwrap();
    assert_eq!(filter.unwrap().after, Bound::Integer("7".into()));
    assert_eq!(run.full_read, None);
    let (filter, run) = plan_read(&sync(), &state, Some("a full resync was requested"))
        .unwrap()
        .unwrap();
    assert_eq!(filter, None);
    assert!(run.full_read.unwrap().contains("full resync"));
    state.watermark.as_mut().unwrap().column = "version".into();
    let (filter, run) = plan_read(&sync(), &state, None).unwrap().unwrap();
    assert_eq!(filter, None);
    assert!(run.full_read.unwrap().contains("changed from `version`"));
}

#[test]
fn the_watermark_moves_as_far_as_every_record_is_final() {
    let seen = |v: &str| RunWatermark {
        column: "updated_at".into(),
        before: Some(Bound::Integer("5".into())),
        read_after: Some(Bound::Integer("5".into())),
        full_read: None,
        seen: Some(Bound::Integer(v.into())),
        after: None,
    };
    let mut state = SyncState::default();
    let mut run = seen("9");
    advance(&mut state, &mut run, Reach::All);
    assert_eq!(run.after, Some(Bound::Integer("9".into())));
    assert_eq!(
        state.watermark.as_ref().unwrap().value,
        Bound::Integer("9".into())
    );
    let mut run = seen("9");
    advance(&mut state, &mut run, Reach::Nothing);
    assert_eq!(run.after, Some(Bound::Integer("5".into())));
    // A lookback can read values below the watermark: it never moves back.
    let mut run = seen("3");
    advance(&mut state, &mut run, Reach::All);
    assert_eq!(run.after, Some(Bound::Integer("5".into())));
    // Nothing read: it stays.
    let mut run = seen("1");
    run.seen = None;
    advance(&mut state, &mut run, Reach::All);
    assert_eq!(run.after, Some(Bound::Integer("5".into())));
    // Records failed: it moves up to the highest value below them, never back.
    let mut run = seen("9");
    advance(
        &mut state,
        &mut run,
        Reach::UpTo(Some(Bound::Integer("7".into()))),
    );
    assert_eq!(run.after, Some(Bound::Integer("7".into())));
    let mut run = seen("9");
    advance(
        &mut state,
        &mut run,
        Reach::UpTo(Some(Bound::Integer("4".into()))),
    );
    assert_eq!(run.after, Some(Bound::Integer("5".into())));
    let mut run = seen("9");
    advance(&mut state, &mut run, Reach::UpTo(None));
    assert_eq!(run.after, Some(Bound::Integer("5".into())));
    // On a first run with failures, no row below them read: no watermark yet.
    let mut first = SyncState::default();
    let mut run = seen("9");
    run.before = None;
    advance(&mut first, &mut run, Reach::UpTo(None));
    assert_eq!((run.after, first.watermark), (None, None));
}
