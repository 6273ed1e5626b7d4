//! One function per command. Each returns the process exit code.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use retl_shared::config::{self, load_project, SyncDef};
use retl_shared::engine::{
    self, apply_approved, deletion_preview, read_manifest, read_record_log, run_local, EngineError,
    LocalRunOptions,
};
use retl_shared::ports::{RunRecord, RunStatus};
use serde_json::json;

use crate::args::{Cli, Command, Decision, RunsCommand};
use crate::context::{open, Context};
use crate::render;

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Succeeded.
    Ok = 0,
    /// The run failed (or partially failed).
    Failed = 1,
    /// Usage or config error.
    Usage = 2,
    /// Stopped by a safety rule (awaiting approval, aborted).
    Safety = 3,
    /// Not started: the sync is paused or another run holds its lock.
    Refused = 4,
}

/// Exit code for a run's final status.
pub fn exit_for(run: &RunRecord) -> Exit {
    match run.status {
        RunStatus::Succeeded | RunStatus::Planned | RunStatus::Rejected => Exit::Ok,
        RunStatus::AwaitingApproval | RunStatus::Aborted => Exit::Safety,
        RunStatus::Failed
            if matches!(
                run.error_name.as_deref(),
                Some("Retl.InvalidSync" | "Retl.ConfigError" | "Retl.DestinationInvalid")
            ) =>
        {
            Exit::Usage
        }
        _ => Exit::Failed,
    }
}

/// Exit code for an engine error that prevented a run from starting or a decision.
pub fn exit_for_error(e: &anyhow::Error) -> Exit {
    if crate::context::is_config_error(e) {
        return Exit::Usage;
    }
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Locked { .. } | EngineError::Paused(_)) => Exit::Refused,
        Some(
            EngineError::Config(_)
            | EngineError::Invalid(_)
            | EngineError::NotAwaitingApproval { .. },
        ) => Exit::Usage,
        Some(EngineError::StalePlan { .. }) => Exit::Safety,
        _ => Exit::Failed,
    }
}

/// Prints a run as text or JSON.
pub fn print_run(cli: &Cli, run: &RunRecord) {
    if cli.json {
        println!("{}", render::run_json(run));
    } else {
        print!("{}", render::run_text(run));
    }
}

fn show_progress(cli: &Cli) -> bool {
    !cli.json && std::io::stderr().is_terminal()
}

