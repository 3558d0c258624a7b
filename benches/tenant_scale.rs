//! Tenant scale on one process (issue 15): many small mailboxes behind a slow Graph.
//!
//! For each size in OUTLAKE_BENCH_SIZES (default `1000,10000` mailboxes):
//! 1. The simulator (one worker thread) is seeded with that many small mailboxes
//!    (OUTLAKE_BENCH_MESSAGES messages each, default 20, spread over their 11 folders; no events)
//!    and answers every mailbox request after OUTLAKE_BENCH_LATENCY_MS (default 250 ms).
//! 2. `outlake sync` (the release binary, default limits unless OUTLAKE_LIMITS__* variables are
//!    set) backfills streams `messages` (the folder tree and each folder's messages) into an
//!    empty lake, then runs again: the incremental sweep, one mostly empty delta page per folder.
//! 3. Per run: requests (the simulator's count of mailbox requests, each of which waited the
//!    latency; `/users` pages and tokens are answered at once and not counted), wall time, the
//!    time-averaged requests in flight (the simulator's integral of requests in flight over the
//!    run ÷ its wall time) ÷ `limits.max_in_flight`, peak RSS and CPU time of the child, and wall
//!    time ÷ (requests × latency ÷ max_in_flight), the best a client held to that many requests
//!    in flight can do.
//!
//! Targets: ≥ 0.9 of max_in_flight busy; peak RSS at 10,000 ≤ 1.5 × at 1,000; wall within 10 % of
//! requests × latency ÷ max_in_flight.
//!
//! Run: `cargo build --release --bin outlake && cargo bench --bench tenant_scale`
//! (10,000 mailboxes at 250 ms and 64 in flight take about 17 minutes).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use outlake_simulator::SimConfig;

/// The default `limits.max_in_flight` (config/src/validated.rs), unless overridden.
const DEFAULT_MAX_IN_FLIGHT: u64 = 64;

struct Phase {
    label: String,
    run: Run,
    requests: u64,
    request_secs: f64,
}

fn main() {
    let sizes: Vec<usize> = std::env::var("OUTLAKE_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();
    let messages = env_usize("OUTLAKE_BENCH_MESSAGES", 20);
    let latency = Duration::from_millis(env_usize("OUTLAKE_BENCH_LATENCY_MS", 250) as u64);
    let max_in_flight = std::env::var("OUTLAKE_LIMITS__MAX_IN_FLIGHT").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_IN_FLIGHT);
    println!("tenant scale: {sizes:?} mailboxes × {messages} messages, {} ms per request, max_in_flight {max_in_flight}; {}", latency.as_millis(), machine());
    let mut phases: Vec<Phase> = Vec::new();
    for &n in &sizes {
        let host = SimHost::start(SimConfig {
            // The last user has no mailbox: the backfill probes and skips it.
            users: n + 1,
            messages_per_mailbox: messages,
            events_per_mailbox: 0,
            latency,
            ..SimConfig::default()
        });
        let sim = host.sim();
        let dir = bench_dir();
        let lake = dir.path().join("lake");
        let config = write_config(dir.path(), sim, &lake, 1000, "", "");
        for kind in ["backfill", "incremental"] {
            let before = sim.stats();
            let label = format!("{kind}-{n}");
            let run = run_outlake(&config, dir.path(), &label);
            let after = sim.stats();
            let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
            let mailbox_requests: u64 = after["requests_by_mailbox"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0)
                - before["requests_by_mailbox"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum::<u64>()).unwrap_or(0);
            let secs = |v: &serde_json::Value| v["in_flight"]["request_secs"].as_f64().unwrap_or(0.0);
            let phase = Phase { label, requests: mailbox_requests, request_secs: secs(&after) - secs(&before), run };
            println!(
                "{}: {} mailbox requests ({} in all, {} throttled), {:.1}s, {:.1} in flight on average, peak RSS {:.1} MB, cpu user {:.1}s sys {:.1}s; \
                 outlake: {} requests, {} mailboxes ok, {} skipped",
                phase.label,
                phase.requests,
                delta("requests_total"),
                after["throttled"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum::<u64>()).unwrap_or(0),
                phase.run.wall.as_secs_f64(),
                phase.request_secs / phase.run.wall.as_secs_f64(),
                phase.run.max_rss_kib as f64 / 1024.0,
                phase.run.user_cpu.as_secs_f64(),
                phase.run.sys_cpu.as_secs_f64(),
                phase.run.total("requests"),
                phase.run.total("mailboxes_ok"),
                phase.run.total("mailboxes_skipped"),
            );
            phases.push(phase);
        }
        println!("simulator: most requests in flight at once {} ({:?})", sim.stats()["in_flight"]["max"], sim.stats()["in_flight"]["max_by_kind"]);
        host.stop();
    }

    println!();
    println!("| run | requests | wall | in flight ÷ max_in_flight | wall ÷ (requests × latency ÷ max_in_flight) | peak RSS | CPU (user + sys) |");
    println!("|---|---|---|---|---|---|---|");
    for p in &phases {
        let wall = p.run.wall.as_secs_f64();
        let ideal = p.requests as f64 * latency.as_secs_f64() / max_in_flight as f64;
        println!(
            "| {} | {} | {wall:.1} s | {:.2} | {:.3} ({wall:.1} ÷ {ideal:.1} s) | {:.0} MB | {:.1} s |",
            p.label,
            p.requests,
            p.request_secs / wall / max_in_flight as f64,
            wall / ideal,
            p.run.max_rss_kib as f64 / 1024.0,
            (p.run.user_cpu + p.run.sys_cpu).as_secs_f64(),
        );
    }
    let peak = |label: &str| phases.iter().filter(|p| p.label.ends_with(label)).map(|p| p.run.max_rss_kib).max();
    if let (Some(small), Some(large)) = (sizes.first(), sizes.last())
        && small != large
        && let (Some(a), Some(b)) = (peak(&format!("-{small}")), peak(&format!("-{large}")))
    {
        println!();
        println!("peak RSS {large} ÷ {small} mailboxes: {:.2} (target ≤ 1.5)", b as f64 / a as f64);
    }
}
