//! The runner: mailboxes → partitions → rounds → pages → staged files → commits.
//!
//! Contract:
//! - Per mailbox, the folder tree is synced first, then each folder's messages (concurrently,
//!   up to `max_concurrent_per_mailbox` partitions), then the calendar.
//! - Per partition, a fetch task pulls pages and hands them over a bounded channel to the
//!   write task, which stages them and commits every `commit_every_pages` pages or
//!   `commit_every`, and at the end of a round. A cursor is committed only with (or after) the
//!   data it covers: a crash loses nothing and, thanks to `_seq` and keyed reads, duplicates
//!   nothing a reader can see in the current state.
//! - A round that starts without a token after the partition already had data (410 expiry,
//!   `outlake reset`) *owes deletes*: at its end, every key the output holds for the partition
//!   that the round did not return gets a delete row, in the same commit as the delta link.
//! - A folder that disappears (removed in the folder delta, or 404 on its message delta) is
//!   retired: every message the output holds for it gets a delete row.
//! - With a folder scope ([`FolderScope`]), only selected folders get a partition; partitions of
//!   folders that left the scope are parked (delete rows, no cursor) and re-baseline if they come
//!   back. A messages round records its [`MessageScope`]; a different configured scope starts a
//!   baseline that owes deletes, and messages outside `received_after` are dropped before
//!   staging.
//! - Pages and open files' buffers share one memory budget ([`PageBudget`]): fetches wait for
//!   it; a writer that cannot get budget writes its file out to storage early.
//! - Errors are acted on by kind ([`SourceErrorKind`]): only `Auth` and `Fatal` stop the run;
//!   `Mailbox` and `Partition` fail the mailbox after its other partitions finish.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::budget::{PageBudget, PageLease};
use crate::lake::{CommitRequest, DynLake, LakeError, LakeErrorKind, StagedWriter};
use crate::model::{Checkpoint, Cursor, Mailbox, OUT_OF_SCOPE, Page, PageRequest, PartitionKey, RoundInfo, Stream};
use crate::progress::{Progress, ProgressEvent};
use crate::scope::{FolderNode, FolderScope, MessageScope};
use crate::seq::SeqGen;
use crate::source::{DynSource, SourceError, SourceErrorKind};

/// A flag the binary sets on Ctrl-C; partitions stop at their next page boundary after
/// committing what they staged.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub run_id: String,
    pub streams: Vec<Stream>,
    pub commit_every_pages: u32,
    pub commit_every: Duration,
    pub max_parallel_mailboxes: usize,
    pub max_concurrent_per_mailbox: usize,
    /// Which folders get a messages partition.
    pub folders: FolderScope,
    /// Which messages are kept.
    pub messages: MessageScope,
    /// Mailboxes to leave out, matched against the user id and the UPN.
    pub exclude_mailboxes: Vec<glob::Pattern>,
    /// Memory for normalized pages in flight (fetched, queued, being written), shared by all
    /// partitions ([`PageBudget`]).
    pub page_budget_bytes: u64,
    /// What a partition's first request is expected to need (response body + batch) before
    /// the budget learns from its pages.
    pub first_page_bytes: u64,
}

