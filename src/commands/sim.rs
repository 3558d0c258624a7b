//! `outlake sim`: the Graph simulator as a process, for manual runs and other clients.

use std::time::Duration;

use outlake_simulator::SimConfig;

use crate::cli::SimArgs;
use crate::exit;

/// The simulator's `users` for `--users mailboxes`: `outlake sim --users` and `outlake demo
/// --users` count users with a mailbox; the simulator's count also holds the one user without
/// a mailbox it always adds (the last one, when it has two or more users).
pub fn sim_users(mailboxes: usize) -> usize {
    mailboxes + 1
}

pub fn sim_config(a: &SimArgs) -> SimConfig {
    let mut c = SimConfig {
        port: a.port,
        seed: a.seed,
        users: sim_users(a.users),
        messages_per_mailbox: a.messages,
        events_per_mailbox: a.events,
        fault_rate: a.fault_rate,
        ..SimConfig::default()
    };
    if let Some(p) = a.page_cap {
        c.page_cap = p;
    }
    if let Some(n) = a.requests_per_window {
        c.requests_per_window = n;
    }
    if let Some(w) = a.window_secs {
        c.window = Duration::from_secs_f64(w);
    }
    if let Some(ms) = a.latency_ms {
        c.latency = Duration::from_millis(ms);
    }
    if let Some(r) = a.replay_rate {
        c.replay_rate = r;
    }
    c
}

pub async fn run(args: SimArgs) -> u8 {
    match outlake_simulator::serve_cli(sim_config(&args), args.log_requests).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: the simulator could not start: {e}");
            exit::FAILURE
        }
    }
}
