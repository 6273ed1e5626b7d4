//! Human and JSON output.

use std::fmt::Write;

use retl_shared::engine::{DeletionPreview, LoggedOutcome, Preview, RecordLogEntry};
use retl_shared::ports::{Bound, ConfigVersion, Counts, RunRecord, RunStatus, RunWatermark};
use serde_json::{json, Value};

/// The counts a run reports: what it applied, or what it planned when it applied nothing.
fn reported(run: &RunRecord) -> &Counts {
    let applied = matches!(
        run.status,
        RunStatus::Succeeded | RunStatus::PartiallyFailed
    ) || (run.status == RunStatus::Failed && run.counts != Counts::default());
    if applied {
        &run.counts
    } else {
        &run.planned
    }
}

/// One JSON object describing a run (`--json` of plan and run).
pub fn run_json(run: &RunRecord) -> Value {
    let c = reported(run);
    json!({
        "run_id": run.run_id,
        "sync": run.sync,
        "status": run.status.as_str(),
        "rows": c.rows,
        "creates": c.creates,
        "updates": c.updates,
        "deletes": c.deletes,
        "unchanged": c.unchanged,
        "skipped": c.skipped,
        "rejected": c.rejected,
        "failed": c.failed,
        "planned": run.planned,
        "existing": run.existing,
        "config_version": run.config_version,
        "trigger": run.trigger,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "timings_ms": run.timings,
        "resync_reason": run.resync_reason,
        "rebaseline_reason": run.rebaseline_reason,
        "keyset_after": run.keyset_after.as_ref().map(|k| json!({
            "shards": k.shards,
            "entries": k.total(),
            "per_shard": k.entries,
        })),
        "watermark": run.watermark.as_ref().map(|w| json!({
            "column": w.column,
            "before": w.before.as_ref().map(ToString::to_string),
            "read_after": w.read_after.as_ref().map(ToString::to_string),
            "full_read": w.full_read,
            "seen": w.seen.as_ref().map(ToString::to_string),
            "after": w.after.as_ref().map(ToString::to_string),
        })),
        "approval": run.approval.as_ref().map(|a| json!({
            "reason": a.reason,
            "expires_at": a.expires_at,
            "decision": a.decision,
            "decided_by": a.decided_by,
            "note": a.note,
        })),
        "error": run.error,
        "error_name": run.error_name,
    })
}

fn plan_lines(out: &mut String, c: &Counts) {
    if c.changes() == 0 {
        let _ = writeln!(
            out,
            "No changes: every row matches what retl last delivered (its key set; `--full-resync` re-checks the destination)."
        );
    } else {
        let _ = writeln!(
            out,
            "Plan: + {} to create, ~ {} to update, - {} to delete",
            c.creates, c.updates, c.deletes
        );
    }
    let _ = writeln!(
        out,
        "      {}: {} unchanged, {} skipped, {} rejected",
        rows(c.rows),
        c.unchanged,
        c.skipped,
        c.rejected
    );
}

/// `1 row`, `2 rows`: a count with its noun in the right number (`noun` is the singular
/// and takes an `s`), so no output says "1 rows" or "record(s)".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn rows(n: u64) -> String {
    count(n, "row")
}

/// An incremental model's watermark: what the run read and where it left the watermark.
fn watermark_lines(out: &mut String, w: &RunWatermark) {
    let text = |b: &Option<Bound>| b.as_ref().map_or("none".to_string(), ToString::to_string);
    let read = match (&w.read_after, &w.full_read) {
        (Some(after), _) => format!("rows with {} > {after}", w.column),
        (None, Some(why)) => format!("the whole model ({why})"),
        (None, None) => "the whole model".to_string(),
    };
    let _ = writeln!(out, "Incremental: read {read}");
    let after = match &w.after {
        Some(_) if w.after == w.before => format!("{} (unchanged)", text(&w.after)),
        Some(_) => text(&w.after),
        None if w.seen.is_some() => {
            "not moved (the run did not finish with every record final; those rows are read again)"
                .into()
        }
        None => text(&w.before),
    };
    let _ = writeln!(
        out,
        "Watermark {}: {} -> {after}",
        w.column,
        text(&w.before)
    );
}

/// How to decide on a run stopped for approval.
fn approval_lines(out: &mut String, run: &RunRecord) {
    let reason = run
        .approval
        .as_ref()
        .map(|a| a.reason.as_str())
        .unwrap_or("");
    let expires = run
        .approval
        .as_ref()
        .and_then(|a| a.expires_at)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "Stopped for approval: {reason}. Nothing was written.");
    let _ = writeln!(out, "  review:  retl runs show {}", run.run_id);
    let _ = writeln!(out, "  approve: retl approve {}", run.run_id);
    let _ = writeln!(
        out,
        "  reject:  retl reject {}   (expires {expires})",
        run.run_id
    );
}

