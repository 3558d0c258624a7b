//! Scoping inside a mailbox: `include_folders` / `exclude_folders` and `received_after`. The
//! current state rebuilt from Parquet must equal the simulator's truth restricted to the scope,
//! after a backfill, after changes, and after the scope itself changes (widened: the new part is
//! fetched; narrowed: what left the scope gets delete rows).

use std::collections::{BTreeMap, HashSet};

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, assert_success, current_state};
use super::truth::{assert_lake_equals_truth, parse_ts};

fn world() -> SimConfig {
    SimConfig { users: 2, messages_per_mailbox: 240, events_per_mailbox: 10, seed: 29, ..SimConfig::default() }
}

/// Each folder's display-name path ("Inbox/Projects/2024"), per mailbox, from the truth.
fn folder_paths(mailbox: &Value) -> BTreeMap<String, String> {
    let folders: BTreeMap<String, (String, Option<String>)> = mailbox["mail_folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap().to_string(), (f["displayName"].as_str().unwrap().to_string(), f["parentFolderId"].as_str().map(str::to_string))))
        .collect();
    folders
        .keys()
        .map(|id| {
            let mut names = vec![];
            let mut cur = Some(id.clone());
            while let Some((name, parent)) = cur.as_ref().and_then(|c| folders.get(c)) {
                names.push(name.clone());
                cur = parent.clone();
            }
            names.reverse();
            (id.clone(), names.join("/"))
        })
        .collect()
}

/// The truth with only the messages `keep(folder path, message)` accepts.
fn truth_where(truth: &Value, keep: impl Fn(&str, &Value) -> bool) -> Value {
    let mut t = truth.clone();
    for mb in t["mailboxes"].as_array_mut().unwrap() {
        if mb["mail_folders"].as_array().is_none() {
            continue;
        }
        let paths = folder_paths(mb);
        let msgs: Vec<Value> = mb["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| keep(paths.get(m["parentFolderId"].as_str().unwrap()).map(String::as_str).unwrap_or(""), m))
            .cloned()
            .collect();
        mb["messages"] = Value::Array(msgs);
    }
    t
}

fn under(path: &str, prefix: &str) -> bool {
    let (p, x) = (path.to_lowercase(), prefix.to_lowercase());
    p == x || p.starts_with(&format!("{x}/"))
}

fn folders_in(lake_messages: &BTreeMap<String, super::support::Row>) -> HashSet<String> {
    lake_messages.values().filter_map(|r| r["parent_folder_id"].as_str().map(str::to_string)).collect()
}

fn set_key(env: &Env, key: &str, value: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let mut lines: Vec<String> = text.lines().filter(|l| !l.starts_with(&format!("{key} ="))).map(str::to_string).collect();
    let at = lines.iter().position(|l| l == "[source]").unwrap() + 1;
    lines.insert(at, format!("{key} = {value}"));
    std::fs::write(&env.config, lines.join("\n")).unwrap();
}

fn report(env: &Env) -> Value {
    let (out, rep) = super::support::sync_with_report(env, "scope-report.json");
    assert_success(&out);
    rep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_scope_follows_well_known_names_paths_and_changes() {
    let env = Env::start(world(), "include_folders = [\"inbox\", \"receipts\", \"sentitems\"]\nexclude_folders = [\"inbox/Projects/2024\"]\n").await;
    let in_scope =
        |path: &str, _: &Value| (under(path, "Inbox") || under(path, "Receipts") || under(path, "Sent Items")) && !under(path, "Inbox/Projects/2024");

    // The estimate counts only folders in scope.
    let out = env.outlake(&["estimate", "--json"]);
    assert_success(&out);
    let est: Value = serde_json::from_slice(&out.stdout).unwrap();
    let scoped_truth = truth_where(&env.sim.truth(), in_scope);
    let want: usize = scoped_truth["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["has_mailbox"] != false)
        .map(|m| m["messages"].as_array().map_or(0, |v| v.len()))
        .sum();
    assert_eq!(est["totals"]["messages"].as_u64(), Some(want as u64), "{est}");

    let first = report(&env);
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), in_scope));
    // Every folder of the tree is still in mail_folders (checked above); 2024, Drafts, Deleted
    // Items, Junk Email, Archive and Outbox were left out of messages.
    let synced = first["totals"]["mailboxes_ok"].as_u64().unwrap();
    assert!(synced >= 1);
    assert_eq!(first["totals"]["folders_excluded"].as_u64(), Some(synced * 6), "{first}");
    let full = truth_where(&env.sim.truth(), |_, _| true);
    let all_folders: usize = full["mailboxes"].as_array().unwrap().iter().map(|m| m["messages"].as_array().map_or(0, |v| v.len())).sum();
    let scoped = current_state(&env.lake(), "messages").len();
    assert!(scoped > 0 && scoped < all_folders, "{scoped} of {all_folders} messages are in scope");

    // Changes (including moves between folders in and out of scope) are followed.
    let changes = env.sim.random_changes(5, 6);
    env.sim.mutate(changes).expect("mutations apply");
    assert_success(&env.sync());
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), in_scope));

    // Widening the scope fetches the newly included folder.
    set_key(&env, "exclude_folders", "[]");
    let widened = |path: &str, m: &Value| in_scope(path, m) || under(path, "Inbox/Projects/2024");
    assert_success(&env.sync());
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), widened));

    // Narrowing it writes delete rows for what left, and nothing else changes.
    set_key(&env, "include_folders", "[\"inbox/projects\"]");
    let r = report(&env);
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), |p, _| under(p, "Inbox/Projects")));
    assert!(r["totals"]["deletes"].as_u64().unwrap() > 0, "{r}");
    let status = env.outlake(&["status", "--json"]);
    assert_success(&status);
    let rows: Value = serde_json::from_slice(&status.stdout).unwrap();
    let parked = rows.as_array().unwrap().iter().filter(|r| r["cursor"] == "out of scope (folder excluded)").count();
    assert!(parked as u64 >= synced * 4, "inbox, receipts, travel, sent items of each mailbox are parked: {rows}");

    // And back: a parked folder re-baselines when it returns.
    set_key(&env, "include_folders", "[\"Inbx\", \"Inbox\", \"RECEIPTS/*\"]");
    assert_success(&env.sync());
    let back = |p: &str, _: &Value| under(p, "Inbox") || under(p, "Receipts/Travel");
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), back));
    assert!(!folders_in(&current_state(&env.lake(), "messages")).is_empty());
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_after_keeps_newer_messages_and_rescopes() {
    let env = Env::start(world(), "").await;
    let mut received: Vec<i64> = env.sim.truth()["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["messages"].as_array().cloned().unwrap_or_default())
        .map(|m| parse_ts(m["receivedDateTime"].as_str().unwrap()).unwrap().timestamp())
        .collect();
    received.sort();
    let at = |q: usize| chrono::DateTime::from_timestamp(received[received.len() * q / 4], 0).unwrap();
    let newer_than = |t: chrono::DateTime<chrono::Utc>| move |_: &str, m: &Value| parse_ts(m["receivedDateTime"].as_str().unwrap()).unwrap() >= t;

    let median = at(2);
    set_key(&env, "received_after", &format!("\"{}\"", median.to_rfc3339()));
    let r = report(&env);
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), newer_than(median)));
    let filtered = r["totals"]["filtered"].as_u64().unwrap();
    assert!(filtered as usize >= received.len() / 2 - 2, "{filtered} messages filtered of {}", received.len());

    let changes = env.sim.random_changes(8, 6);
    env.sim.mutate(changes).expect("mutations apply");
    assert_success(&env.sync());
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), newer_than(median)));

    // An earlier cutoff re-baselines the folders and fetches the older messages.
    let q1 = at(1);
    set_key(&env, "received_after", &format!("\"{}\"", q1.to_rfc3339()));
    let r = report(&env);
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), newer_than(q1)));
    assert!(r["totals"]["rebaselines"].as_u64().unwrap() > 0, "{r}");

    // A later one deletes what fell out of scope.
    let q3 = at(3);
    set_key(&env, "received_after", &format!("\"{}\"", q3.format("%Y-%m-%d")));
    let day = parse_ts(&format!("{}T00:00:00Z", q3.format("%Y-%m-%d"))).unwrap();
    let r = report(&env);
    assert_lake_equals_truth(&env.lake(), &truth_where(&env.sim.truth(), newer_than(day)));
    assert!(r["totals"]["deletes"].as_u64().unwrap() > 0, "{r}");

    // Removing the key syncs everything.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.lines().filter(|l| !l.starts_with("received_after")).collect::<Vec<_>>().join("\n")).unwrap();
    assert_success(&env.sync());
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    env.sim.shutdown().await;
}

