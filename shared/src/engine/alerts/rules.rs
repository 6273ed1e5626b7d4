//! Which alert rules a run, or a sync's history, sets off: pure functions of the rules, the
//! run records and the time, so both hosts and the periodic check decide alike.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::AlertRules;
use crate::ports::{AlertRule, FiredRule, RunRecord, RunStatus};

/// Whether a run delivered: it applied its plan, even if some records were refused.
pub fn delivered(status: RunStatus) -> bool {
    matches!(status, RunStatus::Succeeded | RunStatus::PartiallyFailed)
}

fn fired(rule: AlertRule, summary: String, figures: &[(&str, Value)]) -> FiredRule {
    let figures: BTreeMap<String, Value> = figures
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    FiredRule {
        rule,
        summary,
        figures,
    }
}

/// Rounds to one decimal for figures and messages.
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The rules `run` (ended) sets off. `earlier` is the sync's run history, newest first (the
/// run itself may be in it: it is skipped).
pub fn evaluate_run(
    rules: &AlertRules,
    run: &RunRecord,
    earlier: &[RunRecord],
    now: DateTime<Utc>,
) -> Vec<FiredRule> {
    let earlier: Vec<&RunRecord> = earlier.iter().filter(|r| r.run_id != run.run_id).collect();
    let mut out = Vec::new();
    if rules.on_failure {
        out.extend(failure(run));
    }
    if let Some(pct) = rules.rejected_over_pct {
        out.extend(rejected(run, pct));
    }
    if let Some(rule) = rules.row_count_change {
        out.extend(row_count(run, &earlier, rule.over_pct, rule.runs as usize));
    }
    if let Some(hours) = rules.no_success_for_hours {
        if !delivered(run.status) {
            let since = oldest_start(&earlier).unwrap_or(run.created_at);
            out.extend(no_success(hours, last_delivery(&earlier), since, now));
        }
    }
    if let Some(minutes) = rules.runtime_over_minutes {
        out.extend(runtime(run, minutes));
    }
    out
}

fn failure(run: &RunRecord) -> Option<FiredRule> {
    let what = match run.status {
        RunStatus::Failed => "the run failed",
        RunStatus::Aborted => "the run was aborted by a safety rule",
        RunStatus::Expired => "the approval request expired; nothing was written",
        _ => return None,
    };
    let name = run
        .error_name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let summary = format!("{what}{name}; see `retl runs show {}`", run.run_id);
    Some(fired(
        AlertRule::Failure,
        summary,
        &[("status", json!(run.status.as_str()))],
    ))
}

fn rejected(run: &RunRecord, over_pct: f64) -> Option<FiredRule> {
    let c = &run.counts;
    // The model's rows; a run that lists no rows (a delete of keys it was given) counts what
    // it sent and refused.
    let records = if c.rows > 0 {
        c.rows
    } else {
        c.changes() + c.rejected + c.failed
    };
    if records == 0 || c.rejected == 0 {
        return None;
    }
    let pct = c.rejected as f64 * 100.0 / records as f64;
    if pct <= over_pct {
        return None;
    }
    let summary = format!(
        "{} of {records} rows rejected ({}%, more than {over_pct}%); `retl errors {}` lists them",
        c.rejected,
        round1(pct),
        run.run_id
    );
    Some(fired(
        AlertRule::RejectedRecords,
        summary,
        &[
            ("rejected", json!(c.rejected)),
            ("records", json!(records)),
            ("rejected_pct", json!(round1(pct))),
            ("threshold_pct", json!(over_pct)),
        ],
    ))
}

/// The median of `values` (not empty).
fn median(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] as f64 + values[n / 2] as f64) / 2.0
    }
}

