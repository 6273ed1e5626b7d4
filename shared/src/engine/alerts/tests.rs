//! The alert rules on run histories.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::rules::{evaluate_run, runtime_minutes, stale_due};
use crate::config::{AlertRules, RowCountChange};
use crate::ports::{AlertRule, Approval, Counts, RunRecord, RunStatus};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

/// A run of `people` started `hours_ago` before `t0`, lasting `minutes`, with `rows` read.
fn run(id: &str, status: RunStatus, hours_ago: i64, minutes: i64, rows: u64) -> RunRecord {
    let mut r = RunRecord::new(id.into(), "people", "schedule", 1);
    r.created_at = t0() - Duration::hours(hours_ago);
    r.finished_at = Some(r.created_at + Duration::minutes(minutes));
    r.updated_at = r.finished_at.unwrap();
    r.status = status;
    r.counts = Counts {
        rows,
        ..Counts::default()
    };
    r
}

fn rules() -> AlertRules {
    AlertRules {
        on_failure: false,
        ..AlertRules::default()
    }
}

fn names(fired: &[crate::ports::FiredRule]) -> Vec<AlertRule> {
    fired.iter().map(|f| f.rule).collect()
}

#[test]
fn failure_fires_on_failed_aborted_and_expired_runs_only() {
    let on = AlertRules::default();
    for (status, fires) in [
        (RunStatus::Failed, true),
        (RunStatus::Aborted, true),
        (RunStatus::Expired, true),
        (RunStatus::Succeeded, false),
        (RunStatus::PartiallyFailed, false),
        (RunStatus::Rejected, false),
    ] {
        let mut r = run("r", status, 0, 1, 10);
        r.error_name = Some("Retl.SourceUnavailable".into());
        r.error = Some("password authentication failed for secret-ish value".into());
        let fired = evaluate_run(&on, &r, &[], t0());
        assert_eq!(fired.len(), usize::from(fires), "{status:?}: {fired:?}");
        if let Some(f) = fired.first() {
            assert_eq!(f.rule, AlertRule::Failure);
            assert!(
                f.summary.contains("Retl.SourceUnavailable"),
                "{}",
                f.summary
            );
            assert!(
                !f.summary.contains("password"),
                "the error message is never carried: {}",
                f.summary
            );
        }
    }
    let off = rules();
    assert!(evaluate_run(&off, &run("r", RunStatus::Failed, 0, 1, 0), &[], t0()).is_empty());
}

#[test]
fn rejected_records_fire_above_the_share_of_rows_read() {
    let r = AlertRules {
        rejected_over_pct: Some(10.0),
        ..rules()
    };
    let mut ten = run("r", RunStatus::PartiallyFailed, 0, 1, 100);
    ten.counts.rejected = 10;
    assert!(
        evaluate_run(&r, &ten, &[], t0()).is_empty(),
        "exactly the threshold does not fire"
    );
    let mut many = ten.clone();
    many.counts.rejected = 11;
    let fired = evaluate_run(&r, &many, &[], t0());
    assert_eq!(names(&fired), [AlertRule::RejectedRecords]);
    assert_eq!(fired[0].figures["rejected"], 11);
    assert_eq!(fired[0].figures["records"], 100);
    assert_eq!(fired[0].figures["rejected_pct"], 11.0);
    assert!(
        fired[0].summary.starts_with("11 of 100 rows rejected (11%"),
        "{}",
        fired[0].summary
    );
    // No rows listed (a run that only deleted): what it sent and refused is the base.
    let mut deletes = run("r", RunStatus::PartiallyFailed, 0, 1, 0);
    deletes.counts.deletes = 1;
    deletes.counts.rejected = 1;
    assert_eq!(
        names(&evaluate_run(&r, &deletes, &[], t0())),
        [AlertRule::RejectedRecords]
    );
}

#[test]
fn row_counts_are_compared_with_the_median_of_the_last_delivered_runs() {
    let r = AlertRules {
        row_count_change: Some(RowCountChange {
            over_pct: 50.0,
            runs: 3,
        }),
        ..rules()
    };
    // Newest first; the failed run and the run itself are not part of the median.
    let history = [
        run("now", RunStatus::Succeeded, 0, 1, 40),
        run("f", RunStatus::Failed, 1, 1, 0),
        run("a", RunStatus::Succeeded, 2, 1, 100),
        run("b", RunStatus::PartiallyFailed, 3, 1, 90),
        run("c", RunStatus::Succeeded, 4, 1, 1000),
        run("d", RunStatus::Succeeded, 5, 1, 1),
    ];
    let halved = &history[0];
    let fired = evaluate_run(&r, halved, &history, t0());
    assert_eq!(names(&fired), [AlertRule::RowCountChange]);
    assert_eq!(fired[0].figures["median_rows"], 100.0);
    assert_eq!(fired[0].figures["change_pct"], -60.0);
    assert!(
        fired[0].summary.contains("60% below the median 100"),
        "{}",
        fired[0].summary
    );
    let mut close = halved.clone();
    close.counts.rows = 150;
    assert!(
        evaluate_run(&r, &close, &history, t0()).is_empty(),
        "+50% is allowed"
    );
    // Too few delivered runs yet: the rule waits.
    assert!(evaluate_run(&r, halved, &history[..4], t0()).is_empty());
    // An empty model that aborted is a change too.
    let empty = run("now", RunStatus::Aborted, 0, 1, 0);
    assert_eq!(
        names(&evaluate_run(&r, &empty, &history, t0())),
        [AlertRule::RowCountChange]
    );
}

