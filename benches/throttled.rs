//! The throttled backfill (issue 4): the simulator admits 100 requests per mailbox per sliding
//! 6 s window and adds 20 ms to every request; outlake is told the same budget
//! (`limits.requests_per_window = 100`, `window_secs = 6`). Small pages make the backfill need
//! a few hundred requests per mailbox.
//!
//! Prints wall time ÷ (requests needed ÷ allowed rate) — target ≤ 1.05 — where "requests
//! needed" is the busiest mailbox's request count (mailboxes have separate budgets and run in
//! parallel), and 429s served ÷ requests — target ≤ 0.5%.
//!
//! Run: `cargo build --release --bin outlake && cargo bench --bench throttled`

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use outlake_simulator::SimConfig;

fn main() {
    let mailboxes = env_usize("OUTLAKE_BENCH_MAILBOXES", 3);
    let messages = env_usize("OUTLAKE_BENCH_MESSAGES", 2_000);
    let page_size = env_usize("OUTLAKE_BENCH_PAGE_SIZE", 10);
    let limit = 100u64;
    let window = Duration::from_secs(6);
    println!(
        "throttled: {mailboxes} mailboxes × {messages} messages, page size {page_size}, {limit} requests per {}s, 20 ms latency; {}",
        window.as_secs(),
        machine()
    );
    let host = SimHost::start(SimConfig {
        users: mailboxes + 1,
        messages_per_mailbox: messages,
        events_per_mailbox: 0,
        requests_per_window: limit,
        window,
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    });
    let sim = host.sim();
    let dir = bench_dir();
    let lake = dir.path().join("lake");
    let config =
        write_config(dir.path(), sim, &lake, page_size, "", &format!("\n[limits]\nrequests_per_window = {limit}\nwindow_secs = {}\n", window.as_secs()));
    let run = run_outlake(&config, dir.path(), "throttled");
    let stats = sim.stats();
    let served_429: u64 = stats["throttled"].as_object().map(|m| m.values().filter_map(|v| v.as_u64()).sum()).unwrap_or(0);
    let sim_requests = stats["requests_total"].as_u64().unwrap_or(0);
    // Requests a perfect client needs: the busiest mailbox's requests that were not answered 429.
    let busiest = run.report["mailboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["requests"].as_u64().unwrap_or(0).saturating_sub(m["throttled"].as_u64().unwrap_or(0)))
        .max()
        .unwrap_or(0);
    let rate = limit as f64 / window.as_secs_f64();
    let ideal = busiest as f64 / rate;
    let wall = run.wall.as_secs_f64();
    println!(
        "outlake: {} messages, {} requests ({} throttled, {} retries) in {wall:.2}s",
        run.total("upserts"),
        run.total("requests"),
        run.total("throttled"),
        run.total("retries")
    );
    println!("simulator: {sim_requests} requests, {served_429} answered 429; busiest mailbox {busiest} requests");
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!("| wall ÷ (requests needed ÷ allowed rate) | {:.3} ({wall:.2}s ÷ ({busiest} ÷ {rate:.2}/s = {ideal:.2}s)) | ≤ 1.05 |", wall / ideal);
    println!("| 429s served ÷ requests | {:.2}% ({served_429} of {sim_requests}) | ≤ 0.5% |", 100.0 * served_429 as f64 / sim_requests.max(1) as f64);
    host.stop();
}
