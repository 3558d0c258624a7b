//! The engine's promises that no failure passes silently and that positions stay right across
//! releases: a panicking fetch, a commit that fails after a fetch failure, a conflicting
//! writer, the `_seq` floor, and a lake whose commit records were written in format 1.
//! Faults are injected by wrapping the real Graph source or the real lake; the data always
//! comes from the simulator over loopback.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use outlake_pipeline::lake::{CommitRequest, DynLake, Lake, LakeError, StagedWriter};
use outlake_pipeline::model::{Checkpoint, KeyState, Mailbox, Page, PageRequest, PartitionKey, Stream};
use outlake_pipeline::progress::Progress;
use outlake_pipeline::runner::{FailureKind, MailboxStatus, RunOutcome, RunReport, Runner};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{DynSource, MailboxListing, RequestStats, Source, SourceError, SourceErrorKind};
use outlake_simulator::{SimConfig, Simulator};
use outlake_sinks::{ObjectLake, WriterSettings, open_lake};
use serde_json::Value;

use super::support::{Env, assert_success, files_under, read_rows, run_in_process_with};
use super::truth::assert_lake_equals_truth;

fn world(seed: u64) -> SimConfig {
    SimConfig { users: 2, messages_per_mailbox: 300, events_per_mailbox: 20, seed, ..SimConfig::default() }
}

async fn local_lake(root: &Path) -> DynLake {
    std::fs::create_dir_all(root).unwrap();
    Arc::new(open_lake(&format!("file://{}", root.display()), None, &Default::default(), WriterSettings::default()).await.unwrap())
}

/// What a source wrapper does on a fetch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trap {
    /// Panic on the first mid-round fetch of a messages partition.
    Panic,
    /// Fail (kind `Partition`) on the first mid-round fetch of a messages partition, and set the
    /// shared flag that makes the lake refuse the next commit.
    FailThenBreakLake,
    /// Fail (kind `Partition`) on the third mid-round fetch of any messages partition.
    FailThirdMidRound,
}

/// The real Graph source, with one trap set on the first mid-round messages fetch.
struct Trapped {
    inner: DynSource,
    trap: Trap,
    sprung: AtomicBool,
    mid_round_fetches: AtomicUsize,
    break_lake: Arc<Mutex<Option<PartitionKey>>>,
}

#[async_trait]
impl Source for Trapped {
    async fn mailboxes(&self) -> Result<MailboxListing, SourceError> {
        self.inner.mailboxes().await
    }
    async fn fetch_page(&self, mb: &Mailbox, part: &PartitionKey, req: &PageRequest, seq: &SeqGen, run_id: &str) -> Result<Page, SourceError> {
        let mid_round = matches!(req, PageRequest::Link(outlake_pipeline::model::Cursor::Next(_)));
        let nth = if part.stream == Stream::Messages && mid_round { self.mid_round_fetches.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 };
        let due = match self.trap {
            Trap::FailThirdMidRound => nth == 3,
            _ => nth >= 1,
        };
        if due && !self.sprung.swap(true, Ordering::SeqCst) {
            match self.trap {
                Trap::Panic => panic!("injected panic in normalization"),
                Trap::FailThirdMidRound => return Err(SourceError::new(SourceErrorKind::Partition, None, "injected: retries exhausted")),
                Trap::FailThenBreakLake => {
                    *self.break_lake.lock().unwrap() = Some(part.clone());
                    return Err(SourceError::new(SourceErrorKind::Partition, None, "injected: retries exhausted"));
                }
            }
        }
        self.inner.fetch_page(mb, part, req, seq, run_id).await
    }
    async fn calendars(&self, mb: &Mailbox, seq: &SeqGen, run_id: &str) -> Result<outlake_pipeline::source::CalendarListing, SourceError> {
        self.inner.calendars(mb, seq, run_id).await
    }
    fn mailbox_row(&self, mb: &Mailbox, seq: &SeqGen, run_id: &str) -> RecordBatch {
        self.inner.mailbox_row(mb, seq, run_id)
    }
    fn delete_rows(&self, part: &PartitionKey, ids: &[String], seq: &SeqGen, run_id: &str) -> RecordBatch {
        self.inner.delete_rows(part, ids, seq, run_id)
    }
    async fn well_known_folder(&self, mb: &Mailbox, name: &str) -> Result<Option<String>, SourceError> {
        self.inner.well_known_folder(mb, name).await
    }
    fn stats(&self, mailbox_id: &str) -> RequestStats {
        self.inner.stats(mailbox_id)
    }
}