/// Runs the parsed command.
pub async fn dispatch(cli: &Cli) -> anyhow::Result<Exit> {
    if cli.aws {
        return dispatch_aws(cli).await;
    }
    match &cli.command {
        Command::Schema { project_file } => {
            let schema = if *project_file {
                config::project_schema()
            } else {
                config::sync_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(Exit::Ok)
        }
        Command::Validate => validate(cli),
        Command::Preview { sync, limit } => {
            let ctx = open(cli.project.clone(), false)?;
            let def = ctx.project.sync(sync)?;
            let p = engine::preview(&ctx.engine, def, *limit).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                print!("{}", render::preview_text(sync, &p));
            }
            Ok(Exit::Ok)
        }
        Command::Plan {
            sync,
            show_deletes,
            full_resync,
        } => {
            let ctx = open(cli.project.clone(), show_progress(cli))?;
            let def = ctx.project.sync(sync)?;
            let opts = LocalRunOptions {
                dry_run: true,
                full_resync: *full_resync,
                trigger: "plan".into(),
                ..LocalRunOptions::default()
            };
            let run = run_local(&ctx.engine, def, opts).await?;
            let deletes = if *show_deletes && run.plan.is_some() {
                let manifest = read_manifest(&ctx.engine, &run).await?;
                Some(deletion_preview(&ctx.engine, def, &manifest, 1000).await?)
            } else {
                None
            };
            if cli.json {
                let mut v = render::run_json(&run);
                if let Some(d) = &deletes {
                    v["deletes_preview"] = serde_json::to_value(d)?;
                }
                println!("{v}");
            } else {
                print!("{}", render::run_text(&run));
                if let Some(d) = &deletes {
                    print!("{}", render::deletes_text(d));
                }
            }
            Ok(match run.status {
                RunStatus::Planned => Exit::Ok,
                _ => exit_for(&run),
            })
        }
        Command::Deploy { .. } => dispatch_aws(cli).await,
        Command::Run {
            sync,
            full_resync,
            note,
            ..
        } => {
            let ctx = open(cli.project.clone(), show_progress(cli))?;
            let def = ctx.project.sync(sync)?;
            let opts = LocalRunOptions {
                full_resync: *full_resync,
                trigger: "manual".into(),
                note: note.clone(),
                ..LocalRunOptions::default()
            };
            let run = run_local(&ctx.engine, def, opts).await?;
            print_run(cli, &run);
            Ok(exit_for(&run))
        }
        Command::Approve(d) => approve(cli, d).await,
        Command::Reject(d) => {
            let ctx = open(cli.project.clone(), false)?;
            let run = engine::reject(&ctx.engine, &d.run, &decider(d), d.reason.as_deref()).await?;
            print_run(cli, &run);
            Ok(Exit::Ok)
        }
        Command::Runs(args) => {
            let ctx = open(cli.project.clone(), false)?;
            match &args.show {
                Some(RunsCommand::Show { run }) => {
                    let r = ctx
                        .engine
                        .runs
                        .get_run(run)
                        .await
                        .map_err(EngineError::from)?;
                    let deletes = match (&r.plan, ctx.project.sync(&r.sync)) {
                        (Some(_), Ok(def)) if r.planned.deletes > 0 => {
                            let manifest = read_manifest(&ctx.engine, &r).await?;
                            Some(deletion_preview(&ctx.engine, def, &manifest, 20).await?)
                        }
                        _ => None,
                    };
                    if cli.json {
                        let mut v = render::run_json(&r);
                        if let Some(d) = &deletes {
                            v["deletes_preview"] = serde_json::to_value(d)?;
                        }
                        println!("{v}");
                    } else {
                        print!("{}", render::run_detail(&r));
                        if let Some(d) = &deletes {
                            print!("{}", render::deletes_text(d));
                        }
                    }
                }
                None => {
                    if let Some(s) = &args.sync {
                        ctx.project.sync(s)?;
                    }
                    let runs = ctx
                        .engine
                        .runs
                        .list_runs(args.sync.as_deref(), args.limit)
                        .await
                        .map_err(EngineError::from)?;
                    if cli.json {
                        let v: Vec<_> = runs.iter().map(render::run_json).collect();
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        print!("{}", render::runs_table(&runs));
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Command::Errors { run, limit } => {
            let ctx = open(cli.project.clone(), false)?;
            ctx.engine
                .runs
                .get_run(run)
                .await
                .map_err(EngineError::from)?;
            let entries = read_record_log(ctx.engine.objects.as_ref(), run).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&entries)?);
            } else {
                print!("{}", render::errors_text(run, &entries, *limit));
            }
            Ok(Exit::Ok)
        }
        Command::Retry { sync, run } => retry(cli, sync, run.as_deref()).await,
        Command::Pause { sync } => set_paused(cli, sync, true).await,
        Command::Resume { sync } => set_paused(cli, sync, false).await,
        Command::Clone {
            sync,
            new_name,
            object,
            connection,
        } => clone(
            cli,
            sync,
            new_name,
            object.as_deref(),
            connection.as_deref(),
        ),
        Command::Save { sync, message } => {
            let ctx = open(cli.project.clone(), false)?;
            let defs: Vec<&SyncDef> = match sync {
                Some(s) => vec![ctx.project.sync(s)?],
                None => ctx.project.syncs.iter().collect(),
            };
            for def in defs {
                let v = ctx
                    .engine
                    .runs
                    .record_version(def, Some(message))
                    .await
                    .map_err(EngineError::from)?;
                println!("{}: saved as v{} ({})", def.name, v.version, message);
            }
            Ok(Exit::Ok)
        }
        Command::History { sync } => {
            let ctx = open(cli.project.clone(), false)?;
            let def = ctx.project.sync(sync)?;
            let versions = ctx
                .engine
                .runs
                .versions(&def.name)
                .await
                .map_err(EngineError::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&versions)?);
            } else {
                print!("{}", render::history_text(&versions));
            }
            Ok(Exit::Ok)
        }
    }
}

