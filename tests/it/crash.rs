//! Crash safety: SIGKILL the real binary at many points of a backfill, rerun, and check that
//! the rebuilt state equals the truth, that no `(key, _seq)` pair appears twice, and that no
//! file a glob reader can see is ever partial or uncommitted.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outlake_simulator::SimConfig;

use super::support::{Env, assert_no_duplicate_seq, assert_success, read_batches, table_files};
use super::truth::assert_lake_equals_truth;

fn spawn(env: &Env) -> Child {
    Command::new(env!("CARGO_BIN_EXE_outlake"))
        .args(["sync", "--progress", "never", "--config"])
        .arg(&env.config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every visible Parquet file must be complete (a reader can open it) and named by a commit
/// record of the checkpoint store.
fn check_visible_files(lake: &Path, checked: &mut HashSet<std::path::PathBuf>) {
    for table in ["messages", "events", "mail_folders"] {
        for f in table_files(lake, table) {
            if checked.contains(&f) {
                continue;
            }
            let batches = std::panic::catch_unwind(|| read_batches(&f));
            assert!(batches.is_ok(), "a glob reader saw an unreadable file {}", f.display());
            checked.insert(f);
        }
    }
    // Nothing under a table folder is a temporary or staging name.
    for table in ["messages", "events", "mail_folders"] {
        for p in super::support::files_under(&lake.join(table)) {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            assert!(name.ends_with(".parquet") || name.starts_with('.') || name.starts_with('_'), "unexpected file {name} under {table}/");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_many_points_then_resume_equals_truth() {
    let cfg = SimConfig { users: 3, messages_per_mailbox: 400, events_per_mailbox: 30, seed: 91, latency: Duration::from_millis(3), ..SimConfig::default() };
    let env = Env::start(cfg, "page_size = 10\n#rest\n[checkpoint]\ncommit_every_pages = 2\n").await;
    let lake = env.lake();
    let mut checked = HashSet::new();
    let mut kills = 0;
    // Kill after a growing number of pages served, so the kill points spread over the backfill
    // and over the incremental run after a round of changes.
    let points = [3u64, 7, 12, 20, 31, 45, 60, 80];
    for (i, pages) in points.iter().enumerate() {
        if i == points.len() / 2 {
            // Let one run finish, then change things, so later kills hit an incremental round.
            let mut c = spawn(&env);
            c.wait().unwrap();
            env.sim.mutate(env.sim.random_changes(i as u64, 3)).unwrap();
        }
        let start = env.sim.stats()["delta_pages"].as_u64().unwrap_or(0);
        let mut child = spawn(&env);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut finished = false;
        loop {
            check_visible_files(&lake, &mut checked);
            if env.sim.stats()["delta_pages"].as_u64().unwrap_or(0) >= start + pages {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "no progress");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !finished {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        check_visible_files(&lake, &mut checked);
    }
    assert!(kills >= 4, "only {kills} runs were killed mid-flight");
    // Resume to completion.
    assert_success(&env.sync());
    check_visible_files(&lake, &mut checked);
    assert_lake_equals_truth(&lake, &env.sim.truth());
    for t in ["messages", "events", "mail_folders"] {
        assert_no_duplicate_seq(&lake, t);
    }
    // `vacuum` clears what the kills left in staging.
    let out = env.outlake(&["vacuum", "--older-than-secs", "0"]);
    assert_success(&out);
    // (object_store's local backend writes uploads as `<name>#<n>` temporaries and lists
    // only finished objects; a kill can leave such a temporary, which no reader sees.)
    let staged: Vec<String> = std::fs::read_dir(lake.join("_staging"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| !n.contains('#')).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "staging holds {staged:?} after vacuum");
    // And the lake still equals the truth after vacuum.
    assert_lake_equals_truth(&lake, &env.sim.truth());
    env.sim.shutdown().await;
}
