//! `retl deploy --aws`: the project's syncs onto the stack (definitions, schedules, upstream
//! triggers).

use retl_shared::aws_host::deploy as deploy_project;
use retl_shared::config::load_project;

use crate::args::Cli;
use crate::exit::Exit;
use crate::host::aws::StackHost;
use crate::out;

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Deploys every sync of the project to the stack named by `--stack`.
pub async fn deploy(cli: &Cli, message: Option<&str>) -> anyhow::Result<Exit> {
    let dir = match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let project = load_project(&dir)?;
    let host = StackHost::connect(&cli.stack).await?;
    let report = deploy_project(&host.aws, &project, message, &host.caller).await?;
    if cli.json {
        out::line(&serde_json::to_string(&report)?);
        return Ok(Exit::Ok);
    }
    out::line(&format!(
        "Deployed to stack {}: {}",
        cli.stack,
        report.deployed.join(", ")
    ));
    out::line(&format!("  schedules: {}", listed(&report.schedules)));
    out::line(&format!(
        "  upstream trigger rules: {}",
        listed(&report.rules)
    ));
    if !report.granted.is_empty() {
        out::line(&format!(
            "  deleting modes granted (as {}): {}",
            host.caller,
            report.granted.join(", ")
        ));
    }
    if !report.removed.is_empty() {
        out::line(&format!("  removed: {}", report.removed.join(", ")));
    }
    Ok(Exit::Ok)
}
