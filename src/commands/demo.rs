//! `outlake demo`: the whole job against the built-in simulator, no tenant or network needed.
//! Full sync → a round of every kind of change → incremental sync, then how to query it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use outlake_config::Secret;
use outlake_config::raw::{RawConfig, RawMailboxes};
use outlake_pipeline::runner::{Cancel, RunReport};
use outlake_simulator::{SimConfig, Simulator};

use crate::cli::RunOutputArgs;
use crate::{exit, progress};

pub async fn run(dir: PathBuf, messages: usize, users: usize, output: RunOutputArgs) -> u8 {
    match demo(&dir, messages, users, &output).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}

async fn demo(dir: &Path, messages: usize, users: usize, output: &RunOutputArgs) -> anyhow::Result<u8> {
    let dir = std::path::absolute(dir)?;
    prepare_dir(&dir)?;
    // `users` counts mailboxes, as `outlake sim --users` does; the simulator adds one user
    // without a mailbox (the run report shows it skipped).
    let events = (messages / 10).max(20);
    let sim =
        Simulator::start(SimConfig { users: super::sim::sim_users(users), messages_per_mailbox: messages, events_per_mailbox: events, ..SimConfig::default() })
            .await?;
    println!("simulated tenant at {} ({users} mailboxes and one user without a mailbox; {messages} messages and {events} events per mailbox)", sim.url());

    let cfg = demo_config(&sim, &dir)?;
    println!("\n== run 1: full sync into {}", dir.display());
    let first = timed_sync(&cfg, output).await?;

    let changes = sim.random_changes(7, 5);
    let n = changes.len();
    sim.mutate(changes).map_err(|e| anyhow::anyhow!("applying changes in the simulator: {e}"))?;
    println!(
        "\n== {n} changes made in the simulator (new, updated, deleted and moved messages; a new and a deleted folder; updated, cancelled and deleted events)"
    );

    println!("\n== run 2: incremental sync");
    let second = timed_sync(&cfg, output).await?;
    sim.shutdown().await;

    let lake = dir.display();
    println!("\nQuery the current state with DuckDB (latest row per key, deletes dropped):");
    println!(
        "  duckdb -c \"SELECT subject, from_address, received_date_time FROM (SELECT *, row_number() OVER (PARTITION BY mailbox_id, parent_folder_id, id ORDER BY _seq DESC) AS rn FROM read_parquet('{lake}/messages/**/*.parquet')) WHERE rn = 1 AND _op = 'upsert' ORDER BY received_date_time DESC LIMIT 10\""
    );
    let code = super::sync::exit_code(&first).max(super::sync::exit_code(&second));
    Ok(code)
}

async fn timed_sync(cfg: &outlake_config::Config, output: &RunOutputArgs) -> anyhow::Result<RunReport> {
    let t0 = Instant::now();
    let (sink, renderer) = progress::start(output.progress);
    let rep = crate::wiring::sync_once(cfg, outlake_config::Shard::All, sink, Cancel::default()).await?;
    renderer.finish().await;
    crate::report::print_summary(&rep);
    let requests: u64 = rep.mailboxes.iter().map(|m| m.requests).sum();
    println!(
        "   {} rows written ({} upserts, {} deletes) with {} requests in {:.2}s",
        rep.total(|s| s.upserts + s.deletes),
        rep.total(|s| s.upserts),
        rep.total(|s| s.deletes),
        requests,
        t0.elapsed().as_secs_f64()
    );
    if let Some(f) = &rep.fatal {
        anyhow::bail!("the sync stopped: {f}");
    }
    Ok(rep)
}

fn demo_config(sim: &Simulator, dir: &Path) -> anyhow::Result<outlake_config::Config> {
    let mut raw = RawConfig::default();
    raw.source.tenant_id = Some(sim.tenant_id());
    raw.source.client_id = Some(sim.client_id());
    raw.source.client_secret = Some(Secret::new(sim.client_secret()));
    raw.source.authority_url = Some(sim.url());
    raw.source.graph_url = Some(sim.url());
    raw.source.mailboxes = Some(RawMailboxes::Keyword("all".into()));
    raw.source.calendar_start = Some("2024-01-01T00:00:00Z".into());
    raw.source.calendar_end = Some("2028-12-01T00:00:00Z".into());
    raw.sink.url = Some(url::Url::from_directory_path(dir).map_err(|_| anyhow::anyhow!("{} is not an absolute path", dir.display()))?.to_string());
    Ok(outlake_config::validate(&raw, &outlake_config::validated::FsSecretReader)?)
}

/// The demo owns its folder: start from an empty one, but never wipe a folder that holds
/// anything but an earlier demo's output.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let marker = dir.join(".outlake-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !marker.exists() {
            anyhow::bail!("{} exists and was not made by `outlake demo`; choose another folder with --dir", dir.display());
        }
        if !empty {
            std::fs::remove_dir_all(dir)?;
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, "made by outlake demo; safe to delete\n")?;
    Ok(())
}