#[cfg(feature = "aws")]
async fn dispatch_aws(cli: &Cli) -> anyhow::Result<Exit> {
    crate::aws::dispatch(cli).await
}

#[cfg(not(feature = "aws"))]
async fn dispatch_aws(_cli: &Cli) -> anyhow::Result<Exit> {
    Err(anyhow!(
        "this retl was built without AWS support; rebuild with the `aws` feature"
    ))
}

fn validate(cli: &Cli) -> anyhow::Result<Exit> {
    let dir = match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    match load_project(&dir) {
        Ok(p) => {
            if cli.json {
                let syncs: Vec<_> = p
                    .syncs
                    .iter()
                    .map(|s| json!({"name": s.name, "mode": s.mode, "destination": s.destination_connection, "object": s.object}))
                    .collect();
                println!("{}", json!({"valid": true, "syncs": syncs}));
            } else {
                println!(
                    "OK: {} connection(s), {} sync(s)",
                    p.connections.len(),
                    p.syncs.len()
                );
                for s in &p.syncs {
                    println!(
                        "  {:<24} {:<12} -> {} {}",
                        s.name, s.mode, s.destination_connection, s.object
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Err(config::ConfigError::Invalid(d)) if cli.json => {
            println!("{}", json!({"valid": false, "errors": d.0}));
            Ok(Exit::Usage)
        }
        Err(e) => Err(e.into()),
    }
}

fn decider(d: &Decision) -> String {
    d.by.clone().unwrap_or_else(|| "unknown".into())
}

async fn approve(cli: &Cli, d: &Decision) -> anyhow::Result<Exit> {
    let ctx: Context = open(cli.project.clone(), show_progress(cli))?;
    let run = ctx
        .engine
        .runs
        .get_run(&d.run)
        .await
        .map_err(EngineError::from)?;
    let def = ctx.project.sync(&run.sync)?;
    let mut run =
        engine::approve(&ctx.engine, def, &d.run, &decider(d), d.reason.as_deref()).await?;
    apply_approved(&ctx.engine, &mut run, def).await?;
    print_run(cli, &run);
    Ok(exit_for(&run))
}

async fn retry(cli: &Cli, sync: &str, run: Option<&str>) -> anyhow::Result<Exit> {
    let ctx = open(cli.project.clone(), show_progress(cli))?;
    let def = ctx.project.sync(sync)?;
    let source = match run {
        Some(id) => ctx
            .engine
            .runs
            .get_run(id)
            .await
            .map_err(EngineError::from)?,
        None => ctx
            .engine
            .runs
            .list_runs(Some(&def.name), 100)
            .await
            .map_err(EngineError::from)?
            .into_iter()
            .find(|r| {
                matches!(
                    r.status,
                    RunStatus::Succeeded | RunStatus::PartiallyFailed | RunStatus::Failed
                )
            })
            .ok_or_else(|| anyhow!("`{sync}` has no applied run yet; nothing to retry"))?,
    };
    if source.counts.rejected == 0 {
        println!(
            "The latest run of {sync} ({}) rejected no records; nothing to retry.",
            source.run_id
        );
        return Ok(Exit::Ok);
    }
    // Rows rejected for their key (extract, plan) can only be fixed in the model.
    let keys: std::collections::BTreeSet<String> =
        read_record_log(ctx.engine.objects.as_ref(), &source.run_id)
            .await?
            .into_iter()
            .filter(|e| e.stage != "extract" && e.stage != "plan")
            .filter_map(|e| e.key)
            .collect();
    if keys.is_empty() {
        println!(
            "Run {} has no records rejected by the destination; rows rejected for their key must be fixed in the model.",
            source.run_id
        );
        return Ok(Exit::Ok);
    }
    if !cli.json {
        println!(
            "Retrying {} record(s) rejected in run {}",
            keys.len(),
            source.run_id
        );
    }
    let opts = LocalRunOptions {
        trigger: "retry".into(),
        only_keys: Some(keys),
        ..LocalRunOptions::default()
    };
    let run = run_local(&ctx.engine, def, opts).await?;
    print_run(cli, &run);
    Ok(exit_for(&run))
}

async fn set_paused(cli: &Cli, sync: &str, paused: bool) -> anyhow::Result<Exit> {
    let ctx = open(cli.project.clone(), false)?;
    let def = ctx.project.sync(sync)?;
    let mut state = ctx
        .engine
        .runs
        .sync_state(&def.name)
        .await
        .map_err(EngineError::from)?;
    state.paused = paused;
    ctx.engine
        .runs
        .put_sync_state(&state)
        .await
        .map_err(EngineError::from)?;
    println!(
        "{}: {}",
        def.name,
        if paused {
            "paused (runs are refused until `retl resume`)"
        } else {
            "resumed"
        }
    );
    Ok(Exit::Ok)
}

/// The YAML of a sync definition, in the shape users write.
fn sync_yaml(def: &SyncDef) -> anyhow::Result<String> {
    let pk = if def.primary_key.len() == 1 {
        json!(def.primary_key[0])
    } else {
        json!(def.primary_key)
    };
    let mut v = json!({
        "name": def.name,
        "source": {"connection": def.source_connection, "sql": def.sql},
        "primary_key": pk,
        "destination": {"connection": def.destination_connection, "object": def.object},
        "mapping": def.mapping,
        "mode": def.mode,
        "delete_scope": def.delete_scope,
        "safety": def.safety,
        "shards": def.shards,
    });
    if let Some(d) = &def.description {
        v["description"] = json!(d);
    }
    if let Some(s) = &def.schedule {
        v["schedule"] = json!(s);
    }
    if !def.triggers.is_empty() {
        v["triggers"] = serde_json::to_value(&def.triggers)?;
    }
    config::to_yaml(&v).map_err(|e| anyhow!("cannot write YAML: {e}"))
}

fn clone(
    cli: &Cli,
    sync: &str,
    new_name: &str,
    object: Option<&str>,
    connection: Option<&str>,
) -> anyhow::Result<Exit> {
    let ctx = open(cli.project.clone(), false)?;
    let def = ctx.project.sync(sync)?;
    if ctx.project.syncs.iter().any(|s| s.name == new_name) {
        return Err(anyhow!(
            "a sync named `{new_name}` already exists; choose another name"
        ));
    }
    let mut copy = def.clone();
    copy.name = new_name.to_string();
    copy.schedule = None;
    copy.triggers.clear();
    if let Some(o) = object {
        copy.object = o.to_string();
    }
    if let Some(c) = connection {
        copy.destination_connection = c.to_string();
    }
    let dir = ctx.project.root.join("syncs");
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join(format!("{new_name}.yaml"));
    if path.exists() {
        return Err(anyhow!("{} already exists", path.display()));
    }
    let header = format!(
        "# Cloned from `{sync}` on {}. Schedules and triggers are not copied.\n",
        chrono::Utc::now().format("%Y-%m-%d")
    );
    std::fs::write(&path, header + &sync_yaml(&copy)?)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) = load_project(&ctx.project.root) {
        let _ = std::fs::remove_file(&path);
        return Err(anyhow!(
            "the clone would be invalid, so it was not written:\n{e}"
        ));
    }
    println!("{} cloned to {} ({})", sync, new_name, path.display());
    Ok(Exit::Ok)
}