/// The terraform-style summary of a run.
pub fn run_text(run: &RunRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} of {} (config v{}, {} trigger)",
        run.run_id, run.sync, run.config_version, run.trigger
    );
    if let Some(r) = &run.resync_reason {
        let _ = writeln!(out, "Full resync: {r}");
    }
    if let Some(r) = &run.rebaseline_reason {
        let _ = writeln!(out, "Key set rebuilt: {r}");
    }
    if let Some(w) = &run.watermark {
        watermark_lines(&mut out, w);
    }
    // A run that failed before its plan was made has no plan to show: only what failed.
    let planned = run.plan.is_some();
    if planned {
        plan_lines(&mut out, &run.planned);
    }
    let secs = |k: &str| run.timings.get(k).map(|ms| *ms as f64 / 1000.0);
    match run.status {
        RunStatus::Failed if !planned => {
            let _ = writeln!(out, "Status: failed before a plan was made");
            if let Some(e) = &run.error {
                let _ = writeln!(out, "Error: {e}");
            }
        }
        RunStatus::Planned => {
            let _ = writeln!(
                out,
                "Dry run: nothing was written. `retl run {}` applies it.",
                run.sync
            );
        }
        RunStatus::AwaitingApproval => approval_lines(&mut out, run),
        RunStatus::Aborted => {
            let _ = writeln!(
                out,
                "Aborted by a safety rule: {}",
                run.error.as_deref().unwrap_or("")
            );
        }
        RunStatus::Succeeded | RunStatus::PartiallyFailed | RunStatus::Failed => {
            let c = &run.counts;
            let total: f64 = ["extract_ms", "plan_ms", "apply_ms"]
                .iter()
                .filter_map(|k| secs(k))
                .sum();
            let _ = writeln!(
                out,
                "Applied: {} created, {} updated, {} deleted, {} skipped, {} rejected, {} failed ({:.1}s)",
                c.creates, c.updates, c.deletes, c.skipped, c.rejected, c.failed, total
            );
            let _ = writeln!(out, "Status: {}", run.status.as_str());
            if let Some(e) = &run.error {
                let _ = writeln!(out, "Error: {e}");
            }
            if c.rejected > 0 {
                let _ = writeln!(out, "Rejected records: retl errors {}", run.run_id);
            }
            if c.failed > 0 {
                let _ = writeln!(out, "Failed records are planned again by the next run.");
            }
        }
        other => {
            let _ = writeln!(out, "Status: {}", other.as_str());
            if let Some(e) = &run.error {
                let _ = writeln!(out, "Error: {e}");
            }
        }
    }
    out
}