fn row_count(
    run: &RunRecord,
    earlier: &[&RunRecord],
    over_pct: f64,
    runs: usize,
) -> Option<FiredRule> {
    // Only runs that read their model have a row count to compare.
    if !matches!(
        run.status,
        RunStatus::Succeeded | RunStatus::PartiallyFailed | RunStatus::Aborted
    ) {
        return None;
    }
    let mut recent: Vec<u64> = earlier
        .iter()
        .filter(|r| delivered(r.status))
        .take(runs)
        .map(|r| r.counts.rows)
        .collect();
    if recent.len() < runs {
        return None;
    }
    let median = median(&mut recent);
    if median == 0.0 {
        return None;
    }
    let rows = run.counts.rows;
    let change = (rows as f64 - median) / median * 100.0;
    if change.abs() <= over_pct {
        return None;
    }
    let summary = format!(
        "the model returned {rows} rows, {}% {} the median {median} of the last {runs} delivered runs (allowed: {over_pct}%)",
        round1(change.abs()),
        if change < 0.0 { "below" } else { "above" },
    );
    Some(fired(
        AlertRule::RowCountChange,
        summary,
        &[
            ("rows", json!(rows)),
            ("median_rows", json!(median)),
            ("change_pct", json!(round1(change))),
            ("threshold_pct", json!(over_pct)),
            ("runs", json!(runs)),
        ],
    ))
}

/// When the newest delivering run of `history` (newest first) ended.
pub fn last_delivery(history: &[&RunRecord]) -> Option<DateTime<Utc>> {
    history
        .iter()
        .find(|r| delivered(r.status))
        .map(|r| r.finished_at.unwrap_or(r.updated_at))
}

/// When the oldest run of `history` started.
pub fn oldest_start(history: &[&RunRecord]) -> Option<DateTime<Utc>> {
    history.iter().map(|r| r.created_at).min()
}

/// Hours from `from` to `now`.
pub fn hours_between(from: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - from).num_seconds().max(0) as f64 / 3600.0
}

/// The `no_success_for_hours` rule: no delivery since `last` (or, never delivered, since
/// `since`: the sync's first run or deployment) for more than `hours`.
pub fn no_success(
    hours: f64,
    last: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<FiredRule> {
    let age = hours_between(last.unwrap_or(since), now);
    if age <= hours {
        return None;
    }
    let summary = match last {
        Some(t) => format!(
            "no run has delivered for {} hours (last at {}; allowed: {hours} hours)",
            round1(age),
            t.format("%Y-%m-%d %H:%M UTC")
        ),
        None => format!(
            "no run has ever delivered, {} hours after {} (allowed: {hours} hours)",
            round1(age),
            since.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    Some(fired(
        AlertRule::NoSuccess,
        summary,
        &[
            ("hours_since_success", json!(round1(age))),
            ("threshold_hours", json!(hours)),
        ],
    ))
}

/// Whether the periodic check, run every `every_hours`, reports a sync `age` hours after its
/// last delivery: once when `age` passes `hours`, then again at every further `hours` while
/// it stays so (a reminder), so an hourly check does not repeat it every hour.
pub fn stale_due(age: f64, hours: f64, every_hours: f64) -> bool {
    if age <= hours || hours <= 0.0 {
        return false;
    }
    // The check whose period ends in (k * hours, k * hours + every_hours] past the limit.
    let past = (age - hours) % hours;
    past > 0.0 && past <= every_hours
}

/// Minutes the run took, not counting the wait for an approval decision.
pub fn runtime_minutes(run: &RunRecord) -> Option<f64> {
    let end = run.finished_at?;
    let mut seconds = (end - run.created_at).num_seconds();
    if let Some(a) = &run.approval {
        if let Some(asked) = a.requested_at {
            let answered = a.decided_at.unwrap_or(end).min(end);
            seconds -= (answered - asked).num_seconds().max(0);
        }
    }
    Some(seconds.max(0) as f64 / 60.0)
}

fn runtime(run: &RunRecord, over_minutes: f64) -> Option<FiredRule> {
    if matches!(run.status, RunStatus::Planned | RunStatus::Rejected) {
        return None;
    }
    let minutes = runtime_minutes(run)?;
    if minutes <= over_minutes {
        return None;
    }
    let summary = format!(
        "the run took {} minutes (allowed: {over_minutes}; approval wait not counted)",
        round1(minutes)
    );
    Some(fired(
        AlertRule::Runtime,
        summary,
        &[
            ("runtime_minutes", json!(round1(minutes))),
            ("threshold_minutes", json!(over_minutes)),
        ],
    ))
}