/// What one stream of one mailbox did in this run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamReport {
    pub upserts: u64,
    pub deletes: u64,
    pub pages: u64,
    pub commits: u64,
    pub rebaselines: u64,
    pub partitions: u64,
    pub malformed_items: u64,
    /// Messages left out by `received_after`.
    pub filtered: u64,
    /// Folders left out by `include_folders` / `exclude_folders` (messages stream).
    pub folders_excluded: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MailboxStatus {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MailboxReport {
    pub mailbox_id: String,
    pub label: String,
    pub status: MailboxStatus,
    pub error: Option<String>,
    pub streams: BTreeMap<String, StreamReport>,
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub throttle_wait_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub mailboxes: Vec<MailboxReport>,
    /// Set when the whole run stopped (auth refused, fatal error).
    pub fatal: Option<String>,
    pub fatal_kind: Option<String>,
}

impl RunReport {
    pub fn failed_mailboxes(&self) -> impl Iterator<Item = &MailboxReport> {
        self.mailboxes.iter().filter(|m| m.status == MailboxStatus::Failed)
    }
    pub fn total(&self, f: impl Fn(&StreamReport) -> u64) -> u64 {
        self.mailboxes.iter().flat_map(|m| m.streams.values()).map(f).sum()
    }
}

/// Thrown out of a mailbox to stop the run.
#[derive(Debug, Clone)]
struct Fatal(SourceError);

pub struct Runner {
    source: DynSource,
    lake: DynLake,
    settings: RunSettings,
    progress: Progress,
    seq: Arc<SeqGen>,
    cancel: Cancel,
    fatal: Mutex<Option<SourceError>>,
    budget: PageBudget,
}

impl Runner {
    pub fn new(source: DynSource, lake: DynLake, settings: RunSettings, progress: Progress, seq: Arc<SeqGen>, cancel: Cancel) -> Self {
        let budget = PageBudget::new(settings.page_budget_bytes);
        Runner { source, lake, settings, progress, seq, cancel, fatal: Mutex::new(None), budget }
    }

    /// The `_seq` floor for a new run: above every round ever started.
    pub async fn seq_floor(lake: &DynLake) -> Result<i64, LakeError> {
        Ok(lake.list(None).await?.iter().map(|c| c.round.started_seq).max().unwrap_or(0))
    }

    pub async fn run(self: Arc<Self>) -> RunReport {
        let started_at = chrono::Utc::now();
        let t0 = Instant::now();
        let listing = match self.source.mailboxes().await {
            Ok(l) => l,
            Err(e) => {
                return RunReport {
                    run_id: self.settings.run_id.clone(),
                    started_at,
                    duration_ms: t0.elapsed().as_millis() as u64,
                    mailboxes: vec![],
                    fatal_kind: Some(format!("{:?}", e.kind)),
                    fatal: Some(e.message),
                };
            }
        };
        let mut listing = listing;
        let excluded = &self.settings.exclude_mailboxes;
        listing.mailboxes.retain(|mb| {
            let hit = excluded.iter().any(|p| {
                p.matches(&mb.id) || mb.upn.as_deref().is_some_and(|u| p.matches_with(u, glob::MatchOptions { case_sensitive: false, ..Default::default() }))
            });
            if hit {
                tracing::info!(mailbox = %mb.label(), "excluded by source.exclude_mailboxes");
            }
            !hit
        });
        self.progress.emit(ProgressEvent::RunStarted { mailboxes: listing.mailboxes.len() });
        let mut reports: Vec<MailboxReport> = listing
            .skipped
            .iter()
            .map(|(who, why)| {
                self.progress.emit(ProgressEvent::MailboxSkipped { mailbox: who.clone(), reason: why.clone() });
                tracing::info!(mailbox = %who, reason = %why, "skipped: user has no mailbox");
                MailboxReport {
                    mailbox_id: who.clone(),
                    label: who.clone(),
                    status: MailboxStatus::Skipped,
                    error: Some(why.clone()),
                    streams: BTreeMap::new(),
                    requests: 0,
                    throttled: 0,
                    retries: 0,
                    throttle_wait_ms: 0,
                    duration_ms: 0,
                }
            })
            .collect();
        let this = self.clone();
        let mut done: Vec<MailboxReport> = stream::iter(listing.mailboxes.into_iter())
            .map(|mb| {
                let this = this.clone();
                async move { this.run_mailbox(mb).await }
            })
            .buffer_unordered(self.settings.max_parallel_mailboxes.max(1))
            .collect()
            .await;
        done.sort_by(|a, b| a.label.cmp(&b.label));
        reports.extend(done);
        let fatal = self.fatal.lock().clone();
        RunReport {
            run_id: self.settings.run_id.clone(),
            started_at,
            duration_ms: t0.elapsed().as_millis() as u64,
            mailboxes: reports,
            fatal_kind: fatal.as_ref().map(|e| format!("{:?}", e.kind)),
            fatal: fatal.map(|e| e.message),
        }
    }

    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.fatal.lock().is_some()
    }

    async fn run_mailbox(self: Arc<Self>, mb: Mailbox) -> MailboxReport {
        let t0 = Instant::now();
        self.progress.emit(ProgressEvent::MailboxStarted { mailbox_id: mb.id.clone(), label: mb.label().to_string() });
        let mut streams: BTreeMap<String, StreamReport> = BTreeMap::new();
        let mut errors: Vec<String> = Vec::new();
        let wants = |s: Stream| self.settings.streams.contains(&s);

        let result: Result<(), Fatal> = async {
            if wants(Stream::MailFolders) || wants(Stream::Messages) {
                let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
                let r = self.clone().run_partition(&mb, part).await;
                let failed = self.absorb(&mut streams, Stream::MailFolders, r, &mut errors)?;
                if wants(Stream::Messages) && !failed && !self.stopped() {
                    self.clone().run_messages(&mb, &mut streams, &mut errors).await?;
                }
            }
            if wants(Stream::Events) && !self.stopped() {
                let part = PartitionKey::new(&mb.id, Stream::Events, None);
                let r = self.clone().run_partition(&mb, part).await;
                self.absorb(&mut streams, Stream::Events, r, &mut errors)?;
            }
            Ok(())
        }
        .await;
        if let Err(Fatal(e)) = result {
            errors.push(e.message.clone());
            let mut f = self.fatal.lock();
            if f.is_none() {
                *f = Some(e);
            }
        }
        let stats = self.source.stats(&mb.id);
        let ok = errors.is_empty();
        self.progress.emit(ProgressEvent::MailboxFinished { mailbox_id: mb.id.clone(), ok });
        let rows: u64 = streams.values().map(|s| s.upserts + s.deletes).sum();
        if ok {
            tracing::info!(mailbox = %mb.label(), rows, requests = stats.requests, throttled = stats.throttled, "mailbox synced");
        } else {
            tracing::warn!(mailbox = %mb.label(), rows, error = %errors.join("; "), "mailbox failed");
        }
        MailboxReport {
            mailbox_id: mb.id.clone(),
            label: mb.label().to_string(),
            status: if ok { MailboxStatus::Ok } else { MailboxStatus::Failed },
            error: if ok { None } else { Some(errors.join("; ")) },
            streams,
            requests: stats.requests,
            throttled: stats.throttled,
            retries: stats.retries,
            throttle_wait_ms: stats.throttle_wait_ms,
            duration_ms: t0.elapsed().as_millis() as u64,
        }
    }

    /// Merge a partition's outcome into the mailbox's reports. Returns whether it failed;
    /// escalates run-stopping errors.
    fn absorb(&self, streams: &mut BTreeMap<String, StreamReport>, stream: Stream, r: PartitionOutcome, errors: &mut Vec<String>) -> Result<bool, Fatal> {
        let rep = streams.entry(stream.as_str().to_string()).or_default();
        rep.partitions += 1;
        rep.upserts += r.report.upserts;
        rep.deletes += r.report.deletes;
        rep.pages += r.report.pages;
        rep.commits += r.report.commits;
        rep.rebaselines += r.report.rebaselines;
        rep.malformed_items += r.report.malformed_items;
        rep.filtered += r.report.filtered;
        rep.bytes += r.report.bytes;
        rep.duration_ms += r.report.duration_ms;
        match r.error {
            None => Ok(false),
            Some(PartitionError::Source(e)) if matches!(e.kind, SourceErrorKind::Auth | SourceErrorKind::Fatal) => Err(Fatal(e)),
            Some(err) => {
                let msg = err.to_string();
                rep.errors.push(msg.clone());
                errors.push(format!("{stream}: {msg}"));
                Ok(true)
            }
        }
    }

    /// Messages: one partition per folder in the current folder tree; folders gone since the
    /// last run are retired.
    async fn run_messages(self: Arc<Self>, mb: &Mailbox, streams: &mut BTreeMap<String, StreamReport>, errors: &mut Vec<String>) -> Result<(), Fatal> {
        let folders_part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
        let folders = match self.lake.current_keys(&folders_part).await {
            Ok(k) => k,
            Err(e) => {
                errors.push(format!("messages: reading the folder list back failed: {e}"));
                return Ok(());
            }
        };
        let present: HashSet<String> = folders.iter().filter(|(_, s)| !s.deleted).map(|(id, _)| id.clone()).collect();
        let existing = match self.lake.list(Some(&mb.id)).await {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("messages: listing checkpoints failed: {e}"));
                return Ok(());
            }
        };
        let mut ids: Vec<String> = present.iter().cloned().collect();
        ids.sort();
        let scope = &self.settings.folders;
        if !scope.is_everything() {
            let well_known = match scope.resolve_well_known(self.source.as_ref(), mb).await {
                Ok(ids) => ids,
                Err(e) if matches!(e.kind, SourceErrorKind::Auth | SourceErrorKind::Fatal) => return Err(Fatal(e)),
                Err(e) => {
                    errors.push(format!("messages: resolving well-known folder names failed: {e}"));
                    return Ok(());
                }
            };
            let selection = scope.select(&FolderNode::from_keys(&folders), &well_known);
            for p in &selection.unmatched {
                tracing::warn!(mailbox = %mb.label(), pattern = %p, "a folder pattern names no folder of this mailbox (check include_folders / exclude_folders)");
            }
            streams.entry(Stream::Messages.as_str().to_string()).or_default().folders_excluded += selection.excluded.len() as u64;
            ids = selection.selected;

            // Progress: the items of selected folders whose messages are about to be
            // baselined (never synced, or parked and now back in scope).
            let synced: HashSet<&str> = existing
                .iter()
                .filter(|c| c.partition.stream == Stream::Messages && !c.is_out_of_scope())
                .filter_map(|c| c.partition.folder_id.as_deref())
                .collect();
            let items: u64 = ids
                .iter()
                .filter(|id| !synced.contains(id.as_str()))
                .filter_map(|id| folders.get(id).and_then(|k| k.item_count))
                .map(|n| n.max(0) as u64)
                .sum();
            if items > 0 {
                self.progress.emit(ProgressEvent::MailboxExpected { mailbox_id: mb.id.clone(), items });
            }
        }

        // Retire partitions of folders that are gone; park those of folders that left the
        // folder scope (once: a parked partition has no cursor and the out-of-scope marker).
        let selected: HashSet<&String> = ids.iter().collect();
        for cp in existing.iter().filter(|c| c.partition.stream == Stream::Messages && !c.retired) {
            let Some(folder) = &cp.partition.folder_id else { continue };
            let why = if !present.contains(folder) {
                Retire::FolderGone
            } else if !selected.contains(folder) && !cp.is_out_of_scope() {
                Retire::OutOfScope
            } else {
                continue;
            };
            let r = self.clone().retire(cp.partition.clone(), Some(cp.clone()), why).await;
            self.absorb(streams, Stream::Messages, r, errors)?;
        }

        let this = self.clone();
        let mbc = mb.clone();
        let outcomes: Vec<PartitionOutcome> = stream::iter(ids.into_iter())
            .map(|folder| {
                let this = this.clone();
                let mb = mbc.clone();
                async move {
                    let part = PartitionKey::new(&mb.id, Stream::Messages, Some(folder));
                    this.run_partition(&mb, part).await
                }
            })
            .buffer_unordered(self.settings.max_concurrent_per_mailbox.max(1))
            .collect()
            .await;
        for o in outcomes {
            self.absorb(streams, Stream::Messages, o, errors)?;
        }
        Ok(())
    }

    /// Write delete rows for every key the output holds for a partition, and retire it (its
    /// folder is gone) or park it (its folder left the folder scope; it re-baselines if it
    /// comes back).
    async fn retire(self: Arc<Self>, part: PartitionKey, previous: Option<Checkpoint>, why: Retire) -> PartitionOutcome {
        let t0 = Instant::now();
        let mut report = StreamReport::default();
        let result: Result<(), PartitionError> = async {
            let keys = self.lake.current_keys(&part).await?;
            let mut ids: Vec<String> = keys.into_iter().filter(|(_, k)| !k.deleted).map(|(id, _)| id).collect();
            ids.sort();
            let mut writer = self.lake.writer(&part);
            if !ids.is_empty() {
                let batch = self.source.delete_rows(&part, &ids, &self.seq, &self.settings.run_id);
                writer.write(&batch).await?;
            }
            let files = writer.finish().await?;
            let mut round = previous.as_ref().map(|p| p.round.clone()).unwrap_or(RoundInfo {
                baseline: false,
                owes_deletes: false,
                started_seq: self.seq.next(),
                pages: 0,
                scope: None,
            });
            if why == Retire::OutOfScope {
                round.scope = Some(OUT_OF_SCOPE.to_string());
            }
            self.lake
                .commit(CommitRequest {
                    partition: part.clone(),
                    previous,
                    files,
                    cursor: None,
                    round,
                    run_id: self.settings.run_id.clone(),
                    rows: ids.len() as u64,
                    rebaselined: false,
                    retired: why == Retire::FolderGone,
                })
                .await?;
            report.deletes = ids.len() as u64;
            report.commits = 1;
            self.progress.emit(ProgressEvent::Committed { mailbox_id: part.mailbox_id.clone(), stream: part.stream, rows: ids.len() as u64 });
            match why {
                Retire::FolderGone => tracing::info!(partition = %part, deletes = ids.len(), "folder is gone: wrote delete rows for its messages"),
                Retire::OutOfScope => {
                    tracing::info!(partition = %part, deletes = ids.len(), "folder left include_folders / exclude_folders: wrote delete rows for its messages")
                }
            }
            Ok(())
        }
        .await;
        report.duration_ms = t0.elapsed().as_millis() as u64;
        PartitionOutcome { report, error: result.err() }
    }

    /// Run one partition from its committed position to the end of a round.
    async fn run_partition(self: Arc<Self>, mb: &Mailbox, part: PartitionKey) -> PartitionOutcome {
        let t0 = Instant::now();
        let previous = match self.lake.load(&part).await {
            Ok(p) => p,
            Err(e) => return PartitionOutcome { report: StreamReport::default(), error: Some(e.into()) },
        };
        if previous.as_ref().is_some_and(|p| p.retired) {
            return PartitionOutcome::default();
        }
        // A partition whose cursor was cleared (`outlake reset`) starts a re-baseline, and so
        // does a messages partition synced under another `received_after`.
        let scope = self.scope_of(&part);
        let rescoped = previous.as_ref().is_some_and(|cp| cp.cursor.is_some() && cp.round.scope != scope);
        if rescoped {
            tracing::info!(partition = %part, "the message scope changed (received_after); re-baselining this folder");
        }
        let reset = previous.as_ref().is_some_and(|cp| cp.cursor.is_none()) || rescoped;
        let (round, request) = match &previous {
            None => (self.new_round(&part, true, false), PageRequest::Initial),
            Some(_) if rescoped => (self.new_round(&part, true, true), PageRequest::Initial),
            Some(cp) => match &cp.cursor {
                None => (self.new_round(&part, true, true), PageRequest::Initial),
                // A baseline that owes deletes keeps the ids it has seen in memory only, so after
                // a crash it starts over rather than resume with that set lost.
                Some(Cursor::Next(_)) if cp.round.owes_deletes => (self.new_round(&part, true, true), PageRequest::Initial),
                Some(Cursor::Next(_)) => (cp.round.clone(), PageRequest::Link(cp.cursor.clone().unwrap())),
                Some(Cursor::Delta(_)) => (self.new_round(&part, false, false), PageRequest::Link(cp.cursor.clone().unwrap())),
            },
        };

        let (tx, rx) = mpsc::channel::<Fetched>(2);
        let fetcher = tokio::spawn(fetch_loop(
            self.source.clone(),
            mb.clone(),
            part.clone(),
            request,
            self.seq.clone(),
            self.settings.run_id.clone(),
            self.cancel.clone(),
            self.budget.clone(),
            self.settings.first_page_bytes,
            tx,
        ));
        let mut w = PartitionWriter {
            runner: self.clone(),
            part: part.clone(),
            writer: self.lake.writer(&part),
            previous,
            round,
            report: StreamReport { rebaselines: u64::from(reset), ..StreamReport::default() },
            pages_since_commit: 0,
            rows_since_commit: 0,
            last_commit: Instant::now(),
            last_link: None,
            seen_event_ids: HashSet::new(),
            repeat_pages: 0,
            baseline_known: None,
            baseline_seen: HashSet::new(),
            buffer_lease: self.budget.empty_lease(),
        };
        let result = w.consume(rx).await;
        fetcher.abort();
        let mut report = w.report;
        report.duration_ms = t0.elapsed().as_millis() as u64;
        match result {
            Err(PartitionError::Source(e)) if e.kind == SourceErrorKind::FolderGone => {
                tracing::info!(partition = %part, "folder no longer exists");
                let retired = self.clone().retire(part, w.previous, Retire::FolderGone).await;
                let mut merged = report;
                merged.deletes += retired.report.deletes;
                merged.commits += retired.report.commits;
                PartitionOutcome { report: merged, error: retired.error }
            }
            Err(e) => PartitionOutcome { report, error: Some(e) },
            Ok(()) => PartitionOutcome { report, error: None },
        }
    }

    fn new_round(&self, part: &PartitionKey, baseline: bool, owes_deletes: bool) -> RoundInfo {
        RoundInfo { baseline, owes_deletes, started_seq: self.seq.next(), pages: 0, scope: self.scope_of(part) }
    }

    /// The message scope fingerprint a partition's rounds carry (messages only).
    fn scope_of(&self, part: &PartitionKey) -> Option<String> {
        match part.stream {
            Stream::Messages => self.settings.messages.fingerprint(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// The folder was deleted: the partition is finished for good.
    FolderGone,
    /// The folder is outside the folder scope: parked without a cursor.
    OutOfScope,
}

#[derive(Debug, Default)]
struct PartitionOutcome {
    report: StreamReport,
    error: Option<PartitionError>,
}

#[derive(Debug, thiserror::Error)]
enum PartitionError {
    #[error("{}", .0.message)]
    Source(SourceError),
    #[error("{}{}", .0.message, .0.path.as_ref().map(|p| format!(" (path: {p})")).unwrap_or_default())]
    Lake(LakeError),
    #[error("{0}")]
    Other(String),
}

impl From<LakeError> for PartitionError {
    fn from(e: LakeError) -> Self {
        PartitionError::Lake(e)
    }
}

/// What the fetch task hands to the write task.
enum Fetched {
    /// A page, the link it was fetched from (`None` for a round's first request), and the
    /// memory budget it holds until it is written.
    Page(Page, Option<Cursor>, PageLease),
    /// The sync state expired; the fetcher restarted the round without a token. Carries the
    /// new round's `started_seq`, drawn before any row of the new round got its `_seq`.
    Restarted(SourceError, i64),
    Failed(SourceError),
}

#[allow(clippy::too_many_arguments)]
async fn fetch_loop(
    source: DynSource,
    mb: Mailbox,
    part: PartitionKey,
    mut request: PageRequest,
    seq: Arc<SeqGen>,
    run_id: String,
    cancel: Cancel,
    budget: PageBudget,
    first_page_bytes: u64,
    tx: mpsc::Sender<Fetched>,
) {
    let mut restarts = 0u32;
    // Expected memory of the next request: its response body and the batch made from it,
    // as large as the previous page's (the first page: the configured guess).
    let mut expected: u64 = first_page_bytes;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let mut lease = budget.reserve(expected).await;
        match source.fetch_page(&mb, &part, &request, &seq, &run_id).await {
            Ok(page) => {
                let batch_bytes = page.batch.get_array_memory_size() as u64;
                expected = batch_bytes + page.bytes;
                lease.resize(batch_bytes);
                let from = match &request {
                    PageRequest::Initial => None,
                    PageRequest::Link(c) => Some(c.clone()),
                };
                let next = page.cursor.clone();
                let done = matches!(next, Cursor::Delta(_));
                if tx.send(Fetched::Page(page, from, lease)).await.is_err() || done {
                    return;
                }
                request = PageRequest::Link(next);
            }
            Err(e) if e.kind == SourceErrorKind::SyncStateExpired && request != PageRequest::Initial && restarts < 3 => {
                restarts += 1;
                let started_seq = seq.next();
                if tx.send(Fetched::Restarted(e, started_seq)).await.is_err() {
                    return;
                }
                request = PageRequest::Initial;
            }
            Err(e) => {
                let _ = tx.send(Fetched::Failed(e)).await;
                return;
            }
        }
    }
}

/// The write task of one partition: stages pages and commits.
struct PartitionWriter {
    runner: Arc<Runner>,
    part: PartitionKey,
    writer: Box<dyn StagedWriter>,
    previous: Option<Checkpoint>,
    round: RoundInfo,
    report: StreamReport,
    pages_since_commit: u32,
    rows_since_commit: u64,
    last_commit: Instant,
    /// The nextLink after the latest staged page: where a resume continues.
    last_link: Option<Cursor>,
    seen_event_ids: HashSet<String>,
    repeat_pages: u32,
    /// In a baseline that owes deletes: what the output held when the round started (read on
    /// its first page), and every id the round has returned so far.
    baseline_known: Option<std::collections::HashMap<String, crate::model::KeyState>>,
    baseline_seen: HashSet<String>,
    /// Budget held for the open file's buffers.
    buffer_lease: PageLease,
}

impl PartitionWriter {
    async fn consume(&mut self, mut rx: mpsc::Receiver<Fetched>) -> Result<(), PartitionError> {
        let settings = self.runner.settings.clone();
        while let Some(item) = rx.recv().await {
            match item {
                Fetched::Failed(e) => {
                    // Keep what was fetched before the failure: commit it at the last safe link.
                    if self.pages_since_commit > 0 && !matches!(e.kind, SourceErrorKind::FolderGone) {
                        let cursor = self.last_link.clone();
                        let _ = self.commit(cursor, false).await;
                    }
                    return Err(PartitionError::Source(e));
                }
                Fetched::Restarted(e, started_seq) => {
                    tracing::warn!(partition = %self.part, code = ?e.code, "sync state expired; re-baselining");
                    // One commit records the new baseline round (no cursor: a crash resumes it
                    // from scratch) and makes the rows staged so far committed state, so the
                    // baseline's diff at the end of the round sees them.
                    let scope = self.round.scope.take();
                    self.round = RoundInfo { baseline: true, owes_deletes: true, started_seq, pages: 0, scope };
                    self.baseline_known = None;
                    self.baseline_seen.clear();
                    self.report.rebaselines += 1;
                    self.runner.progress.emit(ProgressEvent::Rebaselined { mailbox_id: self.part.mailbox_id.clone(), stream: self.part.stream });
                    self.commit(None, true).await?;
                }
                Fetched::Page(page, from, lease) => {
                    let mut page = self.apply_message_scope(page)?;
                    self.check_repeats(&page)?;
                    // With a folder scope, the expected count comes from the selected folders
                    // instead (run_messages), once the tree is known.
                    if self.part.stream == Stream::MailFolders && self.round.baseline && self.runner.settings.folders.is_everything() {
                        let items = crate::state::sum_column(&page.batch, "total_item_count");
                        if items > 0 {
                            self.runner.progress.emit(ProgressEvent::MailboxExpected { mailbox_id: self.part.mailbox_id.clone(), items });
                        }
                    }
                    let batch = if self.round.owes_deletes { self.skip_unchanged(&page).await? } else { page.batch.clone() };
                    let rows = batch.num_rows() as u64;
                    let deletes = page.removed as u64;
                    self.writer.write(&batch).await?;
                    // The rows now live encoded in the Parquet writer: free the page's memory
                    // and its share of the budget, and account for the writer's buffers.
                    page.batch = arrow::array::RecordBatch::new_empty(page.batch.schema());
                    drop(batch);
                    drop(lease);
                    self.account_buffers().await?;
                    self.report.pages += 1;
                    self.report.upserts += rows - deletes.min(rows);
                    self.report.deletes += deletes.min(rows);
                    self.report.malformed_items += page.malformed_items as u64;
                    self.report.bytes += page.bytes;
                    self.round.pages += 1;
                    self.pages_since_commit += 1;
                    self.rows_since_commit += rows;
                    self.runner.progress.emit(ProgressEvent::Page {
                        mailbox_id: self.part.mailbox_id.clone(),
                        stream: self.part.stream,
                        rows,
                        upserts: page.upserted_ids.len() as u64,
                    });
                    match page.cursor {
                        Cursor::Delta(_) => {
                            self.finish_round(page.cursor, from).await?;
                            return Ok(());
                        }
                        Cursor::Next(_) => {
                            self.last_link = Some(page.cursor.clone());
                            let due = self.pages_since_commit >= settings.commit_every_pages
                                || self.last_commit.elapsed() >= settings.commit_every
                                || self.runner.cancel.is_cancelled();
                            if due {
                                self.commit(Some(page.cursor), false).await?;
                            }
                            if self.runner.stopped() {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        // The fetcher stopped (cancelled): keep what was staged.
        if self.pages_since_commit > 0 {
            let cursor = self.last_link.clone();
            self.commit(cursor, false).await?;
        }
        Ok(())
    }

    /// Hold budget for what the open file buffers; when the budget cannot cover it, write the
    /// file out to storage (it stays staged for the next commit).
    async fn account_buffers(&mut self) -> Result<(), PartitionError> {
        if !self.buffer_lease.hold_buffered(self.writer.buffered_bytes()) {
            self.writer.roll().await?;
            self.buffer_lease.hold_buffered(self.writer.buffered_bytes());
        }
        Ok(())
    }

    /// Drop messages outside `received_after` (they are neither written nor counted as seen, so
    /// a baseline that owes deletes removes them from the output).
    fn apply_message_scope(&mut self, mut page: Page) -> Result<Page, PartitionError> {
        if self.part.stream != Stream::Messages {
            return Ok(page);
        }
        let Some(mask) = self.runner.settings.messages.mask(&page.batch) else { return Ok(page) };
        let dropped: HashSet<String> = match page.batch.column_by_name(crate::model::columns::ID).and_then(|c| c.as_string_opt::<i32>().cloned()) {
            Some(ids) => (0..mask.len()).filter(|&i| !mask.value(i) && ids.is_valid(i)).map(|i| ids.value(i).to_string()).collect(),
            None => HashSet::new(),
        };
        page.batch = arrow::compute::filter_record_batch(&page.batch, &mask).map_err(|e| PartitionError::Other(format!("filtering by received_after: {e}")))?;
        self.report.filtered += (mask.len() - mask.true_count()) as u64;
        page.upserted_ids.retain(|id| !dropped.contains(id));
        Ok(page)
    }

    /// calendarView can hand out the same events page after page (a known Graph fault); stop
    /// rather than loop.
    fn check_repeats(&mut self, page: &Page) -> Result<(), PartitionError> {
        if self.part.stream != Stream::Events || page.upserted_ids.is_empty() {
            return Ok(());
        }
        let all_seen = page.upserted_ids.iter().all(|id| self.seen_event_ids.contains(id));
        if all_seen {
            self.repeat_pages += 1;
            if self.repeat_pages >= 3 {
                return Err(PartitionError::Source(SourceError::new(
                    SourceErrorKind::Partition,
                    None,
                    format!(
                        "calendarView delta returned only already-seen events on {} pages in a row; stopping this calendar instead of looping (narrow calendar_start/calendar_end or lower page_size)",
                        self.repeat_pages
                    ),
                )));
            }
        } else {
            self.repeat_pages = 0;
            self.seen_event_ids.extend(page.upserted_ids.iter().cloned());
        }
        Ok(())
    }

    /// In a baseline that owes deletes, rows whose change key equals what the output already
    /// holds are not written again; their ids are remembered so the final diff keeps them.
    async fn skip_unchanged(&mut self, page: &Page) -> Result<arrow::array::RecordBatch, PartitionError> {
        if self.baseline_known.is_none() {
            self.baseline_known = Some(self.runner.lake.current_keys(&self.part).await?);
        }
        let known = self.baseline_known.as_ref().expect("loaded above");
        self.baseline_seen.extend(page.upserted_ids.iter().cloned());
        let keep =
            crate::state::changed_rows(&page.batch, |id, change_key| known.get(id).is_none_or(|k| k.deleted || k.change_key.as_deref() != Some(change_key)));
        match keep {
            Some(mask) => arrow::compute::filter_record_batch(&page.batch, &mask).map_err(|e| PartitionError::Other(format!("filtering unchanged rows: {e}"))),
            None => Ok(page.batch.clone()),
        }
    }

    async fn finish_round(&mut self, delta: Cursor, fetched_from: Option<Cursor>) -> Result<(), PartitionError> {
        if self.round.owes_deletes {
            // Make this round's rows committed state first (resume point: the link of the
            // last page), then diff against it.
            self.commit(fetched_from, false).await?;
            let keys = self.runner.lake.current_keys(&self.part).await?;
            let mut gone: Vec<String> =
                keys.into_iter().filter(|(id, k)| !k.deleted && k.seq < self.round.started_seq && !self.baseline_seen.contains(id)).map(|(id, _)| id).collect();
            gone.sort();
            if !gone.is_empty() {
                let batch = self.runner.source.delete_rows(&self.part, &gone, &self.runner.seq, &self.runner.settings.run_id);
                self.writer.write(&batch).await?;
                self.report.deletes += gone.len() as u64;
                self.rows_since_commit += gone.len() as u64;
                tracing::info!(partition = %self.part, deletes = gone.len(), "baseline: items gone while the sync state was lost");
            }
        }
        self.commit(Some(delta), false).await
    }

    async fn commit(&mut self, cursor: Option<Cursor>, rebaselined: bool) -> Result<(), PartitionError> {
        let files = self.writer.finish().await?;
        self.buffer_lease.hold_buffered(0);
        let rows = self.rows_since_commit;
        let cp = self
            .runner
            .lake
            .commit(CommitRequest {
                partition: self.part.clone(),
                previous: self.previous.clone(),
                files,
                cursor,
                round: self.round.clone(),
                run_id: self.runner.settings.run_id.clone(),
                rows,
                rebaselined,
                retired: false,
            })
            .await
            .map_err(|e| {
                if e.kind == LakeErrorKind::Conflict {
                    PartitionError::Other(format!("{} — stopping {}", e.message, self.part))
                } else {
                    PartitionError::Lake(e)
                }
            })?;
        self.previous = Some(cp);
        self.report.commits += 1;
        self.pages_since_commit = 0;
        self.rows_since_commit = 0;
        self.last_commit = Instant::now();
        self.runner.progress.emit(ProgressEvent::Committed { mailbox_id: self.part.mailbox_id.clone(), stream: self.part.stream, rows });
        Ok(())
    }
}
