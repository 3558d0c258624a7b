//! The product slice: full sync, a round of every kind of change, incremental sync; the
//! current state rebuilt from Parquet equals the simulator's truth, field by field.

use outlake_simulator::SimConfig;

use super::support::{Env, assert_no_duplicate_seq, assert_success, read_rows};
use super::truth::assert_lake_equals_truth;

fn small_world() -> SimConfig {
    SimConfig { users: 3, messages_per_mailbox: 300, events_per_mailbox: 40, seed: 11, ..SimConfig::default() }
}

fn report(env: &Env, name: &str) -> serde_json::Value {
    let p = env.dir.path().join(name);
    serde_json::from_slice(&std::fs::read(&p).expect("report written")).expect("report is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_sync_equals_truth() {
    let env = Env::start(small_world(), "").await;

    let r1 = env.dir.path().join("run1.json");
    let out = env.outlake(&["sync", "--progress", "never", "--report", r1.to_str().unwrap()]);
    assert_success(&out);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    let first = report(&env, "run1.json");

    let changes = env.sim.random_changes(3, 4);
    env.sim.mutate(changes).expect("mutations apply");
    // Negative control: before the incremental sync the lake must no longer match the truth,
    // or the comparison would be proving nothing.
    let (lake, truth) = (env.lake(), env.sim.truth());
    let stale = std::panic::catch_unwind(|| assert_lake_equals_truth(&lake, &truth));
    assert!(stale.is_err(), "the lake matched the truth before the changes were synced");

    let r2 = env.dir.path().join("run2.json");
    let out = env.outlake(&["sync", "--progress", "never", "--report", r2.to_str().unwrap()]);
    assert_success(&out);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    let second = report(&env, "run2.json");

    // The second run is incremental: far fewer requests and rows than the backfill.
    let req1 = first["totals"]["requests"].as_u64().unwrap();
    let req2 = second["totals"]["requests"].as_u64().unwrap();
    let up1 = first["totals"]["upserts"].as_u64().unwrap();
    let up2 = second["totals"]["upserts"].as_u64().unwrap();
    assert!(req2 < req1, "incremental run made {req2} requests, the backfill {req1}");
    assert!(up2 * 5 < up1, "incremental run wrote {up2} upserts, the backfill {up1}");
    assert!(second["totals"]["deletes"].as_u64().unwrap() > 0, "the changes included deletes and moves");

    for t in ["messages", "events", "mail_folders"] {
        assert_no_duplicate_seq(&env.lake(), t);
    }

    // A third run with no changes writes nothing new.
    let before = read_rows(&env.lake(), "messages").len();
    assert_success(&env.sync());
    assert_eq!(read_rows(&env.lake(), "messages").len(), before);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_without_mailbox_is_skipped_and_reported() {
    let env = Env::start(small_world(), "").await;
    let r = env.dir.path().join("r.json");
    let out = env.outlake(&["sync", "--progress", "never", "--report", r.to_str().unwrap()]);
    assert_success(&out);
    let rep = report(&env, "r.json");
    assert_eq!(rep["totals"]["mailboxes_skipped"], 1, "{rep:#}");
    assert_eq!(rep["totals"]["mailboxes_ok"].as_u64().unwrap() as usize, env.sim.mailbox_ids().len());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_on_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_outlake"))
        .args(["demo", "--messages", "150", "--users", "2", "--progress", "never", "--dir"])
        .arg(&lake)
        .output()
        .unwrap();
    assert_success(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("read_parquet("), "prints a DuckDB query: {stdout}");
    let msgs = super::support::current_state(&lake, "messages");
    assert!(msgs.len() > 250, "demo wrote {} current messages", msgs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_mailboxes_are_left_out() {
    let probe = outlake_simulator::Simulator::start(small_world()).await.unwrap();
    let truth = probe.truth();
    probe.shutdown().await;
    let mb = truth["mailboxes"].as_array().unwrap().iter().find(|m| m["has_mailbox"] == true).unwrap();
    let (id, upn) = (mb["id"].as_str().unwrap().to_string(), mb["userPrincipalName"].as_str().unwrap().to_uppercase());
    // A glob on the UPN, matched without regard to case.
    let pattern = format!("{}*", &upn[..upn.find('@').unwrap()]);
    let env = Env::start(small_world(), &format!("exclude_mailboxes = [\"{pattern}\"]\n")).await;
    assert_success(&env.sync());
    let msgs = super::support::current_state(&env.lake(), "messages");
    assert!(!msgs.is_empty());
    assert!(msgs.keys().all(|k| !k.starts_with(&id)), "the excluded mailbox {id} was synced");
    env.sim.shutdown().await;
}

/// With a memory budget far smaller than the backfill, fetches wait for pages to be written and
/// open files are written out early (more, smaller files); the output is still the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_memory_budget_rolls_files_and_equals_truth() {
    let world = SimConfig { users: 2, messages_per_mailbox: 1500, events_per_mailbox: 10, seed: 5, ..SimConfig::default() };
    let env = Env::start(world, "page_size = 200\n#rest\n[limits]\nmax_buffered_mb = 1\n").await;
    assert_success(&env.sync());
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    assert_no_duplicate_seq(&env.lake(), "messages");
    let files = super::support::table_files(&env.lake(), "messages").len();
    let status = env.outlake(&["status", "--json"]);
    let partitions =
        serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap().as_array().unwrap().iter().filter(|r| r["stream"] == "messages").count();
    assert!(files > partitions, "{files} message files for {partitions} partitions: nothing was written out early");
    env.sim.shutdown().await;
}

/// A rebaseline of a folder larger than the memory budget (1 MB, ~2 MB of messages in the
/// largest folder) still ends in the truth: the key index and the streamed deletes do not go
/// through the page budget, and the pages do, a few at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebaseline_larger_than_the_memory_budget_equals_truth() {
    let world = SimConfig { users: 1, messages_per_mailbox: 2500, events_per_mailbox: 0, seed: 15, ..SimConfig::default() };
    let env = Env::start(
        world,
        "page_size = 200
#rest
[limits]
max_buffered_mb = 1
",
    )
    .await;
    assert_success(&env.sync());
    let mailbox = env.sim.mailbox_ids()[0].clone();
    env.sim.expire_sync_state(&mailbox);
    env.sim.mutate(env.sim.random_changes(21, 15)).unwrap();
    let (out, rep) = super::support::sync_with_report(&env, "r.json");
    assert_success(&out);
    assert!(rep["totals"]["rebaselines"].as_u64().unwrap() > 0, "{:#}", rep["totals"]);
    assert!(rep["totals"]["deletes"].as_u64().unwrap() > 0, "the changes deleted messages: {:#}", rep["totals"]);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    env.sim.shutdown().await;
}

/// `mailboxes` may mix ids, UPNs and globs: globs select users of the directory (matched
/// without regard to case), a user without a mailbox matched by a glob is skipped, and the
/// output is the truth of exactly the selected mailboxes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_globs_select_from_the_directory() {
    let env = Env::start(SimConfig { users: 5, ..small_world() }, "").await;
    let truth = env.sim.truth();
    let all = truth["mailboxes"].as_array().unwrap().clone();
    let with_mailbox: Vec<&serde_json::Value> = all.iter().filter(|m| m["has_mailbox"] == true).collect();
    assert!(with_mailbox.len() >= 3);
    // One mailbox by id, one by an upper-case glob on its UPN, and a glob that matches only the
    // user without a mailbox (skipped, not failed).
    let by_id = with_mailbox[0]["id"].as_str().unwrap().to_string();
    let upn = with_mailbox[1]["userPrincipalName"].as_str().unwrap().to_uppercase();
    let by_glob = format!("{}*", &upn[..upn.find('@').unwrap()]);
    let no_mailbox = all.iter().find(|m| m["has_mailbox"] == false).map(|m| m["userPrincipalName"].as_str().unwrap().to_string());
    let mut entries = vec![format!("\"{by_id}\""), format!("\"{by_glob}\"")];
    if let Some(u) = &no_mailbox {
        entries.push(format!("\"{}?\"", &u[..u.len() - 1]));
    }
    let text = std::fs::read_to_string(&env.config).unwrap().replace("mailboxes = \"all\"", &format!("mailboxes = [{}]", entries.join(", ")));
    std::fs::write(&env.config, text).unwrap();

    let p = env.dir.path().join("r.json");
    let out = env.outlake(&["sync", "--progress", "never", "--report", p.to_str().unwrap()]);
    assert_success(&out);
    let rep = report(&env, "r.json");
    assert_eq!(rep["totals"]["mailboxes_ok"], 2, "{rep}");
    assert_eq!(rep["totals"]["mailboxes_skipped"], u64::from(no_mailbox.is_some()), "{rep}");
    let selected = [by_id, with_mailbox[1]["id"].as_str().unwrap().to_string()];
    let mut only = truth.clone();
    only["mailboxes"] = serde_json::Value::Array(all.iter().filter(|m| selected.contains(&m["id"].as_str().unwrap().to_string())).cloned().collect());
    assert_lake_equals_truth(&env.lake(), &only);
    env.sim.shutdown().await;
}
