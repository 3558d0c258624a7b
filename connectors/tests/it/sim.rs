//! `GraphSource` against `outlake_simulator`: full rounds, auth failures, token refresh,
//! expired sync state, mailbox discovery, and transient faults.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use outlake_config::Secret;
use outlake_connectors::{GraphOptions, GraphSource, MailboxSelection, schema};
use outlake_pipeline::model::{Cursor, Mailbox, PageRequest, PartitionKey, Stream};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{Source, SourceErrorKind};
use outlake_simulator::{FaultRates, SimConfig, Simulator};
use serde_json::Value;

fn options(sim: &Simulator, secret: &str) -> GraphOptions {
    let url = url::Url::parse(&sim.url()).unwrap();
    let mut o = GraphOptions::new(sim.tenant_id(), sim.client_id(), Some(Secret::new(secret)));
    o.authority_url = url.clone();
    o.graph_url = url;
    o.page_size = 25;
    o.retry_max_wait = Duration::from_millis(200);
    o.retry_max_total = Duration::from_secs(20);
    o.request_timeout = Duration::from_secs(10);
    let now = chrono::Utc::now();
    o.calendar_start = now - chrono::Duration::days(400);
    o.calendar_end = now + chrono::Duration::days(400);
    o
}

async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg).await.expect("simulator starts")
}

fn small() -> SimConfig {
    SimConfig { users: 2, messages_per_mailbox: 80, events_per_mailbox: 30, ..SimConfig::default() }
}

/// Follow a partition's round to its deltaLink; returns (batches, deltaLink).
async fn round(src: &GraphSource, mb: &Mailbox, part: &PartitionKey, start: PageRequest, seq: &SeqGen) -> (Vec<RecordBatch>, String) {
    let mut req = start;
    let mut batches = Vec::new();
    for _ in 0..10_000 {
        let page = src.fetch_page(mb, part, &req, seq, "run-t").await.unwrap_or_else(|e| panic!("{part}: {e}"));
        batches.push(page.batch);
        match page.cursor {
            Cursor::Next(n) => req = PageRequest::Link(Cursor::Next(n)),
            Cursor::Delta(d) => return (batches, d),
        }
    }
    panic!("round did not end");
}

/// Latest state per id over batches: (present ids, deleted ids).
fn state(batches: &[RecordBatch]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut present = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    for b in batches {
        let ids = b.column_by_name("id").unwrap().as_string::<i32>();
        let ops = b.column_by_name("_op").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let id = ids.value(i).to_string();
            if ops.value(i) == "delete" {
                present.remove(&id);
                deleted.insert(id);
            } else {
                deleted.remove(&id);
                present.insert(id);
            }
        }
    }
    (present, deleted)
}

fn truth_of<'a>(truth: &'a Value, id: &str) -> &'a Value {
    truth["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == id).expect("mailbox in truth")
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
}

/// An event time of the truth in UTC microseconds, to within a day: the truth serves times in
/// UTC except all-day events, at midnight in their own zone (at most 14 h off). Read without the
/// connector's time-zone code, so the test does not lean on what it checks; the test asserts
/// that no event lies within a day of its window's edges, where the difference could matter.
const DAY_MICROS: i64 = 86_400_000_000;

