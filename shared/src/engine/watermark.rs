//! Incremental models (seed 004: "when volumes are large, filter with a high-watermark
//! column"): which rows a run reads, the highest watermark value it saw, and where the
//! sync's watermark moves when the run ends.
//!
//! - A run reads `column > watermark - lookback`, the bound typed as the column's values are
//!   ([`Bound`], bound as a parameter by each source), and still diffs what it reads against
//!   the key set, so rows read again send nothing.
//! - The whole model is read on the first run, after `--full-resync`, when the mapping, key or
//!   destination changed (every stored hash is then stale), and when the column changed.
//! - The watermark moves to the highest value whose rows all reached a final state
//!   (delivered, unchanged, skipped or rejected): with failed records, to the highest value
//!   read below the lowest value of a failed record (apply tracks that lowest value, and
//!   [`highest_below`] finds a value below it from the plan files and the extract parts'
//!   highest values), so the next run reads the failed records (and the rows after them) again. A
//!   run that failed or was killed leaves it where it was.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::keys::RunKeys;
use super::parts::ExtractManifest;
use super::plan::{read_plan_ops, PlanManifest};
use super::{Engine, EngineError};
use crate::config::{Incremental, SyncDef};
use crate::connectors::values;
use crate::ports::{Bound, RowFilter, RunWatermark, SyncState, Watermark};

/// What a run reads: the filter (none for a whole read) and the run's watermark record.
pub fn plan_read(
    sync: &SyncDef,
    state: &SyncState,
    full_resync: Option<&str>,
) -> Result<Option<(Option<RowFilter>, RunWatermark)>, EngineError> {
    let Some(inc) = &sync.incremental else {
        return Ok(None);
    };
    let before = state
        .watermark
        .as_ref()
        .filter(|w| w.column == inc.column)
        .map(|w| w.value.clone());
    let full_read = match (&before, full_resync) {
        (_, Some(reason)) => Some(reason.to_string()),
        (None, None) => Some(match &state.watermark {
            Some(w) => format!("the incremental column changed from `{}`", w.column),
            None => "no watermark is stored yet".to_string(),
        }),
        (Some(_), None) => None,
    };
    let read_after = match (&before, &full_read) {
        (Some(b), None) => Some(minus_lookback(b, inc)?),
        _ => None,
    };
    let filter = read_after.clone().map(|after| RowFilter {
        column: inc.column.clone(),
        after,
    });
    Ok(Some((
        filter,
        RunWatermark {
            column: inc.column.clone(),
            before,
            read_after,
            full_read,
            seen: None,
            after: None,
        },
    )))
}

/// How far the rows a finished run read reached a final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every record is final.
    All,
    /// Records failed; every row up to this value (the highest read below the lowest value of
    /// a failed record, see [`highest_below`]) is final; `None` when no row below it was read.
    UpTo(Option<Bound>),
    /// The run stopped before every record had an outcome: nothing is known to be final.
    Nothing,
}

/// The watermark a finished run leaves: the highest value every row up to which reached a
/// final state (never lower than the one it started from).
pub fn advance(state: &mut SyncState, run: &mut RunWatermark, reach: Reach) {
    let reached = match reach {
        Reach::All => run.seen.clone(),
        Reach::UpTo(v) => v,
        Reach::Nothing => None,
    };
    let next = match (&run.before, reached) {
        (Some(b), Some(r)) if compare(b, &r) == Some(Ordering::Less) => Some(r),
        (Some(b), Some(r)) if compare(b, &r).is_none() => {
            // Values of another kind than the stored one: the column's type changed, and
            // the last value of the new kind is the only one the next read can compare.
            Some(r)
        }
        (Some(b), _) => Some(b.clone()),
        (None, r) => r,
    };
    run.after.clone_from(&next);
    state.watermark = next.map(|value| Watermark {
        column: run.column.clone(),
        value,
    });
}

