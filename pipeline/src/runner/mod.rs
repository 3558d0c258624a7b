//! The runner: mailboxes → partitions → rounds → pages → staged files → commits.
//!
//! Contract:
//! - Per mailbox, the folder tree is synced first, then each folder's messages (concurrently,
//!   up to `max_concurrent_per_mailbox` partitions), then the calendars listing and each
//!   selected calendar's events ([`calendars`]).
//! - What each partition does is decided by the pure planner ([`crate::plan`]) from its
//!   committed [`PartitionState`](crate::model::PartitionState), the folder tree, the folder
//!   scope and the configured round scope; this module only carries the plan out.
//! - A round runs as three stages with narrow contexts: fetch ([`fetch`]: limiter → request →
//!   retry → normalize, in the source), write ([`write`]: scope, stage, roll, memory budget)
//!   and commit ([`commit`]: record + publish, through the lake). The fetch task is always
//!   joined: a panic, or an end without a final link, fails the partition with a message that
//!   says so (after committing what was staged before it).
//! - A cursor is committed only with (or after) the data it covers: a crash loses nothing and,
//!   thanks to `_seq` and keyed reads, duplicates nothing a reader can see in the current state.
//! - Errors are typed end to end: source errors of kind `Auth` / `Fatal` stop the run
//!   ([`FatalKind`]); every other failure fails its partition, is reported with its
//!   [`FailureKind`], and fails the mailbox after its other partitions finish.
//! - `_seq` ([`crate::seq`]) never goes below [`Runner::seq_floor`]: above every `_seq` any
//!   commit ever recorded (its high-water mark), so a clock that steps back between runs cannot
//!   make a later observation lose to an earlier one.

mod calendars;
mod commit;
mod deletes;
mod error;
mod fetch;
mod mailboxes;
mod messages;
mod partition;
mod report;
mod write;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use outlake_config::Shard;
use parking_lot::Mutex;

use crate::budget::PageBudget;
use crate::lake::{DynLake, LakeError};
use crate::lease::{Acquired, LeaseHolder, Leases, MailboxLease};
use crate::model::{CalendarWindow, Mailbox, PartitionKey, Stream};
use crate::plan::Membership;
use crate::progress::{Progress, ProgressEvent};
use crate::scope::{CalendarFilter, FolderScope, MessageScope};
use crate::seq::SeqGen;
use crate::source::{DynSource, SourceError, SourceErrorKind};

pub use error::PartitionError;
pub use report::{FailureKind, FatalKind, LeaseReport, MailboxReport, MailboxStatus, PartitionFailure, RunOutcome, RunReport, StreamReport};

use partition::PartitionOutcome;

/// A flag the binary sets on Ctrl-C; partitions stop at their next page boundary after
/// committing what they staged.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether partitions should stop at their next page boundary: the user cancelled, or another
/// mailbox hit a run-stopping error.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stop {
    cancel: Cancel,
    fatal: Arc<AtomicBool>,
}

impl Stop {
    pub fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.fatal.load(Ordering::SeqCst)
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
    /// Which calendars get an events partition.
    pub calendars: CalendarFilter,
    /// The calendarView window in force for this run (resolved from the configured bounds and
    /// the run's start); `None` leaves the window out of the events round scope.
    pub calendar_window: Option<CalendarWindow>,
    /// Mailboxes to leave out, matched against the user id and the UPN.
    pub exclude_mailboxes: Vec<glob::Pattern>,
    /// Memory for normalized pages in flight (fetched, queued, being written), shared by all
    /// partitions ([`PageBudget`]).
    pub page_budget_bytes: u64,
    /// What a partition's first request is expected to need (response body + batch) before
    /// the budget learns from its pages.
    pub first_page_bytes: u64,
    /// Which of the listed mailboxes this worker takes (`--shard`).
    pub shard: Shard,
    /// How long a mailbox lease holds without a renewal; `None` leases nothing (tests of the
    /// engine alone).
    pub lease_ttl: Option<Duration>,
}

/// Thrown out of a mailbox to stop the run.
#[derive(Debug, Clone)]
struct Fatal(SourceError);

fn fatal_kind(kind: SourceErrorKind) -> FatalKind {
    if kind == SourceErrorKind::Auth { FatalKind::Auth } else { FatalKind::Fatal }
}

