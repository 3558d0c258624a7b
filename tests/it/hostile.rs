//! Hostile input (issue 9): whatever Graph, the identity platform, the operator or the storage
//! hands outlake ends in a message a person can act on, with committed data intact and the
//! other mailboxes finished. Corrupted pages come from the simulator's hostile rules
//! (`outlake_simulator::hostile`); the storage faults from a store wrapper that fails on demand.
//!
//! `hostile/fuzz.rs` holds the fuzz-style property test of the commit-record reader.

mod fuzz;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions,
};
use outlake_pipeline::lake::DynLake;
use outlake_pipeline::progress::Progress;
use outlake_pipeline::runner::{RunOutcome, RunReport};
use outlake_simulator::{Corruption, HostileRule, HostileStream, Mutation, PageSelect, SimConfig, Simulator};
use outlake_sinks::{ObjectLake, WriterSettings};
use serde_json::Value;

use super::support::{Env, Row, assert_success, read_rows, stderr, sync_with_report as run_report};
use super::truth::assert_lake_equals_truth;

fn world(seed: u64, users: usize) -> SimConfig {
    SimConfig { users, messages_per_mailbox: 40, events_per_mailbox: 10, seed, ..SimConfig::default() }
}

fn mailbox<'a>(rep: &'a Value, id: &str) -> &'a Value {
    rep["mailboxes"].as_array().unwrap().iter().find(|m| m["mailbox_id"] == id).unwrap_or_else(|| panic!("{id} not in report {rep:#}"))
}

/// Every committed row of one mailbox in one table, as a set of `(id, _seq, full row)` strings.
fn rows_of(lake: &Path, table: &str, mb: &str) -> BTreeSet<String> {
    read_rows(lake, table).into_iter().filter(|r| r["mailbox_id"] == mb).map(|r| Value::Object(r).to_string()).collect()
}

fn upserts_of(lake: &Path, table: &str, mb: &str) -> Vec<Row> {
    read_rows(lake, table).into_iter().filter(|r| r["mailbox_id"] == mb && r["_op"] == "upsert").collect()
}

fn truth_count(sim: &Simulator, mb: &str, table: &str) -> usize {
    let t = sim.truth();
    t["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == mb).unwrap()[table].as_array().unwrap().len()
}

/// Wrong types and unreadable timestamps are written as nulls and counted; unknown fields are
/// ignored; missing properties are null. The run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lenient_rule_records_items_with_nulls_and_counts_them() {
    let probe = Simulator::start(world(90, 4)).await.unwrap();
    let ids = probe.mailbox_ids();
    probe.shutdown().await;
    let (a, b, c) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let mut cfg = world(90, 4);
    cfg.hostile = vec![
        HostileRule::new(&a, Some(HostileStream::Messages), Corruption::WrongTypes),
        HostileRule::new(&a, Some(HostileStream::Events), Corruption::WrongTypes),
        HostileRule::new(&b, None, Corruption::UnknownFields),
        HostileRule::new(&c, Some(HostileStream::Messages), Corruption::DropProperties(vec!["subject".into(), "bodyPreview".into()])),
    ];
    let env = Env::start(cfg, "").await;
    let (out, rep) = run_report(&env, "r.json");
    assert_success(&out);
    let lake = env.lake();

    // a: every upsert carries wrong types → nulls, each item counted once.
    let msgs = upserts_of(&lake, "messages", &a);
    assert_eq!(msgs.len(), truth_count(&env.sim, &a, "messages"), "every item is recorded");
    for r in &msgs {
        for col in ["is_read", "received_date_time", "categories"] {
            assert!(r.get(col).is_none(), "{col} should be null: {r:?}");
        }
        assert!(r.get("change_key").is_some() && r.get("last_modified_date_time").is_some(), "well-typed properties are kept: {r:?}");
    }
    let ra = mailbox(&rep, &a);
    assert_eq!(ra["status"], "ok");
    assert_eq!(ra["streams"]["messages"]["malformed_items"].as_u64().unwrap() as usize, msgs.len(), "{ra:#}");
    let events = upserts_of(&lake, "events", &a);
    assert!(!events.is_empty());
    assert!(events.iter().all(|r| r.get("is_all_day").is_none() && r.get("start_date_time").is_none()));
    assert_eq!(ra["streams"]["events"]["malformed_items"].as_u64().unwrap() as usize, events.len());
    assert_eq!(ra["streams"]["mail_folders"]["malformed_items"], 0);

    // b: unknown fields change nothing.
    let rb = mailbox(&rep, &b);
    for s in ["messages", "events", "mail_folders"] {
        assert_eq!(rb["streams"][s]["malformed_items"], 0, "{s}: {rb:#}");
    }
    assert_eq!(upserts_of(&lake, "messages", &b).len(), truth_count(&env.sim, &b, "messages"));

    // c: missing properties are null and not malformed.
    let rc = mailbox(&rep, &c);
    assert_eq!(rc["streams"]["messages"]["malformed_items"], 0);
    let cm = upserts_of(&lake, "messages", &c);
    assert_eq!(cm.len(), truth_count(&env.sim, &c, "messages"));
    assert!(cm.iter().all(|r| r.get("subject").is_none() && r.get("body_preview").is_none() && r.get("change_key").is_some()));

    // Graph behaves again: the next run is an ordinary incremental one.
    env.sim.reconfigure(|c| c.hostile.clear());
    env.sim.mutate(env.sim.random_changes(3, 2)).unwrap();
    let (out, _) = run_report(&env, "r2.json");
    assert_success(&out);
    env.sim.shutdown().await;
}