/// A value the watermark may move to when records failed: the highest value below
/// `lowest_failed` among the planned operations (their plan files carry each record's value)
/// and the extract parts that lie wholly below it (each part's highest value is in the
/// extract manifest). Every row at or below it reached a final state; unchanged rows between it and
/// `lowest_failed` in a part that also holds higher values are read again by the next run and
/// send nothing. Memory holds one plan file at a time.
pub async fn highest_below(
    engine: &Engine,
    run_id: &str,
    plan: &PlanManifest,
    lowest_failed: &Bound,
) -> Result<Option<Bound>, EngineError> {
    let key = RunKeys::new(run_id).extract_manifest();
    let body = engine.objects.get(&key).await?;
    let manifest: ExtractManifest =
        serde_json::from_slice(&body).map_err(|e| EngineError::Corrupt(format!("{key}: {e}")))?;
    let below = |v: &Bound| compare(v, lowest_failed) == Some(Ordering::Less);
    let mut best: Option<Bound> = None;
    let mut offer = |v: Bound| {
        if best
            .as_ref()
            .is_none_or(|b| compare(&v, b) == Some(Ordering::Greater))
        {
            best = Some(v);
        }
    };
    for part in &manifest.parts {
        if let Some(hi) = part.watermark_max.as_ref().filter(|hi| below(hi)) {
            offer(hi.clone());
        }
    }
    for file in &plan.files {
        for op in read_plan_ops(engine, file).await? {
            if let Some(v) = op.mark.as_ref().and_then(bound_of).filter(below) {
                offer(v);
            }
        }
    }
    Ok(best)
}

/// The highest value of the incremental column among the rows read.
#[derive(Debug, Default)]
pub struct Highest {
    column: String,
    best: Option<Bound>,
}

impl Highest {
    /// Tracks `column`.
    pub fn new(column: &str) -> Self {
        Highest {
            column: column.to_string(),
            best: None,
        }
    }

    /// Takes one value and returns its bound (NULLs are ignored: the filter never returns
    /// them again).
    pub fn see(&mut self, sync: &str, value: Option<&Value>) -> Result<Option<Bound>, EngineError> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let bound = bound_of(value).ok_or_else(|| {
            EngineError::Invalid(format!(
                "sync `{sync}`: the incremental column `{}` holds {}; it must hold numbers, dates, timestamps or text",
                self.column,
                kind_of(value)
            ))
        })?;
        keep(&mut self.best, bound.clone(), Ordering::Greater);
        Ok(Some(bound))
    }

    /// Takes the highest value another tracker of the same column saw (rows read in
    /// parallel).
    pub fn merge(&mut self, other: Highest) {
        if let Some(bound) = other.best {
            keep(&mut self.best, bound, Ordering::Greater);
        }
    }

    /// The highest value seen.
    pub fn into_bound(self) -> Option<Bound> {
        self.best
    }
}

/// Puts `bound` in `best` when `best` is empty or `bound` compares `wanted` to it
/// (`Greater`: `best` is the highest value taken; `Less`: the lowest). Values that do not
/// compare (different kinds) leave `best` as it is.
pub(crate) fn keep(best: &mut Option<Bound>, bound: Bound, wanted: Ordering) {
    if best
        .as_ref()
        .is_none_or(|b| compare(&bound, b) == Some(wanted))
    {
        *best = Some(bound);
    }
}

/// The bound of a value in retl's value forms: integers and decimals by their digits;
/// strings in exactly retl's text form of an instant, a timestamp or a date as those
/// (so each source binds its typed parameter); any other string as text, compared as the
/// warehouse compares text.
pub fn bound_of(value: &Value) -> Option<Bound> {
    match value {
        Value::Number(n) => {
            let t = n.to_string();
            let digits = t.strip_prefix('-').unwrap_or(&t);
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(Bound::Integer(t))
            } else {
                values::decimal(&t).map(|_| Bound::Decimal(t))
            }
        }
        Value::String(s) => Some(typed_text(s)),
        _ => None,
    }
}