pub struct Runner {
    source: DynSource,
    lake: DynLake,
    settings: RunSettings,
    progress: Progress,
    seq: Arc<SeqGen>,
    stop: Stop,
    fatal: Mutex<Option<SourceError>>,
    budget: PageBudget,
    throttle: crate::progress::ThrottleMeter,
    /// Mailbox leases, when the lake keeps them and `lease_ttl` is set.
    leases: Option<Leases>,
    /// The leases this worker holds now, by mailbox id (the committers check them).
    held: Mutex<std::collections::HashMap<String, Arc<MailboxLease>>>,
    /// When this run started: draining with other workers, a mailbox another worker finished
    /// since then (less a TTL, for workers started a little earlier) is not synced again.
    started_at: chrono::DateTime<chrono::Utc>,
    /// Listed mailboxes whose user was not probed yet (probed under the lease).
    unprobed: Mutex<std::collections::HashSet<String>>,
}

impl Runner {
    pub fn new(source: DynSource, lake: DynLake, settings: RunSettings, progress: Progress, seq: Arc<SeqGen>, cancel: Cancel) -> Self {
        let budget = PageBudget::new(settings.page_budget_bytes);
        let leases = match (lake.leases(), settings.lease_ttl) {
            (Some(store), Some(ttl)) => Some(Leases::new(store, LeaseHolder::this_process(&settings.run_id), ttl)),
            _ => None,
        };
        Runner {
            leases,
            held: Mutex::default(),
            unprobed: Mutex::default(),
            started_at: chrono::Utc::now(),
            source,
            lake,
            settings,
            progress,
            seq,
            stop: Stop { cancel, fatal: Arc::default() },
            fatal: Mutex::new(None),
            budget,
            throttle: Default::default(),
        }
    }

    /// The `_seq` floor for a new run: above every `_seq` recorded by any commit (its
    /// high-water mark; records of format 1, which have none, count with their round's start).
    pub async fn seq_floor(lake: &DynLake) -> Result<i64, LakeError> {
        Ok(lake.list(None).await?.iter().map(|c| c.high_water_seq.max(c.round.started_seq)).max().unwrap_or(0))
    }

