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
    #[command(after_help = "Examples:
  outlake sync --config outlake.toml
  outlake sync --config outlake.toml --progress never --report run.json --metrics /var/lib/node_exporter/outlake.prom
  outlake sync --config outlake.toml --shard 2/8        # the 3rd of 8 workers, by mailbox hash
  outlake sync --config outlake.toml --shard index/8    # in a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)
  outlake sync --config outlake.toml --shard any        # N workers drain all mailboxes together")]
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        output: RunOutputArgs,
        /// Which mailboxes this worker takes: `I/N` (shard I of N by a stable hash of the
        /// mailbox id), `index/N` (I from JOB_COMPLETION_INDEX), or `any` (every worker drains
        /// the whole list, through the mailbox leases). Default: every mailbox.
        #[arg(long, env = "OUTLAKE_SHARD", value_name = "I/N|index/N|any")]
        shard: Option<String>,
    },
    /// Run the whole job against the built-in Graph simulator: a full sync, a round of
    /// changes, an incremental sync.
    #[command(after_help = "Examples:
  outlake demo
  outlake demo --dir /tmp/outlake-demo --users 2 --messages 300")]
    Demo {
        /// Where the demo writes its lake.
        #[arg(long, default_value = "outlake-demo")]
        dir: PathBuf,
        /// Messages per mailbox in the simulated tenant.
        #[arg(long, default_value_t = 2000)]
        messages: usize,
        /// Users with a mailbox; one more user without a mailbox is always added, as in
        /// `outlake sim --users`.
        #[arg(long, default_value_t = 4, value_parser = at_least_one)]
        users: usize,
        #[command(flatten)]
        output: RunOutputArgs,
    },
    /// Serve the Graph simulator on loopback until interrupted; prints one JSON line with the
    /// URL and credentials when ready.
    #[command(after_help = SIM_EXAMPLES, after_long_help = SIM_LONG_HELP)]
    Sim(SimArgs),
    /// Check the configuration, credentials and Graph permissions with one cheap call per
    /// stream for one mailbox; prints ok/FAILED and a fix per check (exit 2 on a problem).
    #[command(after_help = "Example:
  outlake check --config outlake.toml")]
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Dry run of a full sync: read folder counts (no messages) and print the Graph requests
    /// and the shortest time a backfill takes under the configured limits.
    #[command(after_help = "Examples:
  outlake estimate --config outlake.toml
  outlake estimate --config outlake.toml --json --events-per-mailbox 2000")]
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
    /// Show each partition's committed position, with folder paths and calendar names. Needs
    /// only [sink] (and [checkpoint]) in the config: no tenant or secret. Exit 1 when there is
    /// no lake at sink.url.
    #[command(after_help = "Examples:
  outlake status --config outlake.toml
  outlake status --config outlake.toml --json | jq '.[] | select(.state != \"syncing\")'
  OUTLAKE_SINK__URL=file:///var/lib/outlake/out outlake status")]
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Forget cursors so the next sync re-baselines (and writes the delete rows a re-baseline
    /// owes). Say what: --mailbox, --stream, both, or --all. Needs only [sink] (and
    /// [checkpoint]) in the config. Exit 2 when nothing is chosen or the choice matches no
    /// partition; exit 1 when there is no lake at sink.url.
    #[command(after_help = "Examples:
  outlake reset --config outlake.toml --mailbox 9c86b7ba-522e-4cf1-98fb-2c29c22f3698
  outlake reset --config outlake.toml --mailbox 9c86b7ba-522e-4cf1-98fb-2c29c22f3698 --stream messages
  outlake reset --config outlake.toml --all
Mailboxes are named by user id, as `outlake status` shows them (not by UPN).")]
    Reset {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this mailbox: its user id, as `outlake status` shows it.
        #[arg(long)]
        mailbox: Option<String>,
        /// Only this stream: messages, events or mail_folders.
        #[arg(long)]
        stream: Option<String>,
        /// Every partition of every mailbox.
        #[arg(long, conflicts_with_all = ["mailbox", "stream"])]
        all: bool,
    },
    /// Delegated sign-in: sign in as a user, show who is signed in, sign out.
    #[command(
        subcommand,
        after_help = "Examples:
  outlake auth login --config outlake.toml
  outlake auth login --config outlake.toml --device-code
  outlake auth status --config outlake.toml
  outlake auth logout --config outlake.toml"
    )]
    Auth(crate::auth::AuthCommand),
    /// Remove staged files that no commit references (left by a crash). Needs only [sink] (and
    /// [checkpoint]) in the config. Exit 1 when there is no lake at sink.url.
    #[command(after_help = "Examples:
  outlake vacuum --config outlake.toml
  outlake vacuum --config outlake.toml --older-than-secs 86400")]
    Vacuum {
        #[command(flatten)]
        config: ConfigArg,
        /// Only files older than this many seconds.
        #[arg(long, default_value_t = 3600)]
        older_than_secs: u64,
    },
}

