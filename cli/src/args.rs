//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// retl: reverse ETL that keeps business tools in step with warehouse models.
#[derive(Debug, Parser)]
#[command(name = "retl", version, about, long_about = None)]
pub struct Cli {
    /// Project folder holding retl.yaml (default: the current folder).
    #[arg(long, global = true, env = "RETL_PROJECT")]
    pub project: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Act on the deployed AWS stack instead of the local state (needs AWS credentials).
    #[arg(long, global = true)]
    pub aws: bool,
    /// Name of the deployed stack (with --aws).
    #[arg(long, global = true, env = "RETL_STACK", default_value = "retl")]
    pub stack: String,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The events `retl schema --event` describes (none without the AWS bundle).
#[cfg(feature = "aws")]
const EVENT_NAMES: [&str; 2] = retl_shared::aws_host::event_schemas::EVENTS;
#[cfg(not(feature = "aws"))]
const EVENT_NAMES: [&str; 0] = [];

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check retl.yaml and every sync file; report every problem with its position.
    Validate,
    /// Print the JSON Schema of sync files (or of retl.yaml with --project-file, or of an
    /// EventBridge event of the AWS bundle with --event).
    Schema {
        /// The schema of retl.yaml instead of sync files.
        #[arg(long, conflicts_with = "event")]
        project_file: bool,
        /// The schema of this EventBridge event instead (`retl.trigger`, `retl.run.completed`).
        #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(EVENT_NAMES))]
        event: Option<String>,
    },
    /// Run the model and show row count, sample rows and key problems.
    Preview {
        /// Sync name.
        sync: String,
        /// Sample rows to show.
        #[arg(long, default_value_t = 5)]
        limit: usize,
    },
    /// Plan a run without writing to the destination (a dry run).
    Plan {
        /// Sync name.
        sync: String,
        /// List the records that would be deleted, with their current values.
        #[arg(long)]
        show_deletes: bool,
        /// Plan re-sending every row, even unchanged ones.
        #[arg(long)]
        full_resync: bool,
    },
    /// Run a sync: extract, plan, check safety rules, apply.
    Run {
        /// Sync name.
        sync: String,
        /// With --aws: wait for the execution to end and print the run.
        #[arg(long)]
        wait: bool,
        /// Re-send every row, even unchanged ones.
        #[arg(long)]
        full_resync: bool,
        /// Note for the config version, if the sync changed since the last save.
        #[arg(long)]
        note: Option<String>,
    },
    /// Compare the destination with what retl last delivered (missing, extra and stale
    /// records); `--repair` makes the key set match it, so the next run corrects the
    /// destination. Writes nothing to the destination.
    Verify {
        /// Sync name.
        sync: String,
        /// Rewrite the key set to what the destination holds.
        #[arg(long)]
        repair: bool,
    },
    /// Approve a run stopped by a safety rule; applies exactly its plan.
    Approve(Decision),
    /// Reject a run stopped by a safety rule; it ends without writing.
    Reject(Decision),
    /// Run history: `retl runs [SYNC]`, or `retl runs show RUN`.
    Runs(RunsArgs),
    /// Records rejected in a run (the dead letter queue), with errors and payloads.
    Errors {
        /// Run id.
        run: String,
        /// Entries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Re-send the records the destination rejected in a run (by default the sync's latest run
    /// with rejections), e.g. after fixing the cause in the destination, without waiting for a
    /// model change.
    Retry {
        /// Sync name.
        sync: String,
        /// The run whose rejected records to re-send.
        #[arg(long)]
        run: Option<String>,
    },
    /// Pause a sync: runs are refused until it is resumed.
    Pause {
        /// Sync name.
        sync: String,
    },
    /// Resume a paused sync.
    Resume {
        /// Sync name.
        sync: String,
    },
    /// Copy a sync to a new sync file (e.g. to test a mapping against a sandbox).
    Clone {
        /// Sync to copy.
        sync: String,
        /// Name of the copy.
        new_name: String,
        /// Destination object of the copy.
        #[arg(long)]
        object: Option<String>,
        /// Destination connection of the copy.
        #[arg(long)]
        connection: Option<String>,
    },
    /// Save the current definition of syncs as new versions, with a note.
    Save {
        /// Sync name (all syncs when omitted).
        sync: Option<String>,
        /// What changed and why.
        #[arg(short, long)]
        message: String,
    },
    /// Config versions of a sync, with their notes and what changed.
    History {
        /// Sync name.
        sync: String,
    },
    /// Deploy the project's syncs to the AWS stack: definitions, schedules, upstream triggers.
    Deploy {
        /// Note recorded on the new config versions.
        #[arg(short, long)]
        message: Option<String>,
    },
}

/// A decision on a run awaiting approval.
#[derive(Debug, Args)]
pub struct Decision {
    /// Run id.
    pub run: String,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who decides, locally (default: $USER, then $LOGNAME). With --aws the approver is your
    /// AWS identity, as Systems Manager authenticates it, and this is not used.
    #[arg(long, env = "USER")]
    pub by: Option<String>,
}

/// `retl runs`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// `show RUN`.
    #[command(subcommand)]
    pub show: Option<RunsCommand>,
    /// Only runs of this sync.
    pub sync: Option<String>,
    /// How many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `retl runs show`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run in detail.
    Show {
        /// Run id.
        run: String,
    },
}