#[test]
fn no_success_fires_when_a_run_ends_without_delivering_long_after_the_last_delivery() {
    let r = AlertRules {
        no_success_for_hours: Some(24.0),
        ..rules()
    };
    let history = [
        run("f1", RunStatus::Failed, 1, 1, 0),
        run("f2", RunStatus::Failed, 20, 1, 0),
        run("ok", RunStatus::Succeeded, 30, 60, 5),
    ];
    let failed = run("now", RunStatus::Failed, 0, 0, 0);
    let fired = evaluate_run(&r, &failed, &history, t0());
    assert_eq!(names(&fired), [AlertRule::NoSuccess]);
    assert_eq!(fired[0].figures["hours_since_success"], 29.0);
    let recent = [run("ok", RunStatus::Succeeded, 10, 1, 5)];
    assert!(evaluate_run(&r, &failed, &recent, t0()).is_empty());
    // A delivering run is a success, however long ago the last one was.
    let ok = run("now", RunStatus::Succeeded, 0, 0, 5);
    assert!(evaluate_run(&r, &ok, &history, t0()).is_empty());
    // Never delivered: counted from the oldest run.
    let never = [run("f", RunStatus::Failed, 48, 1, 0)];
    let fired = evaluate_run(&r, &failed, &never, t0());
    assert!(
        fired[0]
            .summary
            .starts_with("no run has ever delivered, 48 hours"),
        "{}",
        fired[0].summary
    );
}

#[test]
fn runtime_leaves_out_the_wait_for_approval() {
    let r = AlertRules {
        runtime_over_minutes: Some(30.0),
        ..rules()
    };
    let mut approved = run("r", RunStatus::Succeeded, 10, 10 * 60, 5);
    approved.approval = Some(Approval {
        requested_at: Some(approved.created_at + Duration::minutes(5)),
        decided_at: Some(approved.created_at + Duration::minutes(5 + 9 * 60 + 40)),
        ..Approval::default()
    });
    assert_eq!(runtime_minutes(&approved), Some(20.0));
    assert!(evaluate_run(&r, &approved, &[], t0()).is_empty());
    let slow = run("r", RunStatus::Failed, 1, 45, 5);
    let fired = evaluate_run(&r, &slow, &[], t0());
    assert_eq!(names(&fired), [AlertRule::Runtime]);
    assert_eq!(fired[0].figures["runtime_minutes"], 45.0);
    // An approval that expired unanswered waited until the run ended.
    let mut expired = run("r", RunStatus::Expired, 30, 24 * 60 + 3, 5);
    expired.approval = Some(Approval {
        requested_at: Some(expired.created_at + Duration::minutes(3)),
        ..Approval::default()
    });
    assert_eq!(runtime_minutes(&expired), Some(3.0));
}

#[test]
fn every_rule_that_fires_is_reported_in_the_order_of_the_sync_file() {
    let r = AlertRules {
        on_failure: true,
        rejected_over_pct: Some(1.0),
        row_count_change: None,
        no_success_for_hours: Some(1.0),
        runtime_over_minutes: Some(1.0),
        slack_webhook_url_env: None,
    };
    let mut bad = run("now", RunStatus::Failed, 0, 5, 10);
    bad.counts.rejected = 5;
    let history = [run("old", RunStatus::Succeeded, 5, 1, 10)];
    assert_eq!(
        names(&evaluate_run(&r, &bad, &history, t0())),
        [
            AlertRule::Failure,
            AlertRule::RejectedRecords,
            AlertRule::NoSuccess,
            AlertRule::Runtime
        ]
    );
}

#[test]
fn the_periodic_check_reports_a_stale_sync_once_then_every_period_of_the_rule() {
    let hourly = 1.0;
    assert!(!stale_due(23.5, 24.0, hourly));
    assert!(stale_due(24.2, 24.0, hourly), "just past the limit");
    assert!(!stale_due(25.2, 24.0, hourly), "not again the next hour");
    assert!(!stale_due(47.9, 24.0, hourly));
    assert!(stale_due(48.3, 24.0, hourly), "a reminder one period later");
    let quarterly = 0.25;
    let due: usize = (0..200)
        .map(|i| f64::from(i) * quarterly)
        .filter(|age| stale_due(*age, 6.0, quarterly))
        .count();
    assert_eq!(due, 8, "at 6.25 h, then every further 6 hours up to 50 h");
}
