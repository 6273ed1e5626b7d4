//! `retl approve` and `retl reject`, on any host.

use anyhow::anyhow;
use retl_shared::engine::EngineError;
use retl_shared::ports::RunStatus;

use super::{print_run, show_progress};
use crate::args::{Cli, Decision};
use crate::exit::{exit_for, Exit};
use crate::host;
use crate::out;

/// Who decides: `--by`, else the login name, else the account running retl; a decision is
/// never anonymous.
fn decider(d: &Decision) -> anyhow::Result<String> {
    d.by.clone()
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|s| !s.trim().is_empty())
        .or_else(account_name)
        .ok_or_else(|| anyhow!("say who decides with --by NAME (no login name is known)"))
}

/// The name of the account this process runs as.
fn account_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; the name is copied
    // out at once, before any other call could reuse that storage.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*pw).pw_name);
        Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
    }
}

/// Approves (applying exactly the reviewed plan) or rejects a run awaiting approval.
pub async fn decide(cli: &Cli, d: &Decision, approve: bool) -> anyhow::Result<Exit> {
    let host = host::open(cli, show_progress(cli)).await?;
    let run = host
        .reader()
        .await?
        .runs
        .get_run(&d.run)
        .await
        .map_err(EngineError::from)?;
    let def = host.sync(&run.sync).await?;
    let by = decider(d)?;
    let run = host
        .decide(&def, &d.run, approve, &by, d.reason.as_deref())
        .await?;
    if cli.aws && !cli.json {
        let by = run
            .approval
            .as_ref()
            .and_then(|a| a.decided_by.clone())
            .unwrap_or_default();
        out::line(&match (approve, run.status) {
            (_, RunStatus::AwaitingApproval) => format!(
                "Your decision on run {} is recorded in Systems Manager; the run still waits \
                 (more approvals are needed, or the decision is on its way).",
                run.run_id
            ),
            (true, _) => format!(
                "Approved run {} as {by}: the execution resumes and applies its plan.",
                run.run_id
            ),
            (false, _) => format!(
                "Rejected run {} as {by}: it ended without writing.",
                run.run_id
            ),
        });
        return Ok(Exit::Ok);
    }
    print_run(cli, &run);
    Ok(if approve { exit_for(&run) } else { Exit::Ok })
}
