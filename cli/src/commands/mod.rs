//! The commands, each written once. Commands about runs act on a [`Host`](crate::host::Host)
//! (the local state, or a stack with `--aws`); commands about the project's files act on the
//! project.

mod decide;
#[cfg(feature = "aws")]
mod deploy;
mod project;
mod runs;
mod state;

use std::io::IsTerminal;

use anyhow::anyhow;

use crate::args::{Cli, Command};
use crate::exit::Exit;
use crate::render;
use retl_shared::ports::RunRecord;

/// Prints a run as text or JSON.
pub fn print_run(cli: &Cli, run: &RunRecord) {
    if cli.json {
        crate::out::line(&render::run_json(run).to_string());
    } else {
        crate::out::text(&render::run_text(run));
    }
}

/// Whether progress bars go to the terminal.
pub fn show_progress(cli: &Cli) -> bool {
    !cli.json && std::io::stderr().is_terminal()
}

/// Commands that read or change the project's files; `--aws` does not apply to them.
fn local_only(cli: &Cli, name: &str) -> anyhow::Result<()> {
    if cli.aws {
        return Err(anyhow!(
            "`{name}` works on the local project only; run it without --aws"
        ));
    }
    Ok(())
}

/// Runs the parsed command.
pub async fn dispatch(cli: &Cli) -> anyhow::Result<Exit> {
    match &cli.command {
        Command::Schema {
            project_file,
            event,
        } => project::schema(*project_file, event.as_deref()),
        Command::Validate => project::validate(cli),
        Command::Preview { sync, limit } => {
            local_only(cli, "preview")?;
            project::preview(cli, sync, *limit).await
        }
        Command::Plan {
            sync,
            show_deletes,
            full_resync,
        } => {
            local_only(cli, "plan")?;
            project::plan(cli, sync, *show_deletes, *full_resync).await
        }
        Command::Clone {
            sync,
            new_name,
            object,
            connection,
        } => {
            local_only(cli, "clone")?;
            project::clone(
                cli,
                sync,
                new_name,
                object.as_deref(),
                connection.as_deref(),
            )
        }
        Command::Save { sync, message } => {
            local_only(cli, "save")?;
            project::save(cli, sync.as_deref(), message).await
        }
        Command::Deploy { message } => deploy(cli, message.as_deref()).await,
        Command::Run {
            sync,
            wait,
            full_resync,
            note,
        } => runs::run(cli, sync, *wait, *full_resync, note.clone()).await,
        Command::Verify { sync, repair } => state::verify(cli, sync, *repair).await,
        Command::Approve(d) => decide::decide(cli, d, true).await,
        Command::Reject(d) => decide::decide(cli, d, false).await,
        Command::Runs(args) => runs::runs(cli, args).await,
        Command::Errors { run, limit } => runs::errors(cli, run, *limit).await,
        Command::Retry { sync, run } => runs::retry(cli, sync, run.as_deref()).await,
        Command::Pause { sync } => state::set_paused(cli, sync, true).await,
        Command::Resume { sync } => state::set_paused(cli, sync, false).await,
        Command::History { sync } => state::history(cli, sync).await,
    }
}

#[cfg(feature = "aws")]
async fn deploy(cli: &Cli, message: Option<&str>) -> anyhow::Result<Exit> {
    deploy::deploy(cli, message).await
}

#[cfg(not(feature = "aws"))]
async fn deploy(_cli: &Cli, _message: Option<&str>) -> anyhow::Result<Exit> {
    Err(anyhow!(
        "this retl was built without AWS support; rebuild with the `aws` feature"
    ))
}