/// Pages that are not Graph pages fail their stream: `value` not an array, an id that is not a
/// string, a link to another host, a body over `limits.max_page_mb`. Each fails its mailbox
/// (exit 3) with a message naming the field / host / limit; nothing of the failed pages is
/// committed; the other mailboxes finish; once Graph behaves the next run catches up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pages_fail_their_mailbox_and_commit_nothing() {
    let cfg = world(91, 6);
    let env = Env::start(cfg, "#rest\n[limits]\nmax_page_mb = 1\n").await;
    let ids = env.sim.mailbox_ids();
    assert_eq!(ids.len(), 5);
    let (out, _) = run_report(&env, "r1.json");
    assert_success(&out);

    // Upserts only, so every message page with a change carries an item with an id.
    let changes: Vec<Mutation> =
        env.sim.random_changes(7, 3).into_iter().filter(|m| matches!(m, Mutation::CreateMessage { .. } | Mutation::UpdateMessage { .. })).collect();
    assert!(!changes.is_empty());
    env.sim.mutate(changes).unwrap();

    let cases: [(Option<HostileStream>, Corruption, &[&str]); 4] = [
        (Some(HostileStream::Messages), Corruption::ValueNotArray, &["`value`", "malformed page"]),
        (Some(HostileStream::Messages), Corruption::IdNotString, &["value[0]", "`id`"]),
        (None, Corruption::ForeignNextLink, &["evil.example.com", "refusing to follow link"]),
        (Some(HostileStream::Messages), Corruption::OversizedPage(2 * 1024 * 1024), &["limits.max_page_mb", "1048576"]),
    ];
    let lake = env.lake();
    let before: Vec<[BTreeSet<String>; 3]> =
        ids.iter().map(|m| [rows_of(&lake, "messages", m), rows_of(&lake, "events", m), rows_of(&lake, "mail_folders", m)]).collect();
    env.sim.reconfigure(|c| {
        c.hostile = cases.iter().zip(&ids).map(|((s, k, _), m)| HostileRule::new(m.clone(), *s, k.clone())).collect();
    });

    let (out, rep) = run_report(&env, "r2.json");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "partial failure; stderr:\n{err}");
    assert_eq!(rep["totals"]["mailboxes_failed"], 4, "{rep:#}");
    for (i, (stream, corruption, needles)) in cases.iter().enumerate() {
        let m = mailbox(&rep, &ids[i]);
        assert_eq!(m["status"], "failed", "{corruption:?}: {m:#}");
        let msg = m["error"].as_str().unwrap();
        for n in *needles {
            assert!(msg.contains(n), "{corruption:?}: `{n}` not in {msg}");
            assert!(err.contains(n), "{corruption:?}: `{n}` not in stderr {err}");
        }
        // Nothing of the failed pages is committed: the failing tables are row-for-row as before.
        let tables: &[usize] = if stream.is_none() { &[0, 1, 2] } else { &[0] };
        for &t in tables {
            let table = ["messages", "events", "mail_folders"][t];
            assert_eq!(rows_of(&lake, table, &ids[i]), before[i][t], "{corruption:?}: {table} of {} changed", ids[i]);
        }
    }
    // The healthy mailbox finished and is complete.
    let ok = &ids[4];
    assert_eq!(mailbox(&rep, ok)["status"], "ok");
    assert_eq!(super::support::current_state(&lake, "messages").keys().filter(|k| k.starts_with(ok.as_str())).count(), truth_count(&env.sim, ok, "messages"));

    // Graph behaves again: the next run resumes every failed partition from its last commit.
    env.sim.reconfigure(|c| c.hostile.clear());
    let (out, rep) = run_report(&env, "r3.json");
    assert_success(&out);
    assert_eq!(rep["totals"]["rebaselines"], 0, "no checkpoint pointed past bad data");
    assert_lake_equals_truth(&lake, &env.sim.truth());
    env.sim.shutdown().await;
}

