//! The `--aws` variants: the same commands against a deployed stack (DynamoDB, S3, Step
//! Functions), and `retl deploy`.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use retl_shared::aws_host::{decide, deploy, start_sync, AwsHost, StackNames, TriggerOutcome};
use retl_shared::config::load_project;
use retl_shared::engine::{read_record_log, EngineError};
use retl_shared::ports::{RunStatus, RunStore};
use serde_json::json;

use crate::args::{Cli, Command, RunsCommand};
use crate::commands::{exit_for, print_run, Exit};
use crate::render;

/// Connects to the stack named by `--stack` in the account and region of the credentials.
async fn host(cli: &Cli) -> anyhow::Result<AwsHost> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| anyhow!("no AWS region: set AWS_REGION (or a profile with a region)"))?;
    let identity = aws_sdk_sts::Client::new(&sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach AWS with these credentials: {}",
                aws_sdk_sts::error::DisplayErrorContext(e)
            )
        })?;
    let account = identity
        .account()
        .ok_or_else(|| anyhow!("STS did not return an account id"))?;
    Ok(AwsHost::new(
        &sdk,
        StackNames::derive(&cli.stack, account, &region),
    ))
}

fn project_dir(cli: &Cli) -> anyhow::Result<std::path::PathBuf> {
    Ok(match &cli.project {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    })
}

/// Runs a command against the deployed stack.
pub async fn dispatch(cli: &Cli) -> anyhow::Result<Exit> {
    let host = host(cli).await?;
    let runs = host.runs();
    match &cli.command {
        Command::Deploy { message } => {
            let project = load_project(&project_dir(cli)?)?;
            let report = deploy(&host, &project, message.as_deref()).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "Deployed to stack {}: {}",
                    cli.stack,
                    report.deployed.join(", ")
                );
                println!(
                    "  schedules: {}",
                    if report.schedules.is_empty() {
                        "none".into()
                    } else {
                        report.schedules.join(", ")
                    }
                );
                println!(
                    "  upstream trigger rules: {}",
                    if report.rules.is_empty() {
                        "none".into()
                    } else {
                        report.rules.join(", ")
                    }
                );
                if !report.removed.is_empty() {
                    println!("  removed: {}", report.removed.join(", "));
                }
            }
            Ok(Exit::Ok)
        }
        Command::Run { sync, wait, .. } => match start_sync(&host, sync, "manual").await? {
            TriggerOutcome::Skipped { reason, .. } => {
                if cli.json {
                    println!("{}", json!({"status": "skipped", "error": reason}));
                } else {
                    eprintln!("not started: {reason}");
                }
                Ok(Exit::Refused)
            }
            TriggerOutcome::Started { run_id, .. } if !*wait => {
                if cli.json {
                    println!("{}", json!({"run_id": run_id, "status": "running"}));
                } else {
                    println!("Started run {run_id} of {sync} on stack {}; follow it with `retl runs show {run_id} --aws`", cli.stack);
                }
                Ok(Exit::Ok)
            }
            TriggerOutcome::Started { run_id, .. } => {
                let run = loop {
                    let run = runs.get_run(&run_id).await.map_err(EngineError::from)?;
                    if run.status.is_terminal() || run.status == RunStatus::AwaitingApproval {
                        break run;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                };
                print_run(cli, &run);
                Ok(exit_for(&run))
            }
        },
        Command::Approve(d) | Command::Reject(d) => {
            let approve = matches!(cli.command, Command::Approve(_));
            let by = d.by.clone().unwrap_or_else(|| "cli".into());
            let run = decide(&host, &d.run, approve, &by, d.reason.as_deref()).await?;
            if cli.json {
                println!("{}", render::run_json(&run));
            } else if approve {
                println!(
                    "Approved run {}: the execution resumes and applies its plan.",
                    run.run_id
                );
            } else {
                println!("Rejected run {}: it ended without writing.", run.run_id);
            }
            Ok(Exit::Ok)
        }
        Command::Runs(args) => {
            match &args.show {
                Some(RunsCommand::Show { run }) => {
                    let r = runs.get_run(run).await.map_err(EngineError::from)?;
                    print_run(cli, &r);
                    if !cli.json {
                        print!("{}", render::run_detail(&r));
                    }
                }
                None => {
                    let list = runs
                        .list_runs(args.sync.as_deref(), args.limit)
                        .await
                        .map_err(EngineError::from)?;
                    if cli.json {
                        let v: Vec<_> = list.iter().map(render::run_json).collect();
                        println!("{}", serde_json::to_string(&v)?);
                    } else {
                        print!("{}", render::runs_table(&list));
                    }
                }
            }
            Ok(Exit::Ok)
        }
        Command::Errors { run, limit } => {
            runs.get_run(run).await.map_err(EngineError::from)?;
            let objects = host.objects();
            let entries = read_record_log(objects.as_ref(), run).await?;
            if cli.json {
                println!("{}", serde_json::to_string(&entries)?);
            } else {
                print!("{}", render::errors_text(run, &entries, *limit));
            }
            Ok(Exit::Ok)
        }
        Command::Pause { sync } | Command::Resume { sync } => {
            let paused = matches!(cli.command, Command::Pause { .. });
            host.config
                .get(sync)
                .await
                .map_err(EngineError::from)
                .context("the sync is not deployed")?;
            let mut state = runs.sync_state(sync).await.map_err(EngineError::from)?;
            state.paused = paused;
            runs.put_sync_state(&state)
                .await
                .map_err(EngineError::from)?;
            println!(
                "{sync}: {} on stack {}",
                if paused { "paused" } else { "resumed" },
                cli.stack
            );
            Ok(Exit::Ok)
        }
        Command::History { sync } => {
            let versions = runs.versions(sync).await.map_err(EngineError::from)?;
            if cli.json {
                println!("{}", serde_json::to_string(&versions)?);
            } else {
                print!("{}", render::history_text(&versions));
            }
            Ok(Exit::Ok)
        }
        other => Err(anyhow!(
            "`{}` works on the local project only; run it without --aws",
            format!("{other:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("this command")
                .to_lowercase()
        )),
    }
}