/// `retl runs`.
pub fn runs_table(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:<28} {:<18} {:<18} {:>7} {:>7} {:>7} {:>8} {:>7}  {}\n",
        "RUN", "SYNC", "STATUS", "CREATE", "UPDATE", "DELETE", "REJECT", "FAIL", "STARTED"
    );
    for r in runs {
        let c = reported(r);
        let _ = writeln!(
            out,
            "{:<28} {:<18} {:<18} {:>7} {:>7} {:>7} {:>8} {:>7}  {}",
            r.run_id,
            r.sync,
            r.status.as_str(),
            c.creates,
            c.updates,
            c.deletes,
            c.rejected,
            c.failed,
            r.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    if runs.is_empty() {
        out.push_str("(no runs yet)\n");
    }
    out
}

/// `retl runs show`.
pub fn run_detail(run: &RunRecord) -> String {
    let mut out = run_text(run);
    let _ = writeln!(out, "Started:  {}", run.created_at.to_rfc3339());
    if let Some(f) = run.finished_at {
        let _ = writeln!(out, "Finished: {}", f.to_rfc3339());
    }
    for (k, v) in &run.timings {
        let _ = writeln!(out, "  {k}: {v}");
    }
    let _ = writeln!(out, "Existing records at plan time: {}", run.existing);
    if let Some(a) = &run.approval {
        let _ = writeln!(out, "Approval: {}", a.reason);
        if let Some(d) = &a.decision {
            let _ = writeln!(
                out,
                "  {d} by {} at {}{}",
                a.decided_by.as_deref().unwrap_or("?"),
                a.decided_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                a.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(n) = &run.error_name {
        let _ = writeln!(out, "Error name: {n}");
    }
    out
}

/// `retl errors`.
pub fn errors_text(run_id: &str, entries: &[RecordLogEntry], limit: usize) -> String {
    if entries.is_empty() {
        return format!("Run {run_id} rejected no records.\n");
    }
    let failed = entries
        .iter()
        .filter(|e| e.outcome == LoggedOutcome::Failed)
        .count();
    let rejected = entries.len() - failed;
    let mut out = format!(
        "{} in run {run_id}: {rejected} rejected, {failed} failed (failed ones are planned again by the next run):\n",
        records(entries.len() as u64)
    );
    for e in entries.iter().take(limit) {
        let label = match e.outcome {
            LoggedOutcome::Rejected => "rejected",
            LoggedOutcome::Failed => "failed",
        };
        let _ = writeln!(
            out,
            "- key {} [{label}, {}] {}: {}\n    payload: {}",
            e.key.as_deref().unwrap_or("(none)"),
            e.stage,
            e.code,
            e.message,
            serde_json::to_string(&e.values).unwrap_or_default()
        );
    }
    if entries.len() > limit {
        let _ = writeln!(
            out,
            "... and {} more (use --limit or --json)",
            entries.len() - limit
        );
    }
    out
}

/// `retl history`.
pub fn history_text(versions: &[ConfigVersion]) -> String {
    let mut out = String::new();
    let mut prev: Option<Value> = None;
    for v in versions {
        let cur = serde_json::to_value(&v.definition).unwrap_or(Value::Null);
        let changed = match (&prev, &cur) {
            (Some(Value::Object(a)), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                let diff: Vec<&str> = keys
                    .into_iter()
                    .filter(|k| a.get(*k) != b.get(*k))
                    .map(|k| k.as_str())
                    .collect();
                format!("changed: {}", diff.join(", "))
            }
            _ => "first version".to_string(),
        };
        let _ = writeln!(
            out,
            "v{:<3} {}  {:<40} ({changed})",
            v.version,
            v.created_at.format("%Y-%m-%d %H:%M"),
            v.note.as_deref().unwrap_or("(no note)")
        );
        if let Some(by) = &v.deployed_by {
            let _ = writeln!(out, "     deployed by {by}");
        }
        prev = Some(cur);
    }
    if versions.is_empty() {
        out.push_str("(no versions yet: they are recorded by runs and `retl save`)\n");
    }
    out
}

/// `retl preview`.
pub fn preview_text(sync: &str, p: &Preview) -> String {
    let mut out = format!(
        "Model of {sync}: {}, columns: {}\n",
        rows(p.rows),
        p.columns.join(", ")
    );
    let _ = writeln!(out, "Sample (mapped to destination fields):");
    for row in &p.sample {
        let _ = writeln!(out, "  {}", serde_json::to_string(row).unwrap_or_default());
    }
    if p.bad_keys == 0 && p.duplicate_keys == 0 {
        let _ = writeln!(out, "Keys: every row has a unique, non-null key.");
    } else {
        let _ = writeln!(
            out,
            "Key problems: {} with a null or invalid key, {} duplicated over {} \
             (runs reject these rows)",
            rows(p.bad_keys),
            count(p.duplicate_keys, "key"),
            rows(p.duplicate_rows)
        );
        for pr in &p.problems {
            let _ = writeln!(out, "  - {pr}");
        }
    }
    out
}

/// `retl plan --show-deletes`.
pub fn deletes_text(d: &DeletionPreview) -> String {
    if d.total == 0 {
        return "No records would be deleted.\n".into();
    }
    let mut out = format!("{} would be deleted:\n", records(d.total));
    for e in &d.entries {
        match &e.values {
            Some(v) => {
                let _ = writeln!(
                    out,
                    "  - {}  {}",
                    e.key,
                    serde_json::to_string(v).unwrap_or_default()
                );
            }
            None => {
                let _ = writeln!(out, "  - {}", e.key);
            }
        }
    }
    if (d.entries.len() as u64) < d.total {
        let _ = writeln!(out, "  ... and {} more", d.total - d.entries.len() as u64);
    }
    out
}

/// `retl verify`.
pub fn verify_text(
    sync: &retl_shared::config::SyncDef,
    r: &retl_shared::engine::VerifyReport,
) -> String {
    let mut out = format!(
        "Verified {} against {} ({}): {} in the destination, {} delivered per the key set\n",
        sync.name,
        sync.destination_connection,
        sync.object,
        records(r.destination_records),
        records(r.key_set_records)
    );
    if r.matches() {
        out.push_str("The destination holds exactly what retl delivered.\n");
        return out;
    }
    for (kind, count, what) in [
        ("missing", r.missing, "missing from the destination"),
        (
            "extra",
            r.extra,
            "in the destination but not delivered by retl",
        ),
        (
            "stale",
            r.stale,
            "changed in the destination since retl delivered them",
        ),
    ] {
        if count == 0 {
            continue;
        }
        let keys: Vec<&str> = r
            .sample
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, key)| key.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  {}: {what} (keys {}{})",
            records(count),
            keys.join(", "),
            if count as usize > keys.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    if r.repaired {
        let _ = writeln!(
            out,
            "Repaired: the key set now says what the destination holds; `retl plan {0}` shows the corrections, `retl run {0}` makes them.",
            sync.name
        );
    } else {
        let _ = writeln!(
            out,
            "`retl verify {} --repair` makes the key set match the destination, so the next run corrects it.",
            sync.name
        );
    }
    out
}

fn records(n: u64) -> String {
    count(n, "record")
}