    /// Mailboxes with at least one commit (the source skips checks it made when they were first
    /// synced). A lake that cannot be listed gives none: the checks are made again.
    async fn synced_mailboxes(&self) -> std::collections::HashSet<String> {
        match self.lake.list(None).await {
            Ok(commits) => commits.into_iter().map(|c| c.partition.mailbox_id).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the commits; every discovered mailbox is probed again");
                Default::default()
            }
        }
    }

    pub async fn run(self: Arc<Self>) -> RunReport {
        let started_at = chrono::Utc::now();
        let t0 = Instant::now();
        // With leases, a discovered user is probed by the worker that takes its lease (so that two
        // workers never probe one mailbox at once, and a shard probes only its own).
        let synced = self.synced_mailboxes().await;
        let listed = if self.leases.is_some() { self.source.mailboxes_unprobed(&synced).await } else { self.source.mailboxes_known(&synced).await };
        let mut listing = match listed {
            Ok(l) => l,
            Err(e) => {
                return RunReport {
                    run_id: self.settings.run_id.clone(),
                    started_at,
                    duration_ms: t0.elapsed().as_millis() as u64,
                    mailboxes: vec![],
                    fatal_kind: Some(fatal_kind(e.kind)),
                    fatal: Some(e.message),
                    interrupted: self.stop.cancel.is_cancelled(),
                };
            }
        };
        let excluded = &self.settings.exclude_mailboxes;
        let case_insensitive = glob::MatchOptions { case_sensitive: false, ..Default::default() };
        listing.mailboxes.retain(|mb| {
            let hit = excluded.iter().any(|p| p.matches(&mb.id) || mb.upn.as_deref().is_some_and(|u| p.matches_with(u, case_insensitive)));
            if hit {
                tracing::info!(mailbox = %mb.label(), "excluded by source.exclude_mailboxes");
            }
            !hit
        });
        *self.unprobed.lock() = std::mem::take(&mut listing.unprobed);
        let shard = self.settings.shard;
        let listed = listing.mailboxes.len();
        listing.mailboxes.retain(|mb| shard.takes(&mb.id));
        if let Shard::Hashed { .. } = shard {
            tracing::info!(shard = %shard, mailboxes = listing.mailboxes.len(), listed, "shard selected its mailboxes");
        }
        let start = shard.start_of(listing.mailboxes.len());
        listing.mailboxes.rotate_left(start);
        self.progress.emit(ProgressEvent::RunStarted { mailboxes: listing.mailboxes.len() });
        let mut reports: Vec<MailboxReport> = listing
            .skipped
            .iter()
            .map(|(who, why)| {
                self.progress.emit(ProgressEvent::MailboxSkipped { mailbox: who.clone(), reason: why.clone() });
                tracing::info!(mailbox = %who, reason = %why, "skipped: user has no mailbox");
                MailboxReport::skipped(who, why)
            })
            .collect();
        for (who, e) in &listing.failed {
            tracing::warn!(mailbox = %who, error = %e.message, "mailbox failed: it could not be resolved");
            reports.push(MailboxReport::unresolved(who, e));
        }
        let this = self.clone();
        let by_id: BTreeMap<String, Mailbox> = listing.mailboxes.iter().map(|mb| (mb.id.clone(), mb.clone())).collect();
        let draining = shard.is_any();
        let mut done: Vec<MailboxReport> = stream::iter(listing.mailboxes)
            .map(|mb| {
                let this = this.clone();
                async move {
                    let report = this.clone().run_mailbox(mb).await;
                    // Draining, a busy mailbox is waited for below, not left alone yet.
                    if !(draining && report.status == MailboxStatus::Busy) {
                        this.announce_left_alone(&report);
                    }
                    report
                }
            })
            .buffer_unordered(self.settings.max_parallel_mailboxes.max(1))
            .collect()
            .await;
        if shard.is_any() {
            // Draining with other workers: the mailboxes that were busy are waited for, so that
            // the drain ends only when every mailbox was synced by someone.
            let (busy, mut finished): (Vec<_>, Vec<_>) = done.into_iter().partition(|r| r.status == MailboxStatus::Busy);
            let waited: Vec<MailboxReport> = stream::iter(busy)
                .map(|r| {
                    let mb = by_id.get(&r.mailbox_id).cloned();
                    let this = this.clone();
                    async move {
                        let report = match mb {
                            Some(mb) => this.clone().wait_for_mailbox(mb, r).await,
                            None => r,
                        };
                        this.announce_left_alone(&report);
                        report
                    }
                })
                .buffer_unordered(self.settings.max_parallel_mailboxes.max(1))
                .collect()
                .await;
            finished.extend(waited);
            done = finished;
        }
        done.sort_by(|a, b| a.label.cmp(&b.label));
        reports.extend(done);
        let fatal = self.fatal.lock().clone();
        RunReport {
            run_id: self.settings.run_id.clone(),
            started_at,
            duration_ms: t0.elapsed().as_millis() as u64,
            mailboxes: reports,
            fatal_kind: fatal.as_ref().map(|e| fatal_kind(e.kind)),
            fatal: fatal.map(|e| e.message),
            interrupted: self.stop.cancel.is_cancelled(),
        }
    }

    /// Take the mailbox's lease (when leasing), sync it, give the lease back.
    async fn run_mailbox(self: Arc<Self>, mb: Mailbox) -> MailboxReport {
        let Some(leases) = self.leases.clone() else { return self.sync_mailbox(mb).await };
        if self.stop.is_stopped() {
            return self.sync_mailbox(mb).await;
        }
        let drained_since = self.settings.shard.is_any().then(|| self.started_at - chrono::Duration::from_std(leases.ttl()).unwrap_or_default());
        let lease = match leases.acquire(&mb.id, drained_since).await {
            Ok(Acquired::Held(lease)) => lease,
            Ok(Acquired::Busy(rec)) => {
                tracing::info!(mailbox = %mb.label(), holder = %rec.holder, until = %rec.expires_at.to_rfc3339(), "mailbox busy: another worker holds its lease; left alone");
                return MailboxReport::leased_elsewhere(&mb.id, mb.label(), MailboxStatus::Busy, &rec);
            }
            Ok(Acquired::Done(rec)) => {
                tracing::info!(mailbox = %mb.label(), by = %rec.holder, at = %rec.expires_at.to_rfc3339(), "mailbox already synced by another worker in this drain");
                return MailboxReport::leased_elsewhere(&mb.id, mb.label(), MailboxStatus::SyncedElsewhere, &rec);
            }
            Err(e) => {
                tracing::warn!(mailbox = %mb.label(), error = %e, "mailbox failed: its lease could not be taken");
                let mut report = MailboxReport::skipped(&mb.id, "");
                report.label = mb.label().to_string();
                report.status = MailboxStatus::Failed;
                report.error = Some(format!("taking the mailbox lease: {}", PartitionError::from(e)));
                return report;
            }
        };
        self.held.lock().insert(mb.id.clone(), lease.clone());
        let renewals = tokio::spawn(lease.clone().keep_alive());
        let report = match self.probe_under_lease(&mb).await {
            Ok(None) => self.clone().sync_mailbox(mb.clone()).await,
            Ok(Some(why)) => {
                tracing::info!(mailbox = %mb.label(), reason = %why, "skipped: user has no mailbox");
                MailboxReport { mailbox_id: mb.id.clone(), ..MailboxReport::skipped(mb.label(), &why) }
            }
            Err(e) => self.clone().mailbox_failed_early(&mb, e),
        };
        self.held.lock().remove(&mb.id);
        let released = lease.release(report.status == MailboxStatus::Ok).await;
        if let Err(e) = renewals.await {
            tracing::error!(mailbox = %mb.label(), error = %e, "the lease renewal task of a mailbox panicked (a bug)");
        }
        if let Err(e) = released {
            tracing::warn!(mailbox = %mb.label(), error = %e, "could not give the mailbox lease back; other workers can take it when it expires");
        }
        report
    }

    /// Tell the progress display that a mailbox counted at the start is not synced by this run.
    fn announce_left_alone(&self, report: &MailboxReport) {
        let reason = match (&report.status, &report.lease) {
            (MailboxStatus::Busy, Some(l)) => format!("busy: leased by {} (run {})", l.worker, l.run_id),
            (MailboxStatus::SyncedElsewhere, Some(l)) => format!("synced by {} (run {})", l.worker, l.run_id),
            (MailboxStatus::Skipped, _) => report.error.clone().unwrap_or_default(),
            _ => return,
        };
        self.progress.emit(ProgressEvent::MailboxLeftAlone { mailbox_id: report.mailbox_id.clone(), reason });
    }

    /// The probe the listing left to the lease holder: `Some(reason)` when the user has no
    /// mailbox.
    async fn probe_under_lease(&self, mb: &Mailbox) -> Result<Option<String>, SourceError> {
        if !self.unprobed.lock().contains(&mb.id) {
            return Ok(None);
        }
        self.source.probe_mailbox(mb).await
    }

    /// A mailbox whose probe failed: failed alone, or the run stops (credentials refused).
    fn mailbox_failed_early(self: Arc<Self>, mb: &Mailbox, e: SourceError) -> MailboxReport {
        if matches!(e.kind, SourceErrorKind::Auth | SourceErrorKind::Fatal) {
            let mut f = self.fatal.lock();
            if f.is_none() {
                *f = Some(e.clone());
            }
            self.stop.fatal.store(true, Ordering::SeqCst);
        }
        tracing::warn!(mailbox = %mb.label(), error = %e.message, "mailbox failed: it could not be probed");
        let mut report = MailboxReport::unresolved(&mb.id, &e);
        report.label = mb.label().to_string();
        report
    }

    /// Draining: wait until a busy mailbox's lease is given back or expires, then sync it
    /// (or find that its holder finished it).
    async fn wait_for_mailbox(self: Arc<Self>, mb: Mailbox, mut report: MailboxReport) -> MailboxReport {
        let Some(ttl) = self.leases.as_ref().map(|l| l.ttl()) else { return report };
        while report.status == MailboxStatus::Busy && !self.stop.is_stopped() {
            let until = report.lease.as_ref().map_or_else(chrono::Utc::now, |l| l.until);
            // Look again at the expiry, or sooner (a release): every sixth of the TTL.
            let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default().min(ttl / 6).max(Duration::from_millis(100));
            let deadline = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < deadline && !self.stop.is_stopped() {
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_secs(1))).await;
            }
            if self.stop.is_stopped() {
                break;
            }
            report = self.clone().run_mailbox(mb.clone()).await;
        }
        report
    }

    async fn sync_mailbox(self: Arc<Self>, mb: Mailbox) -> MailboxReport {
        let t0 = Instant::now();
        self.progress.emit(ProgressEvent::MailboxStarted { mailbox_id: mb.id.clone(), label: mb.label().to_string() });
        let mut run = MailboxRun::default();
        let wants = |s: Stream| self.settings.streams.contains(&s);

        let result: Result<(), Fatal> = async {
            // A mailbox reached after the run stopped does nothing (it is reported interrupted).
            if run.stopped_before_stage(&self.stop) {
                return Ok(());
            }
            self.sync_mailbox_row(&mb, &mut run).await?;
            if wants(Stream::MailFolders) || wants(Stream::Messages) {
                let part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
                let outcome = self.clone().run_partition(&mb, part.clone(), Membership::Selected).await;
                let failed = run.absorb(&part, outcome)?;
                if wants(Stream::Messages) && !failed && !run.stopped_before_stage(&self.stop) {
                    self.clone().run_messages(&mb, &mut run).await?;
                }
            }
            if (wants(Stream::Events) || wants(Stream::Calendars)) && !run.stopped_before_stage(&self.stop) {
                self.clone().run_calendars_and_events(&mb, &mut run, wants(Stream::Events)).await?;
            }
            Ok(())
        }
        .await;
        if let Err(Fatal(e)) = result {
            run.errors.push(e.message.clone());
            let mut f = self.fatal.lock();
            if f.is_none() {
                *f = Some(e);
            }
            self.stop.fatal.store(true, Ordering::SeqCst);
        }
        let stats = self.source.stats(&mb.id);
        let ok = run.errors.is_empty();
        let interrupted = run.interrupted;
        self.progress.emit(ProgressEvent::MailboxFinished { mailbox_id: mb.id.clone(), ok });
        let rows: u64 = run.streams.values().map(|s| s.upserts + s.deletes).sum();
        if ok && interrupted {
            tracing::info!(mailbox = %mb.label(), rows, requests = stats.requests, throttled = stats.throttled, "mailbox interrupted: the run stopped before it finished; what was fetched is committed");
        } else if ok {
            tracing::info!(mailbox = %mb.label(), rows, requests = stats.requests, throttled = stats.throttled, "mailbox synced");
        } else {
            tracing::warn!(mailbox = %mb.label(), rows, error = %run.errors.join("; "), "mailbox failed");
        }
        MailboxReport {
            mailbox_id: mb.id.clone(),
            label: mb.label().to_string(),
            status: match (ok, interrupted) {
                (false, _) => MailboxStatus::Failed,
                (true, true) => MailboxStatus::Interrupted,
                (true, false) => MailboxStatus::Ok,
            },
            error: if ok { None } else { Some(run.errors.join("; ")) },
            streams: run.streams,
            requests: stats.requests,
            throttled: stats.throttled,
            retries: stats.retries,
            throttle_wait_ms: stats.throttle_wait_ms,
            duration_ms: t0.elapsed().as_millis() as u64,
            lease: None,
        }
    }
}

