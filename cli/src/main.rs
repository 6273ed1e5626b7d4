//! The `retl` command line.

mod args;
mod commands;
mod exit;
mod host;
mod out;
mod progress;
mod render;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::Cli;
use commands::dispatch;
use exit::{exit_for_error, Exit};

/// Extract and plan allocate and free millions of small values across threads (the source's
/// reader thread allocates, the planner frees); mimalloc's per-thread heaps do that without
/// the contention and consolidation glibc's allocator spends a fifth of a run on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut filter =
        EnvFilter::try_from_env("RETL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    for quiet in retl_shared::logging::QUIET_DEPENDENCIES {
        if let Ok(d) = quiet.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage as u8 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logs(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    match runtime.block_on(dispatch(&cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let code = exit_for_error(&e);
            if cli.json {
                let name = e
                    .downcast_ref::<retl_shared::engine::EngineError>()
                    .map(|x| x.error_name())
                    .unwrap_or(if code == Exit::Usage {
                        "Retl.ConfigError"
                    } else {
                        "Retl.Error"
                    });
                out::line(
                    &serde_json::json!({"error": format!("{e:#}"), "error_name": name}).to_string(),
                );
            } else {
                eprintln!("{e:#}");
            }
            ExitCode::from(code as u8)
        }
    }
}
