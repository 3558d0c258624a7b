//! The simulator's own speed (issue 2: "serve ≥ 50k messages/s of page JSON on one core").
//!
//! The simulator runs on a runtime with one worker thread; a plain reqwest client (another
//! thread) backfills every mailbox's messages the way outlake does — folder round, then every
//! folder's messages round, 4 folders per mailbox and 16 mailboxes at once — and only counts the
//! bytes. Three passes:
//! - `cold`: first round, every message rendered to JSON;
//! - `warm`: a new baseline round over the same messages (rendered messages are cached per
//!   message, pages are assembled anew);
//! - `replay`: the pages recorded during `warm`, served as static bytes (pre-rendered mode).
//!
//! Run: `cargo bench --bench sim_serve` (sizes: OUTLAKE_BENCH_MAILBOXES, OUTLAKE_BENCH_MESSAGES).

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use outlake_simulator::{ReplayMode, SimConfig};

fn main() {
    let mailboxes = env_usize("OUTLAKE_BENCH_MAILBOXES", 20);
    let messages = env_usize("OUTLAKE_BENCH_MESSAGES", 5_000);
    let page_size = env_usize("OUTLAKE_BENCH_PAGE_SIZE", 1_000);
    println!("sim_serve: {mailboxes} mailboxes × {messages} messages, page size {page_size}; {}", machine());
    let host = SimHost::start(SimConfig {
        users: mailboxes + 1,
        messages_per_mailbox: messages,
        events_per_mailbox: 0,
        requests_per_window: 1_000_000,
        ..SimConfig::default()
    });
    let sim = host.sim();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    for pass in ["cold", "warm", "replay"] {
        match pass {
            "warm" => sim.set_replay_mode(ReplayMode::Record),
            "replay" => sim.set_replay_mode(ReplayMode::Serve),
            _ => {}
        }
        let t = Instant::now();
        let c = client_rt.block_on(crawl_messages(&http, sim, page_size, 4, 16));
        let s = t.elapsed().as_secs_f64();
        println!(
            "{pass:>6}: {} messages, {} requests, {:.1} MB in {:.2}s = {:.0} messages/s, {:.0} MB/s (simulator on one worker thread)",
            c.items,
            c.requests,
            c.bytes as f64 / 1e6,
            s,
            c.items as f64 / s,
            c.bytes as f64 / 1e6 / s
        );
    }
    host.stop();
}
