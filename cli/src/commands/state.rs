//! A sync's lasting state on any host: pause, resume, config history.

use retl_shared::engine::EngineError;
use serde_json::json;

use crate::args::Cli;
use crate::exit::Exit;
use crate::{host, out, render};

/// `retl pause SYNC` / `retl resume SYNC`.
pub async fn set_paused(cli: &Cli, sync: &str, paused: bool) -> anyhow::Result<Exit> {
    let host = host::open(cli, false).await?;
    let def = host.sync(sync).await?;
    let runs = host.reader().await?.runs;
    let mut state = runs
        .sync_state(&def.name)
        .await
        .map_err(EngineError::from)?;
    state.paused = paused;
    runs.put_sync_state(&state)
        .await
        .map_err(EngineError::from)?;
    if cli.json {
        out::line(&json!({"sync": def.name, "paused": paused}).to_string());
    } else {
        out::line(&format!(
            "{} on {}: {}",
            def.name,
            host.describe(),
            if paused {
                "paused (runs are refused until `retl resume`)"
            } else {
                "resumed"
            }
        ));
    }
    Ok(Exit::Ok)
}

/// `retl history SYNC`: config versions with their notes and what changed.
pub async fn history(cli: &Cli, sync: &str) -> anyhow::Result<Exit> {
    let host = host::open(cli, false).await?;
    if !cli.aws {
        host.sync(sync).await?;
    }
    let versions = host
        .reader()
        .await?
        .runs
        .versions(sync)
        .await
        .map_err(EngineError::from)?;
    if cli.json {
        out::line(&json!({"sync": sync, "versions": versions}).to_string());
    } else {
        out::text(&render::history_text(&versions));
    }
    Ok(Exit::Ok)
}

/// `retl verify SYNC [--repair]`: the destination against the key set.
pub async fn verify(cli: &Cli, sync: &str, repair: bool) -> anyhow::Result<Exit> {
    let host = host::open(cli, false).await?;
    let def = host.sync(sync).await?;
    let engine = host.engine(&def).await?;
    if repair {
        // A run applying now would write the key set under the repair.
        if let Some(holder) = engine
            .runs
            .lock_holder(&def.name)
            .await
            .map_err(EngineError::from)?
        {
            return Err(EngineError::Locked {
                sync: def.name.clone(),
                status: "running".into(),
                holder: Box::new(holder),
            }
            .into());
        }
    }
    let report = retl_shared::engine::verify(&engine, &def, repair).await?;
    if cli.json {
        out::line(
            &json!({"sync": def.name, "matches": report.matches(), "report": report}).to_string(),
        );
    } else {
        out::text(&render::verify_text(&def, &report));
    }
    Ok(if report.matches() || report.repaired {
        Exit::Ok
    } else {
        Exit::Failed
    })
}
