//! The report and the metrics never claim more than happened: their row counts are the rows a
//! commit of the run holds — checked against the lake itself (rows carrying the run's
//! `_run_id`) — after a Graph failure, a storage failure and a signal.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, read_rows};

const TABLES: [&str; 5] = ["mail_folders", "messages", "events", "calendars", "mailboxes"];

fn world(seed: u64) -> SimConfig {
    SimConfig { seed, users: 3, messages_per_mailbox: 120, events_per_mailbox: 20, ..SimConfig::default() }
}

/// (upserts, deletes) the lake holds from run `run_id`.
fn lake_rows_of_run(lake: &Path, run_id: &str) -> (u64, u64) {
    let mut n = (0, 0);
    for t in TABLES {
        for r in read_rows(lake, t).iter().filter(|r| r["_run_id"] == run_id) {
            if r["_op"] == "upsert" {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
    }
    n
}

/// The sum of a Prometheus metric's samples.
fn metric_sum(prom: &str, name: &str) -> f64 {
    prom.lines().filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' '])).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Report, metrics and lake agree on the rows the run committed.
fn assert_counts_agree(lake: &Path, report: &Value, prom: &str) {
    let run_id = report["run_id"].as_str().unwrap();
    let (upserts, deletes) = lake_rows_of_run(lake, run_id);
    assert_eq!((report["totals"]["upserts"].as_u64(), report["totals"]["deletes"].as_u64()), (Some(upserts), Some(deletes)), "report vs lake");
    assert_eq!(metric_sum(prom, "outlake_rows_upserted") as u64, upserts, "metrics vs lake");
    assert_eq!(metric_sum(prom, "outlake_rows_deleted") as u64, deletes, "metrics vs lake");
}

fn sync_with_outputs(env: &Env) -> (Option<i32>, Value, String) {
    let (report, metrics) = (env.dir.path().join("report.json"), env.dir.path().join("metrics.prom"));
    let out = env.outlake(&["sync", "--progress", "never", "--report", report.to_str().unwrap(), "--metrics", metrics.to_str().unwrap()]);
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).expect("a report is written")).unwrap();
    (out.status.code(), rep, std::fs::read_to_string(&metrics).expect("metrics are written"))
}

/// A mailbox Graph refuses fails; the others' rows are counted, the refused one's are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_graph_failure_the_counts_are_what_was_committed() {
    let env = Env::start(world(151), "").await;
    let refused = env.sim.mailbox_ids()[0].clone();
    env.sim.reconfigure(|c| c.quota_exceeded_mailboxes = vec![refused.clone()]);
    let (code, rep, prom) = sync_with_outputs(&env);
    assert_eq!(code, Some(3));
    let statuses: Vec<(&str, &str)> =
        rep["mailboxes"].as_array().unwrap().iter().map(|m| (m["mailbox_id"].as_str().unwrap(), m["status"].as_str().unwrap())).collect();
    assert!(statuses.contains(&(refused.as_str(), "failed")), "{statuses:?}");
    assert!(rep["totals"]["upserts"].as_u64().unwrap() > 0);
    assert_counts_agree(&env.lake(), &rep, &prom);
    assert_eq!(metric_sum(&prom, "outlake_run_success"), 0.0);
    env.sim.shutdown().await;
}

/// Nothing can be committed (a file stands where the staging folder must be): every count is
/// zero, and what was staged and lost is reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_storage_failure_nothing_is_counted_as_written() {
    let env = Env::start(world(152), "").await;
    std::fs::write(env.lake().join("_staging"), b"not a folder").unwrap();
    let (code, rep, prom) = sync_with_outputs(&env);
    assert_ne!(code, Some(0));
    assert_eq!(
        (rep["totals"]["upserts"].as_u64(), rep["totals"]["deletes"].as_u64(), rep["totals"]["commits"].as_u64()),
        (Some(0), Some(0), Some(0)),
        "{rep:#}"
    );
    assert!(rep["mailboxes"].as_array().unwrap().iter().filter(|m| m["status"] != "skipped").all(|m| m["status"] == "failed"), "{rep:#}");
    assert_counts_agree(&env.lake(), &rep, &prom);
    assert_eq!(metric_sum(&prom, "outlake_run_success"), 0.0);
    env.sim.shutdown().await;
}

/// SIGINT during a sync: exit 130, the run and the mailboxes that did not finish say
/// `interrupted`, success is 0, and the counts are what the lake holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_signal_the_report_says_interrupted() {
    // Slow enough that the signal lands mid-run: every request waits 40 ms, pages are small.
    let env = Env::start(SimConfig { latency: Duration::from_millis(40), ..world(153) }, "page_size = 10\n#rest\n[limits]\nmax_parallel_mailboxes = 1\n").await;
    let (report, metrics) = (env.dir.path().join("report.json"), env.dir.path().join("metrics.prom"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outlake"));
    cmd.args(["sync", "--progress", "never", "--report", report.to_str().unwrap(), "--metrics", metrics.to_str().unwrap(), "--config"])
        .arg(&env.config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OUTLAKE_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    // Wait until the binary logs its first mailbox done (an event, not a delay) — mailboxes run
    // one at a time, so the next one is mid-round — then interrupt it.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("mailbox synced");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("mailbox synced")), "the binary logged no finished mailbox: {seen:#?}");
    let signalled = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(signalled.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:#?}");

    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(rep["interrupted"], true, "{rep:#}");
    let statuses: Vec<&str> = rep["mailboxes"].as_array().unwrap().iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"interrupted"), "{statuses:?}");
    assert!(!statuses.contains(&"failed"), "{statuses:?}");
    assert_eq!(metric_sum(&prom, "outlake_run_success"), 0.0);
    assert_eq!(metric_sum(&prom, "outlake_run_interrupted"), 1.0);
    assert_counts_agree(&env.lake(), &rep, &prom);
    env.sim.shutdown().await;
}
