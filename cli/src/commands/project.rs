//! Commands on the project's files and the local state only: schema, validate, preview, plan,
//! clone, save.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use retl_shared::config::{self, load_project, SyncDef};
use retl_shared::engine::{
    self, deletion_preview, discard_dry_run, read_manifest, run_local, EngineError, LocalRunOptions,
};
use retl_shared::ports::RunStatus;
use serde_json::json;

use super::show_progress;
use crate::args::Cli;
use crate::exit::{exit_for, Exit};
use crate::host::LocalHost;
use crate::{out, render};

/// `retl schema [--project-file | --event NAME]`.
pub fn schema(project_file: bool, event: Option<&str>) -> anyhow::Result<Exit> {
    let schema = match event {
        Some(name) => event_schema(name)?,
        None if project_file => config::project_schema(),
        None => config::sync_schema(),
    };
    out::line(&serde_json::to_string_pretty(&schema)?);
    Ok(Exit::Ok)
}

/// The schema of the EventBridge event `name` (clap only lets known names through).
#[cfg(feature = "aws")]
fn event_schema(name: &str) -> anyhow::Result<serde_json::Value> {
    retl_shared::aws_host::event_schemas::event_schema(name).ok_or_else(|| {
        anyhow::anyhow!(
            "no event named `{name}`; the events are {}",
            retl_shared::aws_host::event_schemas::EVENTS.join(", ")
        )
    })
}

#[cfg(not(feature = "aws"))]
fn event_schema(name: &str) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!("event `{name}`: this retl was built without the AWS bundle (feature `aws`)")
}

fn project_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    Ok(match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    })
}

/// `retl validate`: every problem at once, each with its position.
pub fn validate(cli: &Cli) -> anyhow::Result<Exit> {
    match load_project(&project_dir(cli)?) {
        Ok(p) => {
            if cli.json {
                let syncs: Vec<_> = p
                    .syncs
                    .iter()
                    .map(|s| json!({"name": s.name, "mode": s.mode, "destination": s.destination_connection, "object": s.object}))
                    .collect();
                out::line(&json!({"valid": true, "syncs": syncs}).to_string());
            } else {
                out::line(&format!(
                    "OK: {}, {}",
                    render::count(p.connections.len() as u64, "connection"),
                    render::count(p.syncs.len() as u64, "sync")
                ));
                for s in &p.syncs {
                    out::line(&format!(
                        "  {:<24} {:<12} -> {} {}",
                        s.name, s.mode, s.destination_connection, s.object
                    ));
                }
            }
            Ok(Exit::Ok)
        }
        Err(config::ConfigError::Invalid(d)) if cli.json => {
            out::line(&json!({"valid": false, "errors": d.0}).to_string());
            Ok(Exit::Usage)
        }
        Err(e) => Err(e.into()),
    }
}

/// `retl preview SYNC`: row count, sample rows and key problems.
pub async fn preview(cli: &Cli, sync: &str, limit: usize) -> anyhow::Result<Exit> {
    let host = LocalHost::open(cli.project.clone(), false)?;
    let def = host.project.sync(sync)?;
    let p = engine::preview(&host.engine, def, limit).await?;
    if cli.json {
        out::line(&serde_json::to_string(&p)?);
    } else {
        out::text(&render::preview_text(sync, &p));
    }
    Ok(Exit::Ok)
}

/// `retl plan SYNC`: a dry run, with the records it would delete on request.
pub async fn plan(
    cli: &Cli,
    sync: &str,
    show_deletes: bool,
    full_resync: bool,
) -> anyhow::Result<Exit> {
    let host = LocalHost::open(cli.project.clone(), show_progress(cli))?;
    let def = host.project.sync(sync)?;
    let opts = LocalRunOptions {
        dry_run: true,
        full_resync,
        trigger: "plan".into(),
        ..LocalRunOptions::default()
    };
    let run = run_local(&host.engine, def, opts).await?;
    let deletes = if show_deletes && run.plan.is_some() {
        let manifest = read_manifest(&host.engine, &run).await?;
        Some(deletion_preview(&host.engine, def, &manifest, 1000).await?)
    } else {
        None
    };
    discard_dry_run(&host.engine, &run.run_id).await?;
    host.prune().await;
    if cli.json {
        let mut v = render::run_json(&run);
        if let Some(d) = &deletes {
            v["deletes_preview"] = serde_json::to_value(d)?;
        }
        out::line(&v.to_string());
    } else {
        out::text(&render::run_text(&run));
        if let Some(d) = &deletes {
            out::text(&render::deletes_text(d));
        }
    }
    Ok(match run.status {
        RunStatus::Planned => Exit::Ok,
        _ => exit_for(&run),
    })
}

/// `retl save [SYNC] -m NOTE`: new config versions with a note.
pub async fn save(cli: &Cli, sync: Option<&str>, message: &str) -> anyhow::Result<Exit> {
    let host = LocalHost::open(cli.project.clone(), false)?;
    let defs: Vec<&SyncDef> = match sync {
        Some(s) => vec![host.project.sync(s)?],
        None => host.project.syncs.iter().collect(),
    };
    let mut saved = Vec::new();
    for def in defs {
        let v = host
            .engine
            .runs
            .record_version(def, Some(message), None)
            .await
            .map_err(EngineError::from)?;
        if !cli.json {
            out::line(&format!(
                "{}: saved as v{} ({})",
                def.name, v.version, message
            ));
        }
        saved.push(json!({"sync": def.name, "version": v.version}));
    }
    if cli.json {
        out::line(&json!({"saved": saved, "note": message}).to_string());
    }
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

/// `retl clone SYNC NEW`: a copy of a sync in a new file (schedules and triggers dropped).
pub fn clone(
    cli: &Cli,
    sync: &str,
    new_name: &str,
    object: Option<&str>,
    connection: Option<&str>,
) -> anyhow::Result<Exit> {
    let project = load_project(&project_dir(cli)?)?;
    let def = project.sync(sync)?;
    if project.syncs.iter().any(|s| s.name == new_name) {
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
    let dir = project.root.join("syncs");
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
    if let Err(e) = load_project(&project.root) {
        let _ = std::fs::remove_file(&path);
        return Err(anyhow!(
            "the clone would be invalid, so it was not written:\n{e}"
        ));
    }
    out::line(&format!(
        "{} cloned to {} ({})",
        sync,
        new_name,
        path.display()
    ));
    Ok(Exit::Ok)
}
