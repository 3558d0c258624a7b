//! The `outlake` binary: command line, configuration, wiring, progress rendering.
//! The engine lives in the `outlake-pipeline` crate; Graph in `outlake-connectors`; storage in
//! `outlake-sinks`; the Graph double in `outlake-simulator`.

mod auth;
mod cli;
mod commands;
mod exit;
mod logging;
mod progress;
mod report;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // Writing to a closed pipe (`outlake status | head`) ends the process quietly, as other
    // command-line tools do, instead of panicking.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = rt.block_on(async move {
        match cli.command {
            Command::Sync { config, output, shard } => commands::sync::run(config, output, shard).await,
            Command::Demo { dir, messages, users, output } => commands::demo::run(dir, messages, users, output).await,
            Command::Sim(args) => commands::sim::run(args).await,
            Command::Check { config } => commands::check::run(config).await,
            Command::Estimate { config, json, events_per_mailbox } => commands::estimate::run(config, json, events_per_mailbox).await,
            Command::Status { config, json } => commands::status::run(config, json).await,
            Command::Reset { config, mailbox, stream, all } => commands::reset::run(config, mailbox, stream, all).await,
            Command::Auth(cmd) => auth::run(cmd).await,
            Command::Vacuum { config, older_than_secs } => commands::vacuum::run(config, older_than_secs).await,
        }
    });
    ExitCode::from(code)
}