fn trapped(trap: Trap, break_lake: Arc<Mutex<Option<PartitionKey>>>) -> impl FnOnce(DynSource) -> DynSource {
    move |inner| Arc::new(Trapped { inner, trap, sprung: AtomicBool::new(false), mid_round_fetches: AtomicUsize::new(0), break_lake })
}

/// The real lake, with two faults: refuse the next commit of the partition in `broken`, and
/// let a rival writer win the first messages commit (`rival`).
struct Faulty {
    inner: Arc<ObjectLake>,
    broken: Arc<Mutex<Option<PartitionKey>>>,
    rival: bool,
    rival_commits: AtomicUsize,
}

#[async_trait]
impl Lake for Faulty {
    async fn load(&self, p: &PartitionKey) -> Result<Option<Checkpoint>, LakeError> {
        self.inner.load(p).await
    }
    async fn list(&self, mailbox_id: Option<&str>) -> Result<Vec<Checkpoint>, LakeError> {
        self.inner.list(mailbox_id).await
    }
    fn writer(&self, p: &PartitionKey) -> Box<dyn StagedWriter> {
        self.inner.writer(p)
    }
    async fn commit(&self, req: CommitRequest) -> Result<Checkpoint, LakeError> {
        let refuse = {
            let mut broken = self.broken.lock().unwrap();
            let hit = broken.as_ref() == Some(&req.partition);
            if hit {
                *broken = None;
            }
            hit
        };
        if refuse {
            return Err(LakeError::new(outlake_pipeline::lake::LakeErrorKind::Storage, Some("_state/x".into()), "injected: the store refused the record put"));
        }
        if self.rival && req.partition.stream == Stream::Messages && self.rival_commits.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another process commits this very position first, with no files of its own.
            let theirs = CommitRequest { files: vec![], rows: 0, run_id: "rival".into(), ..req.clone() };
            self.inner.commit(theirs).await?;
        }
        self.inner.commit(req).await
    }
    async fn current_keys(&self, p: &PartitionKey) -> Result<HashMap<String, KeyState>, LakeError> {
        self.inner.current_keys(p).await
    }
    async fn put_round_file(&self, p: &PartitionKey, bytes: Vec<u8>) -> Result<String, LakeError> {
        self.inner.put_round_file(p, bytes).await
    }
    async fn get_round_file(&self, p: &PartitionKey, name: &str) -> Result<Vec<u8>, LakeError> {
        self.inner.get_round_file(p, name).await
    }
    async fn delete_round_files(&self, p: &PartitionKey, names: &[String]) -> Result<(), LakeError> {
        self.inner.delete_round_files(p, names).await
    }
    async fn vacuum(&self, min_age: std::time::Duration) -> Result<Vec<String>, LakeError> {
        self.inner.vacuum(min_age).await
    }
}

async fn faulty_lake(root: &Path, broken: Arc<Mutex<Option<PartitionKey>>>, rival: bool) -> DynLake {
    std::fs::create_dir_all(root).unwrap();
    let inner = open_lake(&format!("file://{}", root.display()), None, &Default::default(), WriterSettings::default()).await.unwrap();
    Arc::new(Faulty { inner: Arc::new(inner), broken, rival, rival_commits: AtomicUsize::new(0) })
}

/// What was committed is intact: a run without faults ends in the simulator's truth.
async fn a_clean_run_catches_up(sim: &Simulator, lake: DynLake, root: &Path) {
    let rep = super::support::run_in_process(sim, lake, Default::default(), Progress::none()).await;
    assert_eq!(rep.outcome(), RunOutcome::Ok, "{rep:#?}");
    assert_lake_equals_truth(root, &sim.truth());
}

fn failures(rep: &RunReport) -> Vec<(FailureKind, String)> {
    rep.failures().map(|(_, _, f)| (f.kind, f.message.clone())).collect()
}

/// Before: the fetch task's handle was never awaited; a panic closed the channel, the write
/// stage took that for a cancel, committed, and the partition was reported ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_fetch_fails_its_partition_and_the_run_is_partial() {
    let sim = Simulator::start(world(131)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake = local_lake(&root).await;
    let rep = run_in_process_with(&sim, lake.clone(), trapped(Trap::Panic, Arc::default())).await;
    let got = failures(&rep);
    assert_eq!(got.len(), 1, "{rep:#?}");
    assert_eq!(got[0].0, FailureKind::Panicked);
    assert!(got[0].1.contains("panicked (injected panic in normalization)"), "{}", got[0].1);
    assert_eq!(rep.outcome(), RunOutcome::Partial, "the binary exits 3");
    assert_eq!(rep.failed_mailboxes().count(), 1);
    a_clean_run_catches_up(&sim, lake, &root).await;
    sim.shutdown().await;
}

