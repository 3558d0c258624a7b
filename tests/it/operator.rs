//! Operator commands and outputs against the simulator: `check`, `estimate`, `status --json`,
//! `reset --stream`, the `--report` JSON, the `--metrics` file and progress bars.

use std::collections::BTreeMap;

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, assert_success};
use super::truth::assert_lake_equals_truth;

fn world() -> SimConfig {
    SimConfig { users: 4, messages_per_mailbox: 240, events_per_mailbox: 40, seed: 7, ..SimConfig::default() }
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn read_json(env: &Env, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(env.dir.path().join(name)).expect("file written")).expect("JSON")
}

fn sync_with_outputs(env: &Env, report: &str, metrics: &str) -> Value {
    let r = env.dir.path().join(report);
    let m = env.dir.path().join(metrics);
    let out = env.outlake(&["sync", "--progress", "never", "--report", r.to_str().unwrap(), "--metrics", m.to_str().unwrap()]);
    assert_success(&out);
    read_json(env, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_a_good_config() {
    let env = Env::start(world(), "").await;
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for name in ["config", "token", "mailboxes", "mail_folders", "messages", "events"] {
        assert!(t.lines().any(|l| l.starts_with("ok") && l.contains(name)), "no ok line for {name}:\n{t}");
    }
    assert!(!t.contains("FAILED"), "{t}");
    assert!(t.contains("all checks passed"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_missing_permission() {
    let cfg = SimConfig { app_roles: vec!["Mail.Read".into(), "User.Read.All".into()], ..world() };
    let env = Env::start(cfg, "").await;
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    let failed: Vec<&str> = t.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert_eq!(failed.len(), 1, "only events fails:\n{t}");
    assert!(failed[0].contains("events"), "{t}");
    assert!(t.contains("Calendars.Read"), "the missing permission is named:\n{t}");
    assert!(t.lines().any(|l| l.starts_with("ok") && l.contains("messages")), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_wrong_secret() {
    let env = Env::start(world(), "").await;
    let toml = std::fs::read_to_string(&env.config).unwrap().replace(&env.sim.client_secret(), "not-the-secret-value");
    std::fs::write(&env.config, toml).unwrap();
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.lines().any(|l| l.starts_with("FAILED") && l.contains("token") && l.contains("AADSTS7000215")), "{t}");
    assert!(t.contains("client_secret"), "the fix names the key:\n{t}");
    assert!(!t.contains("not-the-secret-value"), "the secret is never printed:\n{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_is_close_to_what_a_sync_makes() {
    let env = Env::start(world(), "").await;
    let out = env.outlake(&["estimate", "--json", "--events-per-mailbox", "40"]);
    assert_success(&out);
    let est: Value = serde_json::from_slice(&out.stdout).expect("estimate --json is JSON");
    // The human form prints too, with its assumptions.
    let human = env.outlake(&["estimate"]);
    assert_success(&human);
    let h = String::from_utf8_lossy(&human.stdout);
    assert!(h.contains("assumptions:") && h.contains("time lower bound"), "{h}");

    let before = env.sim.stats();
    let rep = sync_with_outputs(&env, "run.json", "run.prom");
    let after = env.sim.stats();
    let sim_requests = after["requests_total"].as_u64().unwrap() - before["requests_total"].as_u64().unwrap();
    let reported = rep["totals"]["requests"].as_u64().unwrap();
    let estimated = est["totals"]["requests"].as_u64().unwrap();
    let within = |actual: u64| (estimated as f64 - actual as f64).abs() <= 0.25 * actual as f64;
    assert!(within(sim_requests), "estimate {estimated} vs simulator {sim_requests}");
    // Per mailbox (the report does not count the directory's requests).
    let est_mailboxes: u64 = est["mailboxes"].as_array().unwrap().iter().map(|m| m["requests"].as_u64().unwrap()).sum();
    assert!((est_mailboxes as f64 - reported as f64).abs() <= 0.25 * reported as f64, "estimate {est_mailboxes} vs report {reported}");
    // Never below the messages' own pages.
    let page_size = est["page_size"].as_u64().unwrap();
    let messages = est["totals"]["messages"].as_u64().unwrap();
    assert_eq!(messages, 3 * 240, "folder counts add up to the messages of the 3 mailboxes");
    assert!(estimated >= messages.div_ceil(page_size), "{estimated} < {messages}/{page_size}");
    assert_eq!(est["totals"]["mailboxes"], 3);
    assert!(est["totals"]["min_seconds"].as_f64().unwrap() > 0.0);
    // The estimate itself reads folders only.
    assert_eq!(before["requests_by_kind"].get("messages_delta").and_then(Value::as_u64).unwrap_or(0), 0, "estimate fetched messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_after_a_sync() {
    let env = Env::start(world(), "").await;
    let rep = sync_with_outputs(&env, "run.json", "run.prom");
    let out = env.outlake(&["status", "--json"]);
    assert_success(&out);
    let parts: Vec<Value> = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    // Per mailbox: one partition each for the folder tree, the calendars listing and the
    // mailbox's own row; one per folder for messages, one per owned calendar for events.
    let truth = env.sim.truth();
    let mut expected = 0;
    for mb in truth["mailboxes"].as_array().unwrap().iter().filter(|m| m["has_mailbox"] == true) {
        expected +=
            3 + mb["mail_folders"].as_array().map(|f| f.len()).unwrap_or(0) + super::truth::selected_calendars(mb, super::truth::Calendars::Owned).len();
    }
    assert_eq!(parts.len(), expected, "{parts:#?}");
    for p in &parts {
        let listing = p["stream"] == "calendars" || p["stream"] == "mailboxes";
        assert_eq!(p["cursor"], if listing { "listing (no delta)" } else { "delta link" }, "{p}");
        assert_eq!(p["rebaselines"], 0, "{p}");
        assert_eq!(p["calendar_window"].is_null(), p["stream"] != "events", "{p}");
    }
    let rows: u64 = parts.iter().map(|p| p["rows_committed"].as_u64().unwrap()).sum();
    let reported = rep["totals"]["upserts"].as_u64().unwrap() + rep["totals"]["deletes"].as_u64().unwrap();
    assert_eq!(rows, reported);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_events_rebaselines_events_only() {
    let env = Env::start(world(), "").await;
    assert_success(&env.sync());
    env.sim.mutate(env.sim.random_changes(5, 3)).unwrap();
    let out = env.outlake(&["reset", "--stream", "events"]);
    assert_success(&out);
    let rep = sync_with_outputs(&env, "after-reset.json", "after-reset.prom");
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    // The committed positions say which partitions re-baselined.
    let st = env.outlake(&["status", "--json"]);
    assert_success(&st);
    let parts: Vec<Value> = serde_json::from_slice(&st.stdout).unwrap();
    for p in &parts {
        let reb = p["rebaselines"].as_u64().unwrap();
        if p["stream"] == "events" {
            assert!(reb >= 1, "events partition did not re-baseline: {p}");
        } else {
            assert_eq!(reb, 0, "{p}");
        }
        // random_changes may delete a folder: its messages partition is retired.
        assert!(
            p["cursor"] == "delta link"
                || (p["stream"] == "messages" && p["cursor"] == "retired")
                || (["calendars", "mailboxes"].contains(&p["stream"].as_str().unwrap()) && p["cursor"] == "listing (no delta)"),
            "{p}"
        );
    }
    // And so does the run's report (needs the runner to count reset-initiated baselines).
    let mut rebaselined = BTreeMap::new();
    for mb in rep["mailboxes"].as_array().unwrap() {
        for (stream, s) in mb["streams"].as_object().into_iter().flatten() {
            *rebaselined.entry(stream.clone()).or_insert(0) += s["rebaselines"].as_u64().unwrap_or(0);
        }
    }
    let calendars: u64 = env.sim.truth()["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["has_mailbox"] == true)
        .map(|m| super::truth::selected_calendars(m, super::truth::Calendars::Owned).len() as u64)
        .sum();
    assert_eq!(rebaselined.get("events").copied(), Some(calendars), "one events re-baseline per calendar: {rebaselined:?}");
    for (stream, n) in &rebaselined {
        if stream != "events" {
            assert_eq!(*n, 0, "{stream} re-baselined: {rebaselined:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_metrics_match_simulator_stats() {
    let env = Env::start(world(), "").await;
    let before = env.sim.stats();
    let rep = sync_with_outputs(&env, "run.json", "run.prom");
    let after = env.sim.stats();
    let sim_by_mb = |id: &str| after["requests_by_mailbox"][id].as_u64().unwrap_or(0) - before["requests_by_mailbox"][id].as_u64().unwrap_or(0);

    let prom = std::fs::read_to_string(env.dir.path().join("run.prom")).unwrap();
    let mut prom_requests = BTreeMap::new();
    for line in prom.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name_labels, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        if let Some(labels) = name_labels.strip_prefix("outlake_requests{") {
            let mb = labels.strip_prefix("mailbox=\"").and_then(|l| l.split('"').next()).unwrap_or_else(|| panic!("no mailbox label: {line}"));
            prom_requests.insert(mb.to_string(), value as u64);
        }
    }
    let mut ok = 0;
    for mb in rep["mailboxes"].as_array().unwrap() {
        if mb["status"] != "ok" {
            continue;
        }
        ok += 1;
        let id = mb["mailbox_id"].as_str().unwrap();
        let n = mb["requests"].as_u64().unwrap();
        assert!(n > 0);
        assert_eq!(n, sim_by_mb(id), "report vs simulator requests for {id}");
        assert_eq!(prom_requests.get(id).copied(), Some(n), "metrics vs report for {id}");
    }
    assert_eq!(ok, 3);
    assert_eq!(
        rep["totals"]["throttled"].as_u64().unwrap(),
        after["throttled"].as_object().map(|t| t.values().filter_map(Value::as_u64).sum::<u64>()).unwrap_or(0)
    );
    assert!(prom.contains("outlake_run_success 1"), "{prom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_always_renders_bars() {
    let env = Env::start(SimConfig { latency: std::time::Duration::from_millis(5), ..world() }, "").await;
    // Under a pseudo-terminal (util-linux `script`), as an operator sees it.
    let cmd = format!("{} sync --progress always --config {}", env!("CARGO_BIN_EXE_outlake"), env.config.display());
    let out = std::process::Command::new("script").args(["-qfec", &cmd, "/dev/null"]).env("RUST_LOG", "warn").env_remove("OUTLAKE_CONFIG").output();
    let Ok(out) = out else {
        eprintln!("`script` (util-linux) is not installed: progress rendering not checked");
        return;
    };
    assert_success(&out);
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("mailboxes"), "total bar missing:\n{tty}");
    assert!(tty.contains("items"), "mailbox bars missing:\n{tty}");
    let labels = env.sim.truth()["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["has_mailbox"] == true)
        .filter_map(|m| m["userPrincipalName"].as_str().map(str::to_string))
        .collect::<Vec<_>>();
    assert!(labels.iter().any(|l| tty.contains(l.as_str()) || tty.contains(&l[..l.len().min(20)])), "no mailbox label in the bars:\n{tty}");
}
