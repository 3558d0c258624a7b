//! Tenant scale on one process (issue 15): the request slots are used, not held back by the
//! memory budget or a hidden cap.

use std::time::Duration;

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::Env;
use super::truth::{Expect, assert_lake_equals_truth_for};

/// What `streams = ["messages"]` writes.
const MAIL_TABLES: [&str; 3] = ["mail_folders", "messages", "mailboxes"];

/// Before issue 15 every fetch reserved a full page's worth of the memory budget before its
/// request (page size 50 × 4 KB here, at most half of a 1 MB budget: two or three at once), and
/// mailboxes were probed at most 16 at a time. With a small budget and many small folders, a
/// response now reserves what it will take, so far more than 16 requests are in flight at once
/// — for the folders' rounds and for the probes — and the incremental sweep does not probe
/// mailboxes that already have commits. The simulator's latency only makes requests overlap;
/// the test asserts on the simulator's counts, not on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_folders_keep_more_than_16_requests_in_flight_under_a_small_budget() {
    let mailboxes = 40;
    let cfg = SimConfig { users: mailboxes + 1, messages_per_mailbox: 6, events_per_mailbox: 0, latency: Duration::from_millis(200), ..SimConfig::default() };
    let env = Env::start(cfg, "streams = [\"messages\"]\n#rest\n[limits]\nmax_buffered_mb = 1\nmax_parallel_mailboxes = 40\nmax_in_flight = 64\n").await;
    let first = env.sync_reported(&[]);
    assert_eq!(first["totals"]["mailboxes_ok"], mailboxes as u64, "{first}");
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), Expect { tables: &MAIL_TABLES, ..Expect::default() });
    let stats = env.sim.stats();
    let at_once = |kind: &str| stats["in_flight"]["max_by_kind"][kind].as_u64().unwrap_or(0);
    assert!(at_once("messages_delta") > 16, "folder rounds in flight at once: {}", at_once("messages_delta"));
    assert!(at_once("mail_folder") > 16, "probes in flight at once: {}", at_once("mail_folder"));
    let probes = |s: &Value| s["requests_by_kind"]["mail_folder"].as_u64().unwrap_or(0);
    assert_eq!(probes(&stats), mailboxes as u64 + 1, "every user was probed once");

    let second = env.sync_reported(&[]);
    assert_eq!(second["totals"]["mailboxes_ok"], mailboxes as u64, "{second}");
    let after = env.sim.stats();
    // Only the user without a mailbox (it has no commits) is probed again.
    assert_eq!(probes(&after) - probes(&stats), 1);
    assert_lake_equals_truth_for(&env.lake(), &env.sim.truth(), Expect { tables: &MAIL_TABLES, ..Expect::default() });
    env.sim.shutdown().await;
}
