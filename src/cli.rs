//! Command-line interface: every command, flag and exit code users' scripts depend on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "outlake", version, about = "Copy Outlook mail and calendars from Microsoft Graph into Parquet, incrementally.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ProgressMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Path to outlake.toml. Every key can also come from OUTLAKE_<SECTION>__<KEY>.
    #[arg(long, short = 'c', env = "OUTLAKE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct RunOutputArgs {
    /// Progress bars on stderr: auto shows them when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Write a JSON report of the run (per mailbox and stream) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write Prometheus text-format metrics (for node-exporter's textfile collector).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch changes from Graph and commit them as Parquet.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        output: RunOutputArgs,
    },
    /// Run the whole job against the built-in Graph simulator: a full sync, a round of
    /// changes, an incremental sync.
    Demo {
        /// Where the demo writes its lake.
        #[arg(long, default_value = "outlake-demo")]
        dir: PathBuf,
        /// Messages per mailbox in the simulated tenant.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Mailboxes in the simulated tenant (one more user has no mailbox).
        #[arg(long, default_value_t = 4)]
        users: usize,
        #[command(flatten)]
        output: RunOutputArgs,
    },
    /// Serve the Graph simulator on loopback until interrupted; prints one JSON line with the
    /// URL and credentials when ready.
    Sim(SimArgs),
    /// Check the configuration, credentials and Graph permissions with one cheap call per
    /// stream for one mailbox; prints ok/FAILED and a fix per check (exit 2 on a problem).
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dry run of a full sync: read folder counts (no messages) and print the Graph requests
    /// and the shortest time a backfill takes under the configured limits.
    Estimate {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Events per mailbox assumed in the calendar window (Graph gives no cheap count).
        #[arg(long, default_value_t = 500)]
        events_per_mailbox: u64,
    },
    /// Show each partition's committed position.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget cursors so the next sync re-baselines (and writes the delete rows a re-baseline
    /// owes).
    Reset {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this mailbox (user id).
        #[arg(long)]
        mailbox: Option<String>,
        /// Only this stream: messages, events or mail_folders.
        #[arg(long)]
        stream: Option<String>,
    },
    /// Delegated sign-in: sign in as a user, show who is signed in, sign out.
    #[command(subcommand)]
    Auth(crate::auth::AuthCommand),
    /// Remove staged files that no commit references (left by a crash).
    Vacuum {
        #[command(flatten)]
        config: ConfigArg,
        /// Only files older than this many seconds.
        #[arg(long, default_value_t = 3600)]
        older_than_secs: u64,
    },
}

#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Users in the tenant (one of them has no mailbox).
    #[arg(long, default_value_t = 3)]
    pub users: usize,
    /// Messages per mailbox.
    #[arg(long, default_value_t = 200)]
    pub messages: usize,
    /// Events per mailbox.
    #[arg(long, default_value_t = 50)]
    pub events: usize,
    /// Largest page served, whatever odata.maxpagesize asks.
    #[arg(long)]
    pub page_cap: Option<usize>,
    /// Share of requests answered with a transient fault.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    #[arg(long)]
    pub requests_per_window: Option<u64>,
    #[arg(long)]
    pub window_secs: Option<f64>,
    /// Extra latency per Graph request, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Share of items sent twice in a round.
    #[arg(long)]
    pub replay_rate: Option<f64>,
}
