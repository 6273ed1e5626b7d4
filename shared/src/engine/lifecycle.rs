//! Starting and ending runs: the per-sync lock (with takeover of locks left by dead
//! processes), config versions, approval decisions and stale-plan checks.

use chrono::{Duration as ChronoDuration, Utc};

use super::keys::RunKeys;
use super::plan::PlanManifest;
use super::preview::write_approval_request;
use super::{new_run_id, Engine, EngineError};
use crate::config::SyncDef;
use crate::ports::{
    Approval, LockInfo, LockOutcome, Notification, RunRecord, RunStatus, StoreError,
};

/// A lock whose holder has shown no sign of life for this long is stale: twice the longest
/// Lambda invocation, so a step that heartbeats only when it starts is never taken over.
const LOCK_LEASE_MINUTES: i64 = 30;

/// How a run is started.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// manual, schedule, event, retry.
    pub trigger: String,
    /// Note for a new config version.
    pub note: Option<String>,
    /// A run id chosen by the caller (AWS passes the execution's); new when `None`.
    pub run_id: Option<String>,
}

/// This machine's name, for lock owners.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes a NUL-terminated name.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The lock owner string of this process.
pub fn local_owner() -> String {
    format!("local:{}:{}", hostname(), std::process::id())
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether the lock's holder is gone: its local process died, or it stopped heartbeating.
fn owner_is_gone(info: &LockInfo) -> bool {
    if let Some(rest) = info.owner.strip_prefix("local:") {
        if let Some((host, pid)) = rest.rsplit_once(':') {
            if host == hostname() {
                if let Ok(pid) = pid.parse::<i32>() {
                    return !process_alive(pid);
                }
            }
        }
    }
    Utc::now() - info.heartbeat_at > ChronoDuration::minutes(LOCK_LEASE_MINUTES)
}

/// Starts a run: refuses paused syncs, records the config version, takes the lock.
pub async fn start_run(
    engine: &Engine,
    sync: &SyncDef,
    opts: StartOptions,
) -> Result<RunRecord, EngineError> {
    let state = engine.runs.sync_state(&sync.name).await?;
    if state.paused {
        return Err(EngineError::Paused(sync.name.clone()));
    }
    let version = engine
        .runs
        .record_version(sync, opts.note.as_deref(), None)
        .await?;
    let run_id = opts.run_id.unwrap_or_else(new_run_id);
    let trigger = if opts.trigger.is_empty() {
        "manual"
    } else {
        &opts.trigger
    };
    let mut run = RunRecord::new(run_id, &sync.name, trigger, version.version);
    run.generation_at_plan = state.generation;
    acquire_lock(engine, &run).await?;
    tracing::info!(run_id = %run.run_id, sync = %sync.name, config_version = version.version, "run started");
    Ok(run)
}

/// Takes the lock for `run` and records it, atomically (one store write): two runs started
/// at once can never both hold it. A holder is only displaced when it is done: its run
/// ended, its approval expired, or its process is gone.
async fn acquire_lock(engine: &Engine, run: &RunRecord) -> Result<(), EngineError> {
    let sync = &run.sync;
    for _ in 0..5 {
        let holder = match engine.runs.lock_and_start(run, &engine.owner).await? {
            LockOutcome::Acquired => return Ok(()),
            LockOutcome::Held(h) => h,
        };
        let holder_run = match engine.runs.get_run(&holder.run_id).await {
            Ok(r) => Some(r),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if !holder_is_done(engine, &holder, holder_run.as_ref(), &run.run_id).await? {
            return Err(EngineError::Locked {
                sync: sync.to_string(),
                status: holder_run
                    .map(|r| r.status.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into()),
                holder: Box::new(holder),
            });
        }
        if engine
            .runs
            .take_over_and_start(&holder.run_id, run, &engine.owner)
            .await?
        {
            return Ok(());
        }
    }
    Err(EngineError::Store(StoreError::Conflict(format!(
        "could not take the lock of sync `{sync}` after several attempts"
    ))))
}

/// Whether the lock's holder no longer needs it; an interrupted holder's run is ended.
async fn holder_is_done(
    engine: &Engine,
    holder: &LockInfo,
    holder_run: Option<&RunRecord>,
    run_id: &str,
) -> Result<bool, EngineError> {
    Ok(match holder_run {
        // A lock without its run: left by a version that wrote them apart. Free only once
        // its holder is gone, never while it is fresh.
        None => owner_is_gone(holder),
        Some(r) if r.status.is_terminal() => true,
        Some(r) if r.status == RunStatus::AwaitingApproval => {
            expire_if_due(engine, r.clone()).await?
        }
        Some(r) if owner_is_gone(holder) => {
            let mut r = r.clone();
            r.error = Some(format!(
                "interrupted: its process ({}) stopped before the run ended; \
                 run {run_id} took over and plans again from the key set",
                holder.owner
            ));
            r.error_name = Some("Retl.Interrupted".into());
            r.finish(RunStatus::Failed);
            engine.runs.put_run(&r).await?;
            tracing::warn!(stale_run = %r.run_id, "took over the lock of an interrupted run");
            true
        }
        Some(_) => false,
    })
}

/// Records a sign of life of `run_id` on its sync's lock. A run that no longer holds it
/// (another run took it over) must stop writing: `Retl.LockLost`.
pub async fn keep_lock(engine: &Engine, sync: &str, run_id: &str) -> Result<(), EngineError> {
    if engine.runs.heartbeat(sync, run_id).await? {
        return Ok(());
    }
    let holder = engine.runs.lock_holder(sync).await?;
    tracing::warn!(run_id, sync, "the run lost its lock and stops");
    Err(EngineError::LockLost {
        sync: sync.to_string(),
        run_id: run_id.to_string(),
        holder: holder.map_or_else(|| "none".to_string(), |h| h.run_id),
    })
}

/// Ends a run: records its final state, releases the lock, and evaluates the sync's alert
/// rules (`engine/alerts/`).
pub async fn finish_run(
    engine: &Engine,
    run: &mut RunRecord,
    status: RunStatus,
) -> Result<(), EngineError> {
    run.finish(status);
    engine.runs.put_run(run).await?;
    let mut state = engine.runs.sync_state(&run.sync).await?;
    state.last_run_id = Some(run.run_id.clone());
    if matches!(
        status,
        RunStatus::Planned | RunStatus::Aborted | RunStatus::Rejected | RunStatus::Expired
    ) {
        // The plan was never applied: none of its deletes can have left the key set.
        if let Some(c) = state.keyset_counts.as_mut() {
            c.pending_removals = 0;
        }
    }
    engine.runs.put_sync_state(&state).await?;
    engine.runs.unlock(&run.sync, &run.run_id).await?;
    tracing::info!(run_id = %run.run_id, sync = %run.sync, status = status.as_str(), "run ended");
    super::alerts::after_run(engine, run).await;
    Ok(())
}

/// Expires a run whose approval request timed out. Returns true when it did.
pub async fn expire_if_due(engine: &Engine, mut run: RunRecord) -> Result<bool, EngineError> {
    let due = run.status == RunStatus::AwaitingApproval
        && run
            .approval
            .as_ref()
            .and_then(|a| a.expires_at)
            .is_some_and(|t| t <= Utc::now());
    if due {
        run.error = Some("the approval request expired before anyone approved it".into());
        finish_run(engine, &mut run, RunStatus::Expired).await?;
    }
    Ok(due)
}

/// Why a planned run can no longer be applied as planned, if it cannot.
pub async fn plan_is_stale(
    engine: &Engine,
    run: &RunRecord,
    sync: &SyncDef,
) -> Result<Option<String>, EngineError> {
    let state = engine.runs.sync_state(&run.sync).await?;
    if state.generation != run.generation_at_plan {
        return Ok(Some(format!(
            "another run wrote to the destination after this plan was made (key-set generation {} -> {})",
            run.generation_at_plan, state.generation
        )));
    }
    let current = engine.runs.record_version(sync, None, None).await?;
    if current.version != run.config_version {
        return Ok(Some(format!(
            "the sync definition changed since the plan (version {} -> {})",
            run.config_version, current.version
        )));
    }
    Ok(None)
}

async fn awaiting(engine: &Engine, run_id: &str) -> Result<RunRecord, EngineError> {
    let run = engine.runs.get_run(run_id).await?;
    if run.status != RunStatus::AwaitingApproval {
        return Err(EngineError::NotAwaitingApproval {
            run_id: run_id.to_string(),
            status: run.status,
        });
    }
    if expire_if_due(engine, run.clone()).await? {
        return Err(EngineError::NotAwaitingApproval {
            run_id: run_id.to_string(),
            status: RunStatus::Expired,
        });
    }
    Ok(run)
}

/// Records an approval: checks the plan is still current, then marks the run running again.
/// The caller applies the plan (in process, or by resuming the state machine).
pub async fn approve(
    engine: &Engine,
    sync: &SyncDef,
    run_id: &str,
    by: &str,
    note: Option<&str>,
) -> Result<RunRecord, EngineError> {
    let mut run = awaiting(engine, run_id).await?;
    if let Some(reason) = plan_is_stale(engine, &run, sync).await? {
        run.error = Some(format!("not applied: the plan is stale: {reason}"));
        finish_run(engine, &mut run, RunStatus::Expired).await?;
        return Err(EngineError::StalePlan {
            run_id: run_id.to_string(),
            reason,
        });
    }
    let approval = run.approval.get_or_insert_with(Approval::default);
    approval.decision = Some("approve".into());
    approval.decided_by = Some(by.to_string());
    approval.note = note.map(str::to_string);
    approval.decided_at = Some(Utc::now());
    run.status = RunStatus::Running;
    run.updated_at = Utc::now();
    engine.runs.put_run(&run).await?;
    keep_lock(engine, &run.sync, &run.run_id).await?;
    Ok(run)
}

/// Records a rejection and ends the run without writing anything.
pub async fn reject(
    engine: &Engine,
    run_id: &str,
    by: &str,
    note: Option<&str>,
) -> Result<RunRecord, EngineError> {
    let mut run = awaiting(engine, run_id).await?;
    let approval = run.approval.get_or_insert_with(Approval::default);
    approval.decision = Some("reject".into());
    approval.decided_by = Some(by.to_string());
    approval.note = note.map(str::to_string);
    approval.decided_at = Some(Utc::now());
    run.error = Some(format!(
        "rejected by {by}{}",
        note.map(|n| format!(": {n}")).unwrap_or_default()
    ));
    finish_run(engine, &mut run, RunStatus::Rejected).await?;
    Ok(run)
}

/// Stops a planned run for approval: records the request, keeps the lock, and notifies the
/// approvers with the request's text, which summarising the plan wrote (written now for a
/// plan summarised without it). Returns that text.
pub async fn request_approval(
    engine: &Engine,
    run: &mut RunRecord,
    sync: &SyncDef,
    manifest: &PlanManifest,
    reason: &str,
) -> Result<String, EngineError> {
    let keys = RunKeys::new(&run.run_id);
    let message = match engine.objects.get(&keys.approval_message()).await {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(StoreError::NotFound(_)) => {
            write_approval_request(engine, sync, manifest, reason).await?
        }
        Err(e) => return Err(e.into()),
    };
    let now = Utc::now();
    let hours = sync.safety.approval_timeout_hours;
    let automation_execution_id = run
        .approval
        .as_ref()
        .and_then(|a| a.automation_execution_id.clone());
    run.approval = Some(Approval {
        reason: reason.to_string(),
        requested_at: Some(now),
        expires_at: Some(now + ChronoDuration::seconds((hours * 3600.0) as i64)),
        automation_execution_id,
        ..Approval::default()
    });
    run.status = RunStatus::AwaitingApproval;
    run.updated_at = now;
    engine.runs.put_run(run).await?;
    let note = Notification::ApprovalNeeded {
        run_id: run.run_id.clone(),
        sync: run.sync.clone(),
        counts: run.planned.clone(),
        reason: reason.to_string(),
        sample: manifest.delete_sample.clone(),
        preview: engine.objects.location(&keys.deletion_preview()),
        message: message.clone(),
    };
    if let Err(e) = engine.notifier.notify(&note).await {
        tracing::warn!(error = %e, "could not send the approval request");
    }
    Ok(message)
}

/// Whether `run` holds a valid approval: decided `approve`, by someone named, after it was
/// requested. Apply checks it before writing anything of a plan that needed approval.
pub fn approval_holds(run: &RunRecord) -> Result<(), EngineError> {
    let reason = match &run.approval {
        None => "the run records no approval request".to_string(),
        Some(a) => match (a.decision.as_deref(), a.decided_by.as_deref(), a.decided_at) {
            (Some("approve"), Some(by), Some(at))
                if !by.trim().is_empty() && a.requested_at.is_some_and(|r| at >= r) =>
            {
                return Ok(())
            }
            (Some("approve"), ..) => {
                "its approval names no approver, or predates the request".to_string()
            }
            (Some(other), ..) => format!("it was decided `{other}`"),
            (None, ..) => "nobody approved it".to_string(),
        },
    };
    Err(EngineError::NotApproved {
        run_id: run.run_id.clone(),
        reason,
    })
}
