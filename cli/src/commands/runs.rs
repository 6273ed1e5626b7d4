//! Commands about runs, on any host: run, runs, runs show, errors, retry.

use std::collections::BTreeSet;

use anyhow::anyhow;
use retl_shared::engine::{
    deletion_preview, read_manifest, read_record_log, EngineError, LoggedOutcome,
};
use retl_shared::ports::{RunRecord, RunStatus};
use serde_json::json;

use super::{print_run, show_progress};
use crate::args::{Cli, RunsArgs, RunsCommand};
use crate::exit::{exit_for, Exit};
use crate::host::{self, Host, RunRequest};
use crate::{out, render};

/// `retl run SYNC`.
pub async fn run(
    cli: &Cli,
    sync: &str,
    wait: bool,
    full_resync: bool,
    note: Option<String>,
) -> anyhow::Result<Exit> {
    let host = host::open(cli, show_progress(cli)).await?;
    let def = host.sync(sync).await?;
    let request = RunRequest {
        full_resync,
        note,
        trigger: "manual".into(),
        only_keys: None,
        wait,
    };
    let run = host.run(&def, request).await?;
    report(cli, host.as_ref(), &run);
    Ok(exit_for(&run))
}

/// Prints a run that a command started: its result, or where to follow it.
fn report(cli: &Cli, host: &dyn Host, run: &RunRecord) {
    if run.status == RunStatus::Running && !cli.json {
        out::line(&format!(
            "Started run {} of {} on {}; follow it with `retl runs show {} --aws`",
            run.run_id,
            run.sync,
            host.describe(),
            run.run_id
        ));
        return;
    }
    print_run(cli, run);
}

/// `retl runs [SYNC]` and `retl runs show RUN`.
pub async fn runs(cli: &Cli, args: &RunsArgs) -> anyhow::Result<Exit> {
    let host = host::open(cli, false).await?;
    if let Some(RunsCommand::Show { run }) = &args.show {
        return show(cli, host.as_ref(), run).await;
    }
    if let Some(s) = &args.sync {
        host.sync(s).await?;
    }
    let list = host
        .reader()
        .await?
        .runs
        .list_runs(args.sync.as_deref(), args.limit)
        .await
        .map_err(EngineError::from)?;
    if cli.json {
        let v: Vec<_> = list.iter().map(render::run_json).collect();
        out::line(&json!({ "runs": v }).to_string());
    } else {
        out::text(&render::runs_table(&list));
    }
    Ok(Exit::Ok)
}

async fn show(cli: &Cli, host: &dyn Host, run_id: &str) -> anyhow::Result<Exit> {
    let run = host
        .reader()
        .await?
        .runs
        .get_run(run_id)
        .await
        .map_err(EngineError::from)?;
    let deletes = match (&run.plan, host.sync(&run.sync).await) {
        (Some(_), Ok(def)) if run.planned.deletes > 0 => {
            let engine = host.engine(&def).await?;
            let manifest = read_manifest(&engine, &run).await?;
            Some(deletion_preview(&engine, &def, &manifest, 20).await?)
        }
        _ => None,
    };
    if cli.json {
        let mut v = render::run_json(&run);
        if let Some(d) = &deletes {
            v["deletes_preview"] = serde_json::to_value(d)?;
        }
        out::line(&v.to_string());
    } else {
        out::text(&render::run_detail(&run));
        if let Some(d) = &deletes {
            out::text(&render::deletes_text(d));
        }
    }
    Ok(Exit::Ok)
}

/// `retl errors RUN`: the run's record log.
pub async fn errors(cli: &Cli, run_id: &str, limit: usize) -> anyhow::Result<Exit> {
    let host = host::open(cli, false).await?;
    let reader = host.reader().await?;
    reader
        .runs
        .get_run(run_id)
        .await
        .map_err(EngineError::from)?;
    let entries = read_record_log(reader.objects.as_ref(), run_id).await?;
    if cli.json {
        out::line(&json!({ "run_id": run_id, "errors": entries }).to_string());
    } else {
        out::text(&render::errors_text(run_id, &entries, limit));
    }
    Ok(Exit::Ok)
}

/// The run whose rejected records `retl retry` re-sends: the one named, or the sync's latest
/// run that had rejections, unless a successful retry came after it.
async fn retry_source(
    host: &dyn Host,
    sync: &str,
    run: Option<&str>,
) -> anyhow::Result<Result<RunRecord, String>> {
    let runs = host.reader().await?.runs;
    if let Some(id) = run {
        return Ok(Ok(runs.get_run(id).await.map_err(EngineError::from)?));
    }
    let recent = runs
        .list_runs(Some(sync), 100)
        .await
        .map_err(EngineError::from)?;
    for r in recent {
        if r.trigger == "retry" && r.status == RunStatus::Succeeded {
            return Ok(Err(format!(
                "run {} already retried the rejected records of {sync}; nothing to retry",
                r.run_id
            )));
        }
        if r.counts.rejected > 0 || r.planned.rejected > 0 {
            return Ok(Ok(r));
        }
    }
    Ok(Err(format!(
        "no recent run of {sync} rejected any record; nothing to retry"
    )))
}

/// `retl retry SYNC [--run RUN]`: re-sends the records the destination rejected.
pub async fn retry(cli: &Cli, sync: &str, run: Option<&str>) -> anyhow::Result<Exit> {
    let host = host::open(cli, show_progress(cli)).await?;
    let def = host.sync(sync).await?;
    let source = match retry_source(host.as_ref(), &def.name, run).await? {
        Ok(source) => source,
        Err(why) => {
            out::line(&why);
            return Ok(Exit::Ok);
        }
    };
    let reader = host.reader().await?;
    // Rows rejected for their key (extract, plan) can only be fixed in the model.
    let keys: BTreeSet<String> = read_record_log(reader.objects.as_ref(), &source.run_id)
        .await?
        .into_iter()
        .filter(|e| e.outcome == LoggedOutcome::Rejected)
        .filter(|e| e.stage != "extract" && e.stage != "plan")
        .filter_map(|e| e.key)
        .collect();
    if keys.is_empty() {
        out::line(&format!(
            "Run {} has no records rejected by the destination; rows rejected for their key must be fixed in the model.",
            source.run_id
        ));
        return Ok(Exit::Ok);
    }
    if !cli.json {
        out::line(&format!(
            "Retrying {} rejected in run {}",
            crate::render::count(keys.len() as u64, "record"),
            source.run_id
        ));
    }
    let request = RunRequest {
        trigger: "retry".into(),
        only_keys: Some(keys),
        ..RunRequest::default()
    };
    let run = host.run(&def, request).await.map_err(|e| anyhow!(e))?;
    report(cli, host.as_ref(), &run);
    Ok(exit_for(&run))
}
