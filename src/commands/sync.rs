//! `outlake sync`: one incremental run, with progress, a report, metrics and an exit code.

use outlake_config::Shard;
use outlake_config::shard::JOB_COMPLETION_INDEX;
use outlake_pipeline::runner::{Cancel, RunOutcome, RunReport};

use crate::cli::{ConfigArg, RunOutputArgs};
use crate::{exit, progress, report};

pub async fn run(config: ConfigArg, output: RunOutputArgs, shard: Option<String>) -> u8 {
    let shard = match shard.as_deref().map(|spec| Shard::parse(spec, std::env::var(JOB_COMPLETION_INDEX).ok().as_deref())).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(m) => {
            crate::logging::error(&format!("--shard (OUTLAKE_SHARD) {m}"));
            return exit::CONFIG_OR_AUTH;
        }
    };
    let cfg = match super::load_config(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if cfg.source.auth.is_delegated()
        && let Err(m) = crate::auth::tokens::open(&cfg)
    {
        crate::logging::error(&m.to_string());
        return exit::CONFIG_OR_AUTH;
    }
    // Mistakes found before a long run, not after it: the storage settings (2) and the output
    // paths (2).
    if let Err(m) = exit::check_storage_config(&cfg) {
        crate::logging::error(&m.to_string());
        return exit::CONFIG_OR_AUTH;
    }
    if let Err(m) = exit::check_output_paths(output.report.as_deref(), output.metrics.as_deref()) {
        crate::logging::error(&m.to_string());
        return exit::CONFIG_OR_AUTH;
    }
    let cancel = Cancel::default();
    install_interrupt(cancel.clone());
    let (sink, renderer) = progress::start(output.progress);
    let result = crate::wiring::sync_once(&cfg, shard, sink, cancel.clone()).await;
    renderer.finish().await;
    match result {
        Ok(rep) => finish(&rep, &output),
        Err(e) => {
            crate::logging::error(&format!("{e:#}"));
            exit::FAILURE
        }
    }
}

/// Print the summary, write report and metrics, and choose the exit code.
pub fn finish(rep: &RunReport, output: &RunOutputArgs) -> u8 {
    report::print_summary(rep);
    if let Some(path) = &output.report
        && let Err(e) = report::write_json(rep, path)
    {
        crate::logging::error(&format!("writing the report to {}: {e}", path.display()));
        return exit::FAILURE;
    }
    if let Some(path) = &output.metrics
        && let Err(e) = report::write_prometheus(rep, path)
    {
        crate::logging::error(&format!("writing metrics to {}: {e}", path.display()));
        return exit::FAILURE;
    }
    exit_code(rep)
}

pub fn exit_code(rep: &RunReport) -> u8 {
    match rep.outcome() {
        RunOutcome::AuthFailed => exit::CONFIG_OR_AUTH,
        RunOutcome::Stopped => exit::FAILURE,
        RunOutcome::Interrupted => exit::INTERRUPTED,
        RunOutcome::Partial => exit::PARTIAL,
        RunOutcome::Ok => exit::OK,
    }
}

fn install_interrupt(cancel: Cancel) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else { return };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("interrupted: committing what is staged, then stopping");
        cancel.cancel();
    });
}
