//! `GraphSource` against `outlake_simulator`: full rounds, auth failures, token refresh,
//! expired sync state, mailbox discovery, transient faults, and calendars (the listing, a
//! calendar's events, a deleted calendar).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use outlake_config::Secret;
use outlake_connectors::{GraphOptions, GraphSource, MailboxSelection, schema};
use outlake_pipeline::model::{Cursor, Mailbox, PageRequest, PartitionKey, Stream};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{Source, SourceErrorKind};
use outlake_simulator::{FaultRates, Mutation, SimConfig, Simulator};
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
    // No events years away: none lies near the edges of the tests' calendar window.
    SimConfig { users: 2, messages_per_mailbox: 80, events_per_mailbox: 30, distant_event_share: 0.0, ..SimConfig::default() }
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

    // Events in the window, calendar by calendar.
    let mut events = BTreeSet::new();
    for cal in src.calendars(&mb, &seq, "run-t").await.unwrap().calendars {
        let epart = PartitionKey::new(&mb.id, Stream::Events, Some(cal.id));
        let (eb, _) = round(&src, &mb, &epart, PageRequest::Initial, &seq).await;
        events.extend(state(&eb).0);
    }
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
    let mb = Mailbox { id: disabled.clone(), ..Mailbox::default() };
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
    let mb = Mailbox { id: id.clone(), ..Mailbox::default() };
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

fn calendars_world() -> SimConfig {
    SimConfig { users: 3, events_per_mailbox: 60, calendars_per_mailbox: 2, shared_calendars: true, ..small() }
}

/// `calendars()` lists every calendar of the truth in its order, following nextLinks, with one
/// `calendars` row per calendar; `calendar_list` is the same listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendars_listing_matches_the_truth() {
    let sim = start(calendars_world()).await;
    // Two calendars per page: the listing of four calendars takes nextLinks.
    sim.reconfigure(|c| c.page_cap = 2);
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let mb = src.mailboxes().await.unwrap().mailboxes[0].clone();
    let truth = sim.truth();
    let want = truth_of(&truth, &mb.id)["calendars"].as_array().unwrap().clone();
    assert!(want.len() > 2, "the world has more calendars than a page: {}", want.len());

    let seq = SeqGen::new(0);
    let before = src.stats(&mb.id).requests;
    let listing = src.calendars(&mb, &seq, "run-c").await.unwrap();
    assert!(src.stats(&mb.id).requests - before >= 2, "the listing was paged");
    let got: Vec<&str> = listing.calendars.iter().map(|c| c.id.as_str()).collect();
    let want_ids: Vec<&str> = want.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(got, want_ids);
    for (info, t) in listing.calendars.iter().zip(&want) {
        assert_eq!(info.name, t["name"].as_str().unwrap());
        assert_eq!(info.is_default, t["isDefaultCalendar"].as_bool().unwrap());
        assert_eq!(info.owner_address.as_deref(), t["owner"]["address"].as_str());
        assert_eq!(info.change_key.as_deref(), t["changeKey"].as_str());
    }
    assert_eq!(listing.calendars.iter().filter(|c| c.is_default).count(), 1);

    let b = &listing.batch;
    assert_eq!(b.schema(), schema(Stream::Calendars));
    assert_eq!(b.num_rows(), want.len());
    let col = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
    let (ids, ops, mbx, run, hex) = (col("id"), col("_op"), col("mailbox_id"), col("_run_id"), col("hex_color"));
    let seqs = b.column_by_name("_seq").unwrap().as_primitive::<arrow::datatypes::Int64Type>().clone();
    let bools = |name: &str| b.column_by_name(name).unwrap().as_boolean().clone();
    let (removable, can_edit) = (bools("is_removable"), bools("can_edit"));
    for (i, t) in want.iter().enumerate() {
        assert_eq!(ids.value(i), t["id"].as_str().unwrap());
        assert_eq!((ops.value(i), mbx.value(i), run.value(i)), ("upsert", mb.id.as_str(), "run-c"));
        assert_eq!(hex.is_valid(i).then(|| hex.value(i)), t["hexColor"].as_str());
        assert_eq!(removable.value(i), t["isRemovable"].as_bool().unwrap());
        assert_eq!(can_edit.value(i), t["canEdit"].as_bool().unwrap());
        if i > 0 {
            assert!(seqs.value(i) > seqs.value(i - 1), "_seq in listing order");
        }
    }
    assert_eq!(src.calendar_list(&mb).await.unwrap(), listing.calendars);
    sim.shutdown().await;
}

