//! Many workers on one lake: overlapping runs and workers draining a tenant together
//! (`--shard any`) never sync a mailbox at the same time — checked on the simulator's request
//! log, which records the run id each request's User-Agent names — and the lake they build
//! together equals the truth, even when one of them is SIGKILLed and started again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::Env;
use super::truth::assert_lake_equals_truth;

fn spawn_sync(env: &Env, report: &PathBuf, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_outlake"))
        .args(["sync", "--progress", "never", "--report"])
        .arg(report)
        .args(args)
        .arg("--config")
        .arg(&env.config)
        .env("RUST_LOG", "warn")
        .env_remove("OUTLAKE_SHARD")
        .env_remove("JOB_COMPLETION_INDEX")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn read_report(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Status per mailbox id in a run report.
fn statuses(report: &Value) -> BTreeMap<String, String> {
    report["mailboxes"].as_array().unwrap().iter().map(|m| (m["mailbox_id"].as_str().unwrap().to_string(), m["status"].as_str().unwrap().to_string())).collect()
}

fn assert_no_shared_mailbox(env: &Env, max_per_mailbox: usize) {
    let log = env.sim.request_log();
    assert_eq!(log.dropped, 0, "the request log kept every request");
    assert!(log.overlapping_workers().is_empty(), "mailboxes served to two workers at once: {:?}", log.overlapping_workers());
    let worst = log.max_in_flight().into_iter().max_by_key(|(_, n)| *n);
    if let Some((mailbox, n)) = worst {
        assert!(n <= max_per_mailbox, "mailbox {mailbox} had {n} requests in flight, more than max_concurrent_per_mailbox = {max_per_mailbox}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_both_succeed_and_never_share_a_mailbox() {
    let cfg = SimConfig { users: 8, messages_per_mailbox: 60, events_per_mailbox: 6, seed: 161, latency: Duration::from_millis(10), ..SimConfig::default() };
    let env = Env::start(cfg, "page_size = 10\n#rest\n[limits]\nmax_concurrent_per_mailbox = 3\n").await;
    let (ra, rb) = (env.dir.path().join("a.json"), env.dir.path().join("b.json"));
    let a = spawn_sync(&env, &ra, &[]);
    let b = spawn_sync(&env, &rb, &[]);
    let ((ca, ea), (cb, eb)) = (finish(a), finish(b));
    assert_eq!(ca, Some(0), "first run: {ea}");
    assert_eq!(cb, Some(0), "second run: {eb}");
    let (sa, sb) = (statuses(&read_report(&ra)), statuses(&read_report(&rb)));
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for (mailbox, a) in &sa {
        let b = &sb[mailbox];
        // A mailbox the other run held is busy; the one with a mailbox is synced by at least one.
        for s in [a, b] {
            assert!(["ok", "busy", "skipped"].contains(&s.as_str()), "{mailbox}: {s}");
        }
        assert!(a != "busy" || b != "busy", "{mailbox}: busy in both runs");
    }
    assert_no_shared_mailbox(&env, 3);
    assert_eq!(env.sim.request_log().run_ids().len(), 2, "both runs talked to Graph, each under its own run id");
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());

    // A run that finds every mailbox busy exits 0 with one line: another worker (this test,
    // through the lake's own lease store) holds every mailbox's lease.
    let lake = outlake_sinks::open_lake(&format!("file://{}", env.lake().display()), None, &Default::default(), Default::default()).await.unwrap();
    let store = outlake_pipeline::lake::Lake::leases(&lake).unwrap();
    let other = outlake_pipeline::lease::Leases::new(
        store,
        outlake_pipeline::lease::LeaseHolder { worker: "pod-7/1".into(), run_id: "other-run".into(), process: None },
        Duration::from_secs(600),
    );
    let mut held = Vec::new();
    for (mailbox, s) in &sa {
        if s != "skipped" {
            let outlake_pipeline::lease::Acquired::Held(lease) = other.acquire(mailbox, None).await.unwrap() else { panic!("{mailbox} is free") };
            held.push(lease);
        }
    }
    let rc = env.dir.path().join("c.json");
    let (code, stderr) = finish(spawn_sync(&env, &rc, &[]));
    assert_eq!(code, Some(0), "{stderr}");
    let summary: Vec<&str> = stderr.lines().filter(|l| l.contains("run ")).collect();
    assert_eq!(summary.len(), 1, "one line: {stderr}");
    assert!(summary[0].contains(&format!("nothing to do: all {} mailbox(es) are busy", held.len())), "{stderr}");
    let report = read_report(&rc);
    for m in report["mailboxes"].as_array().unwrap().iter().filter(|m| m["status"] == "busy") {
        assert_eq!(m["lease"]["worker"], "pod-7/1");
        assert_eq!(m["lease"]["run_id"], "other-run");
    }
    assert_eq!(report["totals"]["mailboxes_busy"], held.len());
    // `status` shows who holds them.
    let out = env.outlake(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("leased now ({} mailbox(es) being synced)", held.len())), "{text}");
    assert!(text.contains("pod-7/1") && text.contains("other-run"), "{text}");
    for lease in held {
        lease.release(true).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_drain_a_tenant_and_survive_a_sigkill() {
    let users = 200;
    let cfg = SimConfig { users, messages_per_mailbox: 6, events_per_mailbox: 2, seed: 1616, latency: Duration::from_millis(5), ..SimConfig::default() };
    let env = Env::start(cfg, "page_size = 10\n#rest\n[limits]\nmax_concurrent_per_mailbox = 2\n[checkpoint]\nlease_ttl_secs = 3\n").await;
    env.sim.set_request_log_capacity(1_000_000);
    let report = |i: usize, attempt: usize| env.dir.path().join(format!("w{i}-{attempt}.json"));
    let spawn_worker = |i: usize, attempt: usize| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_outlake"));
        c.args(["sync", "--progress", "never", "--shard", "any", "--report"])
            .arg(report(i, attempt))
            .arg("--config")
            .arg(&env.config)
            .env("RUST_LOG", "warn")
            .env("JOB_COMPLETION_INDEX", i.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let mut workers: Vec<Child> = (0..4).map(|i| spawn_worker(i, 0)).collect();
    // Kill worker 0 once the tenant is well under way (a fifth of the expected requests).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let served = env.sim.request_log().entries.len();
        if served >= users * 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {served} requests");
        assert!(workers[0].try_wait().unwrap().is_none(), "worker 0 finished before it could be killed; give the tenant more work");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    workers[0] = spawn_worker(0, 1);

    let mut synced_by: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut with_mailbox: BTreeSet<String> = BTreeSet::new();
    for (i, w) in workers.into_iter().enumerate() {
        let (code, stderr) = finish(w);
        assert_eq!(code, Some(0), "worker {i}: {stderr}");
        for (mailbox, status) in statuses(&read_report(&report(i, usize::from(i == 0)))) {
            assert!(["ok", "synced_elsewhere", "skipped"].contains(&status.as_str()), "worker {i}, {mailbox}: {status} (a drain leaves nothing busy)");
            if status != "skipped" {
                with_mailbox.insert(mailbox.clone());
            }
            if status == "ok" {
                synced_by.entry(mailbox).or_default().insert(i);
            }
        }
    }
    // Every mailbox was synced by some worker; most by exactly one (a mailbox is synced again
    // only when its worker was killed, or it finished before another worker's drain began).
    assert!(with_mailbox.len() + 1 >= users, "{} mailboxes", with_mailbox.len());
    assert_eq!(synced_by.keys().cloned().collect::<BTreeSet<_>>(), with_mailbox, "every mailbox synced by a worker that finished");
    let twice = synced_by.values().filter(|w| w.len() > 1).count();
    assert!(twice < users / 4, "{twice} mailboxes synced by more than one surviving worker");
    assert_no_shared_mailbox(&env, 2);
    assert!(env.sim.request_log().run_ids().len() >= 5, "five worker runs (one killed) sent requests");
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
}