/// Mid-round: the pages before a bad one are kept (committed at the last good link), the bad
/// page is not, and the next run continues from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_page_mid_round_keeps_the_pages_before_it() {
    let mut cfg = world(92, 2);
    cfg.messages_per_mailbox = 120;
    let env = Env::start(cfg, "page_size = 10\n#rest\n[checkpoint]\ncommit_every_pages = 1\n").await;
    let mb = env.sim.mailbox_ids()[0].clone();
    env.sim.reconfigure(|c| {
        c.hostile = vec![HostileRule::new(&mb, Some(HostileStream::Messages), Corruption::ValueNotArray).pages(PageSelect::Links)];
    });
    let (out, rep) = run_report(&env, "r1.json");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let m = mailbox(&rep, &mb);
    assert!(m["error"].as_str().unwrap().contains("`value`"), "{m:#}");
    // Only first pages (≤ 10 items per folder) made it; nothing fetched through a link did.
    let rows = upserts_of(&env.lake(), "messages", &mb);
    let folders: BTreeSet<&str> = rows.iter().map(|r| r["parent_folder_id"].as_str().unwrap()).collect();
    for f in &folders {
        let n = rows.iter().filter(|r| r["parent_folder_id"] == *f).count();
        assert!(n <= 10, "folder {f}: {n} rows committed, more than the first page");
    }
    assert!(!rows.is_empty(), "first pages are committed");
    assert!(rows.len() < truth_count(&env.sim, &mb, "messages"));

    env.sim.reconfigure(|c| c.hostile.clear());
    let (out, _) = run_report(&env, "r2.json");
    assert_success(&out);
    assert_lake_equals_truth(&env.lake(), &env.sim.truth());
    env.sim.shutdown().await;
}

/// A refusal from the token endpoint is never retried: exit 2 within seconds, the AADSTS code
/// and the config key that fixes it named. (A wrong secret: `faults.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_at_once_naming_code_and_key() {
    /// (what, the config value to break, the AADSTS code, the key named in the fix)
    type Case = (&'static str, fn(&Simulator) -> String, &'static str, &'static str);
    let cases: [Case; 2] = [
        ("unknown tenant", |s| s.tenant_id(), "AADSTS90002", "source.tenant_id"),
        ("unknown client id", |s| s.client_id(), "AADSTS700016", "source.client_id"),
    ];
    for (i, (what, field, code, key)) in cases.into_iter().enumerate() {
        let env = Env::start(world(95 + i as u64, 3), "").await;
        let wrong = "00000000-0000-4000-8000-00000000dead";
        let text = std::fs::read_to_string(&env.config).unwrap().replace(&field(&env.sim), wrong);
        std::fs::write(&env.config, text).unwrap();
        let (out, _) = run_report(&env, "r.json");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(code) && err.contains(key), "{what}: {err}");
        assert_eq!(env.sim.stats()["token_requests"]["client_credentials"], 1, "{what}: a refusal is not retried");
        assert!(super::support::table_files(&env.lake(), "messages").is_empty());
        env.sim.shutdown().await;
    }
}

/// `authority_url` / `graph_url` must be https unless loopback: the run stops before any
/// request with the config exit code and the key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_endpoints_off_loopback_are_refused() {
    for key in ["graph_url", "authority_url"] {
        let env = Env::start(world(97, 2), "").await;
        let url = env.sim.url();
        let text = std::fs::read_to_string(&env.config).unwrap().replace(&format!("{key} = \"{url}\""), &format!("{key} = \"http://graph.example.com\""));
        std::fs::write(&env.config, text).unwrap();
        let out = env.sync();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(err.contains(&format!("source.{key}")) && err.contains("https"), "{key}: {err}");
        assert_eq!(env.sim.stats()["requests_total"], 0, "{key}: no Graph request was made");
        env.sim.shutdown().await;
    }
}

// ---- storage faults, in process --------------------------------------------------------------

/// Wraps a store; puts whose path contains `fail_puts_under` fail.
#[derive(Debug)]
struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    fail_puts_under: Mutex<Option<String>>,
}

