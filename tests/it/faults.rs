//! Limits and faults (issue: stay inside Graph's limits and survive its faults). Every test
//! injects trouble through the simulator and asserts the final data equals the simulator's
//! truth.

use std::time::Duration;

use outlake_simulator::{FaultRates, Mutation, SimConfig};
use serde_json::Value;

use super::support::{Env, assert_success, stderr, sync_with_report as run_report};
use super::truth::assert_lake_equals_truth;

fn world(seed: u64) -> SimConfig {
    SimConfig { users: 3, messages_per_mailbox: 150, events_per_mailbox: 20, seed, ..SimConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_backfill_stays_inside_both_limits() {
    let cfg = SimConfig { requests_per_window: 15, window: Duration::from_secs(6), latency: Duration::from_millis(20), messages_per_mailbox: 250, ..world(5) };
    let env = Env::start(cfg, "page_size = 10\n#rest\n[limits]\nrequests_per_window = 15\nwindow_secs = 6\n").await;
    let (out, rep) = run_report(&env, "r.json");
    assert_success(&out);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    let stats = env.sim.stats();
    let requests = stats["requests_total"].as_u64().unwrap();
    let throttled: u64 = stats["throttled"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
    let busiest = stats["requests_by_mailbox"].as_object().unwrap().values().filter_map(Value::as_u64).max().unwrap();
    assert!(busiest > 2 * 15, "the backfill needs more than two windows of one mailbox ({busiest} requests)");
    assert!(throttled * 100 <= requests, "{throttled} of {requests} requests were throttled");
    for (mb, n) in stats["max_in_flight"].as_object().unwrap() {
        assert!(n.as_u64().unwrap() <= 4, "{mb} had {n} requests in flight");
    }
    assert_eq!(rep["totals"]["mailboxes_failed"], 0);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_kind_and_all_together_end_in_the_truth() {
    type SetFault = fn(&mut FaultRates);
    let kinds: [(&str, SetFault); 6] = [
        ("service_unavailable", |f| f.service_unavailable = 0.05),
        ("gateway_timeout", |f| f.gateway_timeout = 0.05),
        ("connection_reset", |f| f.connection_reset = 0.05),
        ("truncated_json", |f| f.truncated_json = 0.05),
        ("token_revocation", |f| f.token_revocation = 0.05),
        ("all", |f| {
            f.service_unavailable = 0.05;
            f.gateway_timeout = 0.05;
            f.connection_reset = 0.05;
            f.truncated_json = 0.05;
            f.token_revocation = 0.05;
            f.slow = 0.05;
        }),
    ];
    for (i, (name, set)) in kinds.into_iter().enumerate() {
        let mut cfg = SimConfig { token_lifetime: Some(Duration::from_secs(3)), ..world(20 + i as u64) };
        set(&mut cfg.faults);
        let env = Env::start(cfg, "page_size = 20\n#rest\n[limits]\nretry_max_wait_secs = 0.5\n").await;
        let (out, _) = run_report(&env, "r1.json");
        assert_success(&out);
        env.sim.mutate(env.sim.random_changes(9, 3)).unwrap();
        let (out, rep) = run_report(&env, "r2.json");
        assert_success(&out);
        assert_lake_equals_truth(&env.lake(), &env.sim.truth());
        let faults: u64 = env.sim.stats()["faults"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
        assert!(faults > 0, "{name}: the simulator injected no fault");
        assert!(rep["totals"]["retries"].as_u64().unwrap() > 0 || name == "token_revocation", "{name}: no retries counted: {rep}");
        env.sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sync_state_rebaselines_and_deletes_what_vanished() {
    let env = Env::start(world(31), "page_size = 25\n").await;
    let (out, _) = run_report(&env, "r1.json");
    assert_success(&out);

    // Updates, deletes, moves and a deleted folder while the tokens are lost.
    let mut changes = env.sim.random_changes(4, 4);
    let mb = env.sim.mailbox_ids()[0].clone();
    let truth = env.sim.truth();
    let folder = truth["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == mb.as_str())
        .and_then(|m| {
            m["mail_folders"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["displayName"] != "Inbox" && f["totalItemCount"].as_u64().unwrap_or(0) > 0 && f["childFolderCount"] == 0)
        })
        .map(|f| f["id"].as_str().unwrap().to_string())
        .expect("a user folder with messages");
    changes.push(Mutation::DeleteFolder { mailbox: mb.clone(), id: folder });
    env.sim.mutate(changes).unwrap();
    for m in env.sim.mailbox_ids() {
        env.sim.expire_sync_state(&m);
    }

    let (out, rep) = run_report(&env, "r2.json");
    assert_success(&out);
    assert!(rep["totals"]["rebaselines"].as_u64().unwrap() > 0, "{rep:#}");
    assert!(rep["totals"]["deletes"].as_u64().unwrap() > 0);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    // Unchanged items (same change key) were not written again by the re-baseline.
    let items: usize = env.sim.truth()["mailboxes"].as_array().unwrap().iter().map(|m| m["messages"].as_array().map_or(0, Vec::len)).sum();
    let upserts = rep["totals"]["upserts"].as_u64().unwrap() as usize;
    assert!(upserts * 3 < items, "the re-baseline rewrote {upserts} rows for {items} messages");

    // And the next run is incremental again.
    env.sim.mutate(env.sim.random_changes(5, 2)).unwrap();
    let (out, rep) = run_report(&env, "r3.json");
    assert_success(&out);
    assert_eq!(rep["totals"]["rebaselines"], 0);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sync_state_mid_round_is_rebaselined() {
    // Tokens expire while the backfill is paging (small pages, commits every page).
    let env = Env::start(SimConfig { latency: Duration::from_millis(5), ..world(32) }, "page_size = 5\n#rest\n[checkpoint]\ncommit_every_pages = 1\n").await;
    let sim_mailboxes = env.sim.mailbox_ids();
    let report = env.dir.path().join("r.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_outlake"))
        .args(["sync", "--progress", "never", "--report", report.to_str().unwrap(), "--config"])
        .arg(&env.config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Expire once the simulator has served a few pages.
    let mut served = 0;
    for _ in 0..2000 {
        served = env.sim.stats()["delta_pages"].as_u64().unwrap_or(0);
        if served >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for m in &sim_mailboxes {
        env.sim.expire_sync_state(m);
    }
    // Otherwise the tokens expired before the round or after it, and nothing below tests a
    // re-baseline mid-round.
    assert!(served >= 20, "only {served} delta pages served before the tokens expired");
    assert!(child.try_wait().unwrap().is_none(), "the run ended before the tokens expired");
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());

    // The truth alone would also hold if no request had met the 410 (the expiry came too late,
    // or the link in hand was not a token); the report says the rounds really restarted.
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let messages_rebaselines: u64 = rep["mailboxes"].as_array().unwrap().iter().filter_map(|m| m["streams"]["messages"]["rebaselines"].as_u64()).sum();
    assert!(messages_rebaselines > 0, "no messages partition re-baselined after the 410: {rep:#}");
    assert!(rep["totals"]["rebaselines"].as_u64().unwrap() >= messages_rebaselines, "{rep:#}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_mailboxes_fail_alone_and_the_run_says_why() {
    let mut cfg = world(40);
    cfg.users = 4;
    let probe = outlake_simulator::Simulator::start(cfg.clone()).await.unwrap();
    let ids = probe.mailbox_ids();
    probe.shutdown().await;
    cfg.blocked_mailboxes = vec![ids[0].clone()];
    cfg.quota_exceeded_mailboxes = vec![ids[1].clone()];
    let env = Env::start(cfg, "").await;
    let (out, rep) = run_report(&env, "r.json");
    assert_eq!(out.status.code(), Some(3), "partial failure exit code; stderr:\n{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ErrorAccessDenied") && err.contains("ErrorQuotaExceeded"), "{err}");
    assert_eq!(rep["totals"]["mailboxes_failed"], 2, "{rep:#}");
    assert_eq!(rep["totals"]["mailboxes_skipped"], 1, "the user without a mailbox is skipped");
    // The healthy mailbox is complete.
    let ok = &ids[2];
    let lake_msgs = super::support::current_state(&env.lake(), "messages");
    let truth = env.sim.truth();
    let want = truth["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == ok.as_str()).unwrap()["messages"].as_array().unwrap().len();
    let got = lake_msgs.keys().filter(|k| k.starts_with(ok.as_str())).count();
    assert_eq!(got, want);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_stops_at_once_with_the_auth_exit_code() {
    let env = Env::start(world(50), "").await;
    let text = std::fs::read_to_string(&env.config).unwrap().replace(&env.sim.client_secret(), "not-the-secret");
    std::fs::write(&env.config, text).unwrap();
    let out = env.sync();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("AADSTS7000215") && err.contains("OUTLAKE_SOURCE__CLIENT_SECRET"), "{err}");
    assert!(!err.contains("not-the-secret"), "the secret was printed: {err}");
    assert_eq!(env.sim.stats()["token_requests"]["client_credentials"], 1, "a refused secret is not retried");
    env.sim.shutdown().await;
}