/// The progress events of a scoped backfill, as the bars would draw them: per mailbox, the
/// expected items are the selected folders' counts, and the upserts seen on pages add up to
/// the messages in scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_count_only_the_folders_in_scope() {
    use outlake_pipeline::model::Stream;
    use outlake_pipeline::progress::{Progress, ProgressEvent};
    let sim = outlake_simulator::Simulator::start(world()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let lake: outlake_pipeline::lake::DynLake =
        std::sync::Arc::new(outlake_sinks::open_lake(&url, None, &Default::default(), outlake_sinks::WriterSettings::default()).await.unwrap());
    let patterns = |v: &[&str]| v.iter().map(|p| outlake_config::FolderPattern::parse(p).unwrap()).collect::<Vec<_>>();
    let scope = outlake_pipeline::scope::FolderScope { include: patterns(&["inbox", "sentitems"]), exclude: patterns(&["inbox/projects/2024"]) };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let rep = super::support::run_in_process(&sim, lake, scope, Progress::new(tx)).await;
    assert!(rep.fatal.is_none(), "{:?}", rep.fatal);

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut upserts: BTreeMap<String, u64> = BTreeMap::new();
    let mut finished = 0;
    while let Ok(ev) = rx.try_recv() {
        match ev {
            ProgressEvent::MailboxExpected { mailbox_id, items } => *expected.entry(mailbox_id).or_default() += items,
            ProgressEvent::Page { mailbox_id, stream: Stream::Messages, upserts: n, .. } => *upserts.entry(mailbox_id).or_default() += n,
            ProgressEvent::MailboxFinished { ok: true, .. } => finished += 1,
            _ => {}
        }
    }
    let truth = truth_where(&sim.truth(), |p, _| (under(p, "Inbox") || under(p, "Sent Items")) && !under(p, "Inbox/Projects/2024"));
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for mb in truth["mailboxes"].as_array().unwrap().iter().filter(|m| m["has_mailbox"] != false) {
        want.insert(mb["id"].as_str().unwrap().to_string(), mb["messages"].as_array().unwrap().len() as u64);
    }
    assert_eq!(finished, want.len());
    assert_eq!(expected, want, "expected items per mailbox");
    assert_eq!(upserts, want, "upserts on message pages per mailbox");
    sim.shutdown().await;
}