/// One mailbox's reports while it runs.
#[derive(Debug, Default)]
struct MailboxRun {
    streams: BTreeMap<String, StreamReport>,
    errors: Vec<String>,
    /// A partition was stopped before its round ended, or a stage was skipped because the run
    /// stopped.
    interrupted: bool,
}

impl MailboxRun {
    /// True when the run has stopped, so the next stage is skipped (and the mailbox counts as
    /// interrupted).
    fn stopped_before_stage(&mut self, stop: &Stop) -> bool {
        let stopped = stop.is_stopped();
        self.interrupted |= stopped;
        stopped
    }

    /// Merge a partition's outcome into its stream's report. Returns whether it failed;
    /// escalates run-stopping errors.
    fn absorb(&mut self, part: &PartitionKey, outcome: PartitionOutcome) -> Result<bool, Fatal> {
        let rep = self.streams.entry(part.stream.as_str().to_string()).or_default();
        self.interrupted |= outcome.interrupted;
        let mut counted = outcome.report;
        counted.partitions = 1;
        rep.add(&counted);
        let Some(err) = outcome.error else { return Ok(false) };
        if let Some(e) = err.run_stopping() {
            return Err(Fatal(e.clone()));
        }
        let message = err.to_string();
        rep.errors.push(message.clone());
        rep.failures.push(PartitionFailure { folder_id: part.folder_id.clone(), kind: err.kind(), message: message.clone() });
        self.errors.push(format!("{}: {message}", part.stream));
        Ok(true)
    }
}