/// A calendar's partition reads that calendar's events, each row carrying its id; a deleted
/// calendar's delta is `FolderGone`, from a fresh round and from a stored link alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendars_events_carry_its_id_and_a_deleted_calendar_is_gone() {
    let sim = start(calendars_world()).await;
    let opts = options(&sim, &sim.client_secret());
    let (win_start, win_end) = (opts.calendar_start.timestamp_micros(), opts.calendar_end.timestamp_micros());
    let src = GraphSource::new(opts).unwrap();
    let mb = src.mailboxes().await.unwrap().mailboxes[0].clone();
    let seq = SeqGen::new(0);
    let listing = src.calendars(&mb, &seq, "r").await.unwrap();
    let truth = sim.truth();
    let t = truth_of(&truth, &mb.id);
    let in_window = |e: &&Value| approx_utc(&e["start"]) < win_end && approx_utc(&e["end"]) > win_start;

    let mut links = Vec::new();
    let mut seen_events = 0;
    for cal in &listing.calendars {
        let part = PartitionKey::new(&mb.id, Stream::Events, Some(cal.id.clone()));
        // The first page alone: the calendar's own URL, rows in the events schema.
        let first = src.fetch_page(&mb, &part, &PageRequest::Initial, &seq, "r").await.unwrap();
        assert_eq!(first.batch.schema(), schema(Stream::Events));
        let (batches, delta) = round(&src, &mb, &part, PageRequest::Initial, &seq).await;
        for b in &batches {
            let cid = b.column_by_name("calendar_id").unwrap().as_string::<i32>();
            assert!((0..b.num_rows()).all(|i| cid.is_valid(i) && cid.value(i) == cal.id), "{}: rows of another calendar", cal.id);
        }
        let (got, _) = state(&batches);
        let want: BTreeSet<String> = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["calendarId"] == cal.id.as_str())
            .filter(in_window)
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "calendar {} ({})", cal.name, cal.id);
        seen_events += got.len();
        links.push((cal.clone(), delta));
    }
    assert!(seen_events > 0);

    // The legacy partition (no calendar id) still reads the default calendar.
    let legacy = PartitionKey::new(&mb.id, Stream::Events, None);
    let (lb, _) = round(&src, &mb, &legacy, PageRequest::Initial, &seq).await;
    assert!(lb.iter().all(|b| b.column_by_name("calendar_id").unwrap().null_count() == b.num_rows()));
    let default = listing.calendars.iter().find(|c| c.is_default).unwrap();
    let want_default: BTreeSet<String> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["calendarId"] == default.id.as_str())
        .filter(in_window)
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(state(&lb).0, want_default);

    // Delete a removable calendar: its partition is gone.
    let removable: Vec<String> =
        t["calendars"].as_array().unwrap().iter().filter(|c| c["isRemovable"] == true).map(|c| c["id"].as_str().unwrap().to_string()).collect();
    let (gone, delta) = links.iter().find(|(c, _)| removable.contains(&c.id)).expect("a removable calendar").clone();
    sim.mutate(vec![Mutation::DeleteCalendar { mailbox: mb.id.clone(), id: gone.id.clone() }]).unwrap();
    let part = PartitionKey::new(&mb.id, Stream::Events, Some(gone.id.clone()));
    for req in [PageRequest::Initial, PageRequest::Link(Cursor::Delta(delta))] {
        let e = src.fetch_page(&mb, &part, &req, &seq, "r").await.unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::FolderGone, "{e}");
        assert_eq!(e.code.as_deref(), Some("ErrorItemNotFound"));
    }
    let after = src.calendars(&mb, &seq, "r").await.unwrap();
    assert!(after.calendars.iter().all(|c| c.id != gone.id));
    assert_eq!(after.calendars.len(), listing.calendars.len() - 1);
    sim.shutdown().await;
}

/// Discovery (issue 15): the listing's users are probed while later pages are fetched, many at
/// once (not 16), in the directory's order across pages; a mailbox that already has commits is
/// not probed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_probes_only_unsynced_users_many_at_once_in_directory_order() {
    // 1,200 users: two `/users` pages of up to 999.
    let sim =
        start(SimConfig { users: 1200, messages_per_mailbox: 0, events_per_mailbox: 0, latency: Duration::from_millis(20), ..SimConfig::default() }).await;
    let with_mailbox = sim.mailbox_ids();
    let synced: HashSet<String> = with_mailbox.iter().step_by(2).cloned().collect();
    let mut opts = options(&sim, &sim.client_secret());
    opts.max_in_flight_total = 64;
    let src = GraphSource::new(opts).unwrap();
    let listing = src.mailboxes_known(&synced).await.unwrap();
    let ids: Vec<&str> = listing.mailboxes.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, with_mailbox.iter().map(String::as_str).collect::<Vec<_>>(), "every mailbox, in the directory's order");
    assert_eq!(listing.skipped.len(), 1, "the user without a mailbox: {:?}", listing.skipped);
    let stats = sim.stats();
    assert_eq!(stats["requests_by_kind"]["users"], 2, "two listing pages");
    let probes = stats["requests_by_kind"]["mail_folder"].as_u64().unwrap();
    assert_eq!(probes as usize, sim.user_ids().len() - synced.len(), "users with commits are not probed");
    let at_once = stats["in_flight"]["max_by_kind"]["mail_folder"].as_u64().unwrap();
    assert!(at_once > 16, "probes ran {at_once} at once");
    sim.shutdown().await;
}

/// A metered page grows its memory lease from a small reservation to what the response took:
/// the body and the batch made from it (issue 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_page_grows_its_lease_to_the_response() {
    use outlake_pipeline::budget::PageBudget;
    let sim = start(small()).await;
    let mb = Mailbox { id: sim.mailbox_ids()[0].clone(), ..Mailbox::default() };
    let src = GraphSource::new(options(&sim, &sim.client_secret())).unwrap();
    let seq = SeqGen::new(0);
    let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
    let folders = round(&src, &mb, &part, PageRequest::Initial, &seq).await.0;
    let folder_ids: Vec<String> =
        folders.iter().flat_map(|b| b.column_by_name("id").unwrap().as_string::<i32>().iter().flatten().map(str::to_string).collect::<Vec<_>>()).collect();
    let budget = PageBudget::new(64 << 20);
    let mut largest = 0;
    for folder in folder_ids {
        let part = PartitionKey::new(&mb.id, Stream::Messages, Some(folder));
        let lease = budget.reserve(1024).await;
        let page = src.fetch_page_metered(&mb, &part, &PageRequest::Initial, &seq, "r", &lease).await.unwrap();
        assert_eq!(lease.held_kib() as u64, (2 * page.bytes).div_ceil(1024).max(1), "the body and its batch");
        assert_eq!(budget.available_kib() + lease.held_kib(), budget.total_kib());
        largest = largest.max(page.bytes);
    }
    assert!(largest > 8 * 1024, "a page worth measuring ({largest} bytes)");
    sim.shutdown().await;
}