/// Before: `let _ = self.commit(..)` on the failure path threw the commit's error away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_after_a_fetch_failure_is_reported_with_it() {
    let sim = Simulator::start(world(132)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let broken: Arc<Mutex<Option<PartitionKey>>> = Arc::default();
    let lake = faulty_lake(&root, broken.clone(), false).await;
    let rep = run_in_process_with(&sim, lake.clone(), trapped(Trap::FailThenBreakLake, broken)).await;
    let got = failures(&rep);
    assert_eq!(got.len(), 1, "{rep:#?}");
    assert_eq!(got[0].0, FailureKind::Source);
    assert!(got[0].1.contains("injected: retries exhausted"), "{}", got[0].1);
    assert!(got[0].1.contains("then committing the pages fetched before it failed too: injected: the store refused"), "{}", got[0].1);
    assert_eq!(rep.outcome(), RunOutcome::Partial);
    a_clean_run_catches_up(&sim, lake, &root).await;
    sim.shutdown().await;
}

/// Before: a conflict became `PartitionError::Other(String)` and lost its kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rival_writer_is_reported_as_a_conflict() {
    let sim = Simulator::start(world(133)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake = faulty_lake(&root, Arc::default(), true).await;
    let rep = super::support::run_in_process(&sim, lake.clone(), Default::default(), Progress::none()).await;
    let got = failures(&rep);
    assert_eq!(got.len(), 1, "{rep:#?}");
    assert_eq!(got[0].0, FailureKind::Conflict);
    assert!(got[0].1.contains("another outlake process committed"), "{}", got[0].1);
    let report = serde_json::to_value(&rep).unwrap();
    let kinds: Vec<&Value> = report["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["streams"]["messages"]["failures"].as_array().into_iter().flatten())
        .map(|f| &f["kind"])
        .collect();
    assert_eq!(kinds, vec![&Value::from("conflict")]);
    assert_eq!(rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Failed).count(), 1);
    sim.shutdown().await;
}

/// Before: the floor was the newest round's `started_seq`, below rows written later in that
/// round, so after a clock step back the next run's rows could lose to older ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seq_floor_lies_above_every_committed_row() {
    let sim = Simulator::start(world(134)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake = local_lake(&root).await;
    let rep = super::support::run_in_process(&sim, lake.clone(), Default::default(), Progress::none()).await;
    assert_eq!(rep.outcome(), RunOutcome::Ok, "{rep:#?}");
    let max_seq =
        ["mail_folders", "messages", "events"].iter().flat_map(|t| read_rows(&root, t)).filter_map(|r| r.get("_seq").and_then(Value::as_i64)).max().unwrap();
    let floor = Runner::seq_floor(&lake).await.unwrap();
    assert!(floor >= max_seq, "floor {floor} is below a committed _seq {max_seq}");
    // A generator started at the floor with the clock far behind hands out larger values.
    assert!(SeqGen::new(floor).next() > max_seq);
    sim.shutdown().await;
}

/// Rewrite every commit record under `_state` as format 1 wrote it.
fn downgrade_records_to_format_1(lake: &Path) -> usize {
    let mut n = 0;
    for path in files_under(&lake.join("_state")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["format_version"], outlake_sinks::format::FORMAT_VERSION);
        if ["calendars", "events", "mailboxes"].contains(&v["partition"]["stream"].as_str().unwrap()) {
            // Format 1 had no calendars listing, no mailboxes table, and one events partition per
            // mailbox without a calendar window (that layout's upgrade is
            // `calendars::a_lake_with_one_events_…`).
            continue;
        }
        let state = v["state"].as_str().unwrap();
        let kind = v["round"]["kind"].as_str().unwrap();
        let mut round = serde_json::json!({
            "baseline": kind != "incremental",
            "owes_deletes": kind == "rebaseline",
            "started_seq": v["round"]["started_seq"],
            "pages": v["round"]["pages"],
        });
        if let Some(t) = v["round"]["scope"]["received_after"].as_str() {
            round["scope"] = format!("received_after={t}").into();
        }
        if state == "parked" {
            round["scope"] = "out_of_scope".into();
        }
        let v1 = serde_json::json!({
            "format_version": 1,
            "partition": v["partition"],
            "seq": v["seq"],
            "cursor": v["cursor"],
            "round": round,
            "files": v["files"],
            "run_id": v["run_id"],
            "committed_at": v["committed_at"],
            "total_rows": v["total_rows"],
            "rebaselines": v["rebaselines"],
            "retired": state == "retired",
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&v1).unwrap()).unwrap();
        n += 1;
    }
    n
}