fn approx_utc(dt: &Value) -> i64 {
    let s = dt["dateTime"].as_str().unwrap();
    let naive = chrono::NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%dT%H:%M:%S").unwrap_or_else(|e| panic!("{s}: {e}"));
    naive.and_utc().timestamp_micros()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_round_of_each_stream_matches_the_truth() {
    let sim = start(small()).await;
    let opts = options(&sim, &sim.client_secret());
    let (win_start, win_end) = (opts.calendar_start.timestamp_micros(), opts.calendar_end.timestamp_micros());
    let src = GraphSource::new(opts).unwrap();
    let listing = src.mailboxes().await.unwrap();
    let mut got: Vec<String> = listing.mailboxes.iter().map(|m| m.id.clone()).collect();
    let mut want = sim.mailbox_ids();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let mb = listing.mailboxes[0].clone();
    let truth = sim.truth();
    let t = truth_of(&truth, &mb.id);
    let seq = SeqGen::new(0);

    // Folders.
    let fpart = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let (fb, delta) = round(&src, &mb, &fpart, PageRequest::Initial, &seq).await;
    assert!(delta.starts_with(&sim.url()));
    let (folders, _) = state(&fb);
    assert_eq!(folders, ids(&t["mail_folders"]));
    for b in &fb {
        assert_eq!(b.schema(), schema(Stream::MailFolders));
    }

    // Messages, folder by folder.
    let mut messages = BTreeSet::new();
    let mut rows = 0usize;
    for folder in &folders {
        let part = PartitionKey::new(&mb.id, Stream::Messages, Some(folder.clone()));
        let (mbatches, _) = round(&src, &mb, &part, PageRequest::Initial, &seq).await;
        for b in &mbatches {
            rows += b.num_rows();
            let pf = b.column_by_name("parent_folder_id").unwrap().as_string::<i32>();
            assert!((0..b.num_rows()).all(|i| pf.value(i) == folder.as_str()));
        }
        messages.extend(state(&mbatches).0);
    }
    assert_eq!(messages, ids(&t["messages"]));
    assert!(rows >= messages.len());

    // One message's columns against the truth.
    let tm = &t["messages"].as_array().unwrap()[0];
    let part = PartitionKey::new(&mb.id, Stream::Messages, Some(tm["parentFolderId"].as_str().unwrap().to_string()));
    let (mbatches, _) = round(&src, &mb, &part, PageRequest::Initial, &seq).await;
    let mut found = false;
    for b in &mbatches {
        let idc = b.column_by_name("id").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            if idc.value(i) == tm["id"].as_str().unwrap() {
                found = true;
                let subj = b.column_by_name("subject").unwrap().as_string::<i32>();
                assert_eq!(subj.is_valid(i).then(|| subj.value(i)), tm["subject"].as_str());
                let ck = b.column_by_name("change_key").unwrap().as_string::<i32>();
                assert_eq!(ck.value(i), tm["changeKey"].as_str().unwrap());
                assert!(b.column_by_name("body_content").unwrap().is_null(i), "bodies are not fetched");
            }
        }
    }
    assert!(found);

    // Events in the window.
    let epart = PartitionKey::new(&mb.id, Stream::Events, None);
    let (eb, _) = round(&src, &mb, &epart, PageRequest::Initial, &seq).await;
    let (events, _) = state(&eb);
    let all_events = t["events"].as_array().unwrap();
    for e in all_events {
        for edge in [win_start, win_end] {
            for at in [approx_utc(&e["start"]), approx_utc(&e["end"])] {
                assert!((at - edge).abs() > DAY_MICROS, "event {} is within a day of the window's edge", e["id"]);
            }
        }
    }
    let want_events: BTreeSet<String> = all_events
        .iter()
        .filter(|e| approx_utc(&e["start"]) < win_end && approx_utc(&e["end"]) > win_start)
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, want_events);
    assert!(!events.is_empty());

    let stats = src.stats(&mb.id);
    assert!(stats.requests > 0 && stats.bytes > 0);
    assert_eq!(src.token_requests(), 1, "one cached app token serves every request");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_auth_error_naming_the_code_and_the_fix_without_retries() {
    let sim = start(small()).await;
    let src = GraphSource::new(options(&sim, "not-the-secret")).unwrap();
    let e = src.mailboxes().await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Auth);
    assert!(e.message.contains("AADSTS7000215"), "{}", e.message);
    assert!(e.message.contains("client_secret"), "{}", e.message);
    assert!(!e.message.contains("not-the-secret"));
    assert_eq!(src.token_requests(), 1, "a refused secret is not retried");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_access_token_is_replaced_once() {
    let sim = start(small()).await;
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let listing = src.mailboxes().await.unwrap();
    let mb = &listing.mailboxes[0];
    let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let seq = SeqGen::new(0);
    src.fetch_page(mb, &part, &PageRequest::Initial, &seq, "r").await.unwrap();
    assert_eq!(src.token_requests(), 1);
    sim.revoke_access_tokens();
    let page = src.fetch_page(mb, &part, &PageRequest::Initial, &seq, "r").await.unwrap();
    assert!(page.batch.num_rows() > 0);
    assert_eq!(src.token_requests(), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sync_state_is_classified_for_rebaseline() {
    let sim = start(small()).await;
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let mb = src.mailboxes().await.unwrap().mailboxes[0].clone();
    let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let seq = SeqGen::new(0);
    let (_, delta) = round(&src, &mb, &part, PageRequest::Initial, &seq).await;
    sim.expire_sync_state(&mb.id);
    let e = src.fetch_page(&mb, &part, &PageRequest::Link(Cursor::Delta(delta)), &seq, "r").await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::SyncStateExpired, "{e}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_without_mailbox_are_skipped_when_discovered_but_fail_when_listed() {
    let sim = start(SimConfig { users: 4, ..small() }).await;
    let with_mailbox = sim.mailbox_ids();
    assert!(with_mailbox.len() >= 2, "the seeded world has mailboxes to disable");
    let disabled = with_mailbox.last().unwrap().clone();
    sim.reconfigure(|c| c.disabled_mailboxes = vec![disabled.clone()]);
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let listing = src.mailboxes().await.unwrap();
    assert!(listing.mailboxes.iter().all(|m| m.id != disabled));
    let skipped: HashSet<_> = listing.skipped.iter().map(|(who, _)| who.clone()).collect();
    let upn = truth_of(&sim.truth(), &disabled)["userPrincipalName"].as_str().unwrap().to_string();
    assert!(skipped.contains(&upn) || skipped.contains(&disabled), "{:?}", listing.skipped);
    // Users seeded without a mailbox are skipped too; everyone is accounted for.
    assert_eq!(listing.mailboxes.len() + listing.skipped.len(), sim.user_ids().len());
    assert_eq!(listing.mailboxes.len(), with_mailbox.len() - 1);

    let mut opts = options(&sim, &sim.client_secret());
    opts.mailboxes = MailboxSelection::List(vec![disabled.clone()]);
    let listed = GraphSource::new(opts).unwrap();
    let mb = Mailbox { id: disabled.clone(), upn: None, via_me: false };
    let part = PartitionKey::new(&disabled, Stream::MailFolders, None);
    let e = listed.fetch_page(&mb, &part, &PageRequest::Initial, &SeqGen::new(0), "r").await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Mailbox, "{e}");
    sim.shutdown().await;
}

/// A listed entry that cannot be resolved (here a 400 `BadRequest`) fails alone: it is listed
/// under its configured name and every request for it fails with the resolution error, without
/// reaching Graph; a directory refusal still stops everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_entry_that_cannot_be_resolved_fails_alone() {
    let sim = start(SimConfig { users: 3, ..small() }).await;
    let truth = sim.truth();
    let upns: Vec<String> = truth["mailboxes"].as_array().unwrap().iter().map(|m| m["userPrincipalName"].as_str().unwrap().to_string()).collect();
    let (good, bad) = (upns[0].clone(), upns[1].clone());
    sim.reconfigure(|c| c.bad_request_users = vec![bad.clone()]);
    let mut opts = options(&sim, &sim.client_secret());
    opts.mailboxes = MailboxSelection::List(vec![good.clone(), bad.clone()]);
    let src = GraphSource::new(opts).unwrap();
    let listing = src.mailboxes().await.unwrap();
    let labels: Vec<&str> = listing.mailboxes.iter().map(|m| m.label()).collect();
    assert_eq!(labels, [good.as_str()]);
    assert_eq!(listing.failed.len(), 1);
    let (entry, e) = &listing.failed[0];
    assert_eq!(entry, &bad);
    assert_eq!(e.kind, SourceErrorKind::Mailbox, "{e}");
    assert_eq!(e.code.as_deref(), Some("BadRequest"));
    assert!(e.message.contains(&bad) && e.message.contains("could not be resolved"), "{}", e.message);
    // The resolved one syncs.
    let mb = &listing.mailboxes[0];
    src.fetch_page(mb, &PartitionKey::new(&mb.id, Stream::MailFolders, None), &PageRequest::Initial, &SeqGen::new(0), "r").await.unwrap();

    // Without User.Read.All nothing can be resolved: the run stops, as an auth problem.
    sim.reconfigure(|c| c.app_roles = vec!["Mail.Read".into(), "Calendars.Read".into()]);
    let mut opts = options(&sim, &sim.client_secret());
    opts.mailboxes = MailboxSelection::List(vec![good.clone()]);
    let e = GraphSource::new(opts).unwrap().mailboxes().await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Auth, "{e}");
    assert!(e.message.contains("User.Read.All"), "{}", e.message);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_counted() {
    let sim = start(small()).await;
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let mb = src.mailboxes().await.unwrap().mailboxes[0].clone();
    let before = src.stats(&mb.id);
    sim.reconfigure(|c| {
        c.fault_rate = 1.0;
        c.faults = FaultRates { service_unavailable: 1.0, gateway_timeout: 1.0, connection_reset: 1.0, truncated_json: 1.0, ..FaultRates::default() };
    });
    let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let (batches, _) = round(&src, &mb, &part, PageRequest::Initial, &SeqGen::new(0)).await;
    sim.reconfigure(|c| c.fault_rate = 0.0);
    let truth = sim.truth();
    assert_eq!(state(&batches).0, ids(&truth_of(&truth, &mb.id)["mail_folders"]));
    let after = src.stats(&mb.id);
    assert!(after.retries > before.retries, "{after:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exceeded_names_the_fix() {
    let sim = start(small()).await;
    let id = sim.mailbox_ids()[0].clone();
    sim.reconfigure(|c| c.quota_exceeded_mailboxes = vec![id.clone()]);
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let mb = Mailbox { id: id.clone(), upn: None, via_me: false };
    let part = PartitionKey::new(&id, Stream::Messages, Some("inbox".into()));
    let e = src.fetch_page(&mb, &part, &PageRequest::Initial, &SeqGen::new(0), "r").await.unwrap_err();
    assert_eq!(e.kind, SourceErrorKind::Mailbox, "{e}");
    assert!(e.message.contains("quota"), "{}", e.message);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_mailbox_waits_for_retry_after_and_completes() {
    let sim = start(small()).await;
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let mb = src.mailboxes().await.unwrap().mailboxes[0].clone();
    // The server allows 4 requests per second for this app+mailbox; we do not know that.
    sim.reconfigure(|c| {
        c.requests_per_window = 4;
        c.window = Duration::from_secs(1);
    });
    let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let seq = SeqGen::new(0);
    let mut pages = 0;
    for _ in 0..10 {
        let (b, _) = round(&src, &mb, &part, PageRequest::Initial, &seq).await;
        pages += b.len();
    }
    assert!(pages >= 10);
    let st = src.stats(&mb.id);
    assert!(st.throttled > 0, "{st:?}");
    assert!(st.throttle_wait_ms > 0, "{st:?}");
    assert!(st.retries >= st.throttled, "{st:?}");
    sim.shutdown().await;
}