fn typed_text(s: &str) -> Bound {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&Utc);
        if values::instant(t).as_str() == Some(s) {
            return Bound::Instant(t);
        }
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        if values::naive_timestamp(t).as_str() == Some(s) {
            return Bound::Naive(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if values::date(d).as_str() == Some(s) {
            return Bound::Date(d);
        }
    }
    Bound::Text(s.to_string())
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "booleans",
        Value::Array(_) => "arrays",
        Value::Object(_) => "JSON objects",
        _ => "values of another kind",
    }
}

/// `b` minus the sync's lookback; only dates and timestamps have one.
fn minus_lookback(b: &Bound, inc: &Incremental) -> Result<Bound, EngineError> {
    if inc.lookback_seconds == 0 {
        return Ok(b.clone());
    }
    let secs = i64::try_from(inc.lookback_seconds).unwrap_or(i64::MAX);
    let back = Duration::try_seconds(secs).unwrap_or(Duration::MAX);
    let overflow = || {
        EngineError::Invalid(format!(
            "the lookback of `{}` reaches before the earliest date",
            inc.column
        ))
    };
    Ok(match b {
        Bound::Instant(t) => Bound::Instant(t.checked_sub_signed(back).ok_or_else(overflow)?),
        Bound::Naive(t) => Bound::Naive(t.checked_sub_signed(back).ok_or_else(overflow)?),
        Bound::Date(d) => {
            let days = secs.div_euclid(86_400) + i64::from(secs.rem_euclid(86_400) != 0);
            Bound::Date(
                d.checked_sub_signed(Duration::days(days))
                    .ok_or_else(overflow)?,
            )
        }
        Bound::Integer(_) | Bound::Decimal(_) | Bound::Text(_) => {
            return Err(EngineError::Invalid(format!(
                "`lookback` applies to date and timestamp columns; the incremental column `{}` holds {}; remove `lookback`",
                inc.column,
                if matches!(b, Bound::Text(_)) { "text" } else { "numbers" }
            )))
        }
    })
}

/// The order of two bounds of the same kind (numbers compare by value, exactly).
pub fn compare(a: &Bound, b: &Bound) -> Option<Ordering> {
    use Bound::*;
    match (a, b) {
        (Integer(x) | Decimal(x), Integer(y) | Decimal(y)) => Some(compare_decimal(x, y)),
        (Instant(x), Instant(y)) => Some(x.cmp(y)),
        (Naive(x), Naive(y)) => Some(x.cmp(y)),
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Text(x), Text(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Compares plain decimal texts (`-12.50`, `9007199254740993`) without rounding.
fn compare_decimal(x: &str, y: &str) -> Ordering {
    let (xn, xm) = split_sign(x);
    let (yn, ym) = split_sign(y);
    let magnitude = compare_magnitude(xm, ym);
    match (xn, yn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) if is_zero(xm) && is_zero(ym) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) if is_zero(xm) && is_zero(ym) => Ordering::Equal,
        (false, true) => Ordering::Greater,
    }
}

fn split_sign(t: &str) -> (bool, &str) {
    match t.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, t),
    }
}

fn is_zero(m: &str) -> bool {
    m.bytes().all(|b| b == b'0' || b == b'.')
}

fn compare_magnitude(x: &str, y: &str) -> Ordering {
    let (xi, xf) = x.split_once('.').unwrap_or((x, ""));
    let (yi, yf) = y.split_once('.').unwrap_or((y, ""));
    let xi = xi.trim_start_matches('0');
    let yi = yi.trim_start_matches('0');
    xi.len()
        .cmp(&yi.len())
        .then_with(|| xi.cmp(yi))
        .then_with(|| {
            let width = xf.len().max(yf.len());
            format!("{xf:0<width$}").cmp(&format!("{yf:0<width$}"))
        })
}

#[cfg(test)]
mod tests;