/// A lake written by the previous release (commit records of format 1) keeps working: the next
/// run resumes from its delta links, writes format 2, and ends in the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_written_in_format_1_is_upgraded_in_place() {
    let env = Env::start(world(135), "").await;
    assert_success(&env.sync());
    assert!(downgrade_records_to_format_1(&env.lake()) > 0);
    env.sim.mutate(env.sim.random_changes(7, 3)).unwrap();
    let (out, rep) = super::support::sync_with_report(&env, "r.json");
    assert_success(&out);
    assert_eq!(rep["totals"]["rebaselines"], 0, "delta links of format 1 are followed, not thrown away");
    let upserts = rep["totals"]["upserts"].as_u64().unwrap();
    assert!(upserts < 100, "an incremental run, not a backfill ({upserts} upserts)");
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    let status = env.outlake(&["status", "--json"]);
    assert_success(&status);
    let rows: Value = serde_json::from_slice(&status.stdout).unwrap();
    // Every partition committed in this run (the current format); a folder deleted by the changes is retired.
    let states: std::collections::BTreeSet<&str> = rows.as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert!(states.iter().all(|s| ["syncing", "retired"].contains(s)) && states.contains("syncing"), "{rows:#}");
    // The newest record of every partition is in the current format.
    let mut newest: std::collections::BTreeMap<std::path::PathBuf, std::path::PathBuf> = Default::default();
    for path in files_under(&env.lake().join("_state")).into_iter().filter(|p| !p.starts_with(env.lake().join("_state/_leases"))) {
        let dir = path.parent().unwrap().to_path_buf();
        let slot = newest.entry(dir).or_insert_with(|| path.clone());
        if path > *slot {
            *slot = path;
        }
    }
    assert_eq!(newest.len(), rows.as_array().unwrap().len());
    for path in newest.values() {
        let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(v["format_version"], outlake_sinks::format::FORMAT_VERSION, "{}", path.display());
    }
    env.sim.shutdown().await;
}

/// Before: a rebaseline kept the ids it had seen in memory only, so an interrupted one started
/// its folder over (issue: re-baselines in bounded memory). Now its seen log is committed with
/// each position and the next run resumes at the nextLink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rebaseline_resumes_at_its_next_link() {
    let sim = Simulator::start(SimConfig { users: 1, messages_per_mailbox: 1200, events_per_mailbox: 0, seed: 136, ..SimConfig::default() }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let lake = local_lake(&root).await;
    let rep = super::support::run_in_process(&sim, lake.clone(), Default::default(), Progress::none()).await;
    assert_eq!(rep.outcome(), RunOutcome::Ok, "{rep:#?}");

    let mailbox = sim.mailbox_ids()[0].clone();
    sim.expire_sync_state(&mailbox);
    sim.mutate(sim.random_changes(11, 3)).unwrap();
    let rep = super::support::run_in_process_committing(&sim, lake.clone(), trapped(Trap::FailThirdMidRound, Arc::default()), 1).await;
    assert_eq!(failures(&rep).len(), 1, "{rep:#?}");
    assert!(rep.total(|s| s.rebaselines) > 0);
    let stopped: Vec<Checkpoint> = lake
        .list(Some(&mailbox))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.round.kind == outlake_pipeline::model::RoundKind::Rebaseline && matches!(c.cursor, Some(outlake_pipeline::model::Cursor::Next(_))))
        .collect();
    assert_eq!(stopped.len(), 1, "one folder stopped mid-rebaseline");
    let log = stopped[0].round.seen.clone().expect("a rebaseline round has a seen log");
    assert!(!log.files.is_empty(), "what the round returned is logged with its commits");

    let rep = super::support::run_in_process(&sim, lake.clone(), Default::default(), Progress::none()).await;
    assert_eq!(rep.outcome(), RunOutcome::Ok, "{rep:#?}");
    assert_eq!(rep.total(|s| s.rebaselines), 0, "the interrupted rebaseline resumed instead of starting over");
    assert_lake_equals_truth(&root, &sim.truth());
    // The finished round's log is gone.
    let logs = files_under(&root.join("_state")).into_iter().filter(|p| p.components().any(|c| c.as_os_str() == "round")).count();
    assert_eq!(logs, 0);
    sim.shutdown().await;
}