const SIM_EXAMPLES: &str = "Examples:
  outlake sim
  outlake sim --users 5 --messages 1000 --latency-ms 20
  outlake sim --port 8080 --fault-rate 0.05 --page-cap 100";

const SIM_LONG_HELP: &str = "Examples:
  outlake sim
  outlake sim --users 5 --messages 1000 --latency-ms 20
  outlake sim --port 8080 --fault-rate 0.05 --page-cap 100

When ready it prints one line, {\"url\",\"tenant_id\",\"client_id\",\"client_secret\"}: point
source.authority_url and source.graph_url at url and use the credentials. It serves Graph v1.0
(/v1.0/users, mailFolders/delta, messages/delta, calendars, calendarView/delta) and the identity
platform's token, authorize and devicecode endpoints under /{tenant}/oauth2/v2.0/.

Admin API under /_sim/ (no auth; not part of Graph), for tests and scripts:
  POST /_sim/mutate                 body: JSON array of mutations, \"op\" one of create_message,
                                    update_message, delete_message, move_message, create_folder,
                                    rename_folder, delete_folder, create_event, update_event,
                                    cancel_event, delete_event, create_calendar, update_calendar,
                                    delete_calendar, move_event_to_calendar; answers the array of results
  POST /_sim/random-changes         {\"seed\":7,\"count_per_kind\":3}: a round of every kind of change;
                                    answers {\"mutations\":[…],\"results\":[…]}
  POST /_sim/expire-tokens          {\"mailbox\":\"<id or UPN>\"}: its sync tokens answer 410 from now on
  POST /_sim/revoke-access-tokens   issued access tokens answer 401
  POST /_sim/revoke-refresh-tokens  refresh tokens are refused (invalid_grant)
  GET  /_sim/truth                  every mailbox's folders, messages, calendars and events as Graph serves them
  GET  /_sim/stats                  request counts by mailbox and kind, throttling, faults, tokens
  POST /_sim/reconfigure            change settings while serving (page_cap, fault_rate, faults,
                                    requests_per_window, window_secs, latency_ms, replay_rate, …)
  POST /_sim/devicecode             {\"user_code\":\"…\",\"approve\":true}: approve or deny a device-code sign-in
  GET  /_sim/requests               the request log: per Graph request its mailbox, client-request-id,
                                    User-Agent and run id, start and end (µs), status (newest 100,000)
  POST /_sim/requests/clear         empty the request log

e.g. curl -s -X POST $URL/_sim/random-changes -H 'content-type: application/json' -d '{\"seed\":7,\"count_per_kind\":3}'
Details: simulator/README.md.";

/// `--users`: a count of at least one.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0: any free port; the printed url says which).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the generated tenant: the same seed gives the same users, folders, messages and events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Users with a mailbox; one more user without a mailbox is always added (Graph answers
    /// 404 MailboxNotEnabledForRESTAPI for it), as in `outlake demo --users`.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
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
    /// Share of requests answered with a transient fault (503/504, reset connection, truncated
    /// body), 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Requests per mailbox allowed in each throttling window; more answer 429 TooManyRequests
    /// with Retry-After (default 10000).
    #[arg(long)]
    pub requests_per_window: Option<u64>,
    /// Length of the throttling window in seconds (default 600).
    #[arg(long)]
    pub window_secs: Option<f64>,
    /// Extra latency per Graph request, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Share of items sent twice in a round, 0.0 to 1.0.
    #[arg(long)]
    pub replay_rate: Option<f64>,
    /// Log every Graph request on stderr: mailbox, status, duration, run id (from the
    /// User-Agent), client-request-id. The same records are always served by GET /_sim/requests.
    #[arg(long)]
    pub log_requests: bool,
}