impl FailingStore {
    fn fail(&self, under: Option<&str>) {
        *self.fail_puts_under.lock().unwrap() = under.map(str::to_string);
    }
    fn check(&self, path: &ObjPath) -> object_store::Result<()> {
        match &*self.fail_puts_under.lock().unwrap() {
            Some(p) if path.as_ref().contains(p.as_str()) => {
                Err(object_store::Error::Generic { store: "FailingStore", source: format!("injected write failure of {path}").into() })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failing://{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(&self, location: &ObjPath, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &ObjPath, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &ObjPath, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<ObjPath>>) -> BoxStream<'static, object_store::Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&ObjPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&ObjPath>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &ObjPath, to: &ObjPath, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
    async fn rename_opts(&self, from: &ObjPath, to: &ObjPath, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

async fn run_in_process(sim: &Simulator, lake: DynLake) -> RunReport {
    super::support::run_in_process(sim, lake, Default::default(), Progress::none()).await
}

/// A failing write (staged data) or commit (record put) leaves every previous commit intact,
/// fails the run (non-zero) with the path named, and the next run catches up exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_faults_keep_the_previous_commit_and_name_the_path() {
    let sim = Simulator::start(world(98, 3)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    std::fs::create_dir_all(&root).unwrap();
    let store = Arc::new(FailingStore { inner: Arc::new(LocalFileSystem::new_with_prefix(&root).unwrap()), fail_puts_under: Mutex::new(None) });
    let object_lake = ObjectLake::from_store(store.clone(), None, WriterSettings::default());
    let lake: DynLake = Arc::new(object_lake);

    let rep = run_in_process(&sim, lake.clone()).await;
    assert!(rep.fatal.is_none() && rep.failed_mailboxes().next().is_none(), "{rep:#?}");
    assert_lake_equals_truth(&root, &sim.truth());

    for (round, under) in ["_staging/", "_state/"].into_iter().enumerate() {
        let what = under;
        sim.mutate(sim.random_changes(40 + round as u64, 2)).unwrap();
        let checkpoints = lake.list(None).await.unwrap();
        let tables: Vec<_> = ["messages", "events", "mail_folders"].iter().map(|t| super::support::table_files(&root, t)).collect();
        store.fail(Some(under));
        let rep = run_in_process(&sim, lake.clone()).await;
        store.fail(None);
        let code = outlake_exit_code(&rep);
        assert_ne!(code, 0, "{what}: the run must not succeed: {rep:#?}");
        let failed: Vec<_> = rep.failed_mailboxes().collect();
        assert!(!failed.is_empty() || rep.fatal.is_some(), "{what}: {rep:#?}");
        for m in &failed {
            let e = m.error.as_deref().unwrap();
            assert!(e.contains(under) && e.contains("path:"), "{what}: the path is not named: {e}");
            assert!(e.contains("injected write failure"), "{what}: {e}");
        }
        // Every previous commit is intact; a partition that moved on committed no rows (a round
        // without changes writes no file); no table file appeared.
        let after = lake.list(None).await.unwrap();
        assert_eq!(after.len(), checkpoints.len(), "{what}");
        for (a, b) in after.iter().zip(&checkpoints) {
            assert_eq!(a.partition, b.partition);
            if a != b {
                assert!(a.files.is_empty() && a.total_rows == b.total_rows, "{what}: {} committed rows: {a:#?}", a.partition);
            }
        }
        if under == "_state/" {
            assert_eq!(after, checkpoints, "{what}: no commit record can be written");
        }
        let tables_after: Vec<_> = ["messages", "events", "mail_folders"].iter().map(|t| super::support::table_files(&root, t)).collect();
        assert_eq!(tables_after, tables, "{what}: table files changed");

        // The store works again: the next run resumes from the previous commits.
        let rep = run_in_process(&sim, lake.clone()).await;
        assert!(rep.fatal.is_none() && rep.failed_mailboxes().next().is_none(), "{what}: {rep:#?}");
        assert_lake_equals_truth(&root, &sim.truth());
    }
    sim.shutdown().await;
}

/// The binary's rule (`src/commands/sync.rs`): fatal auth → 2, other fatal → 1, interrupted →
/// 130, failed mailboxes → 3.
fn outlake_exit_code(rep: &RunReport) -> u8 {
    match rep.outcome() {
        RunOutcome::AuthFailed => 2,
        RunOutcome::Stopped => 1,
        RunOutcome::Interrupted => 130,
        RunOutcome::Partial => 3,
        RunOutcome::Ok => 0,
    }
}
