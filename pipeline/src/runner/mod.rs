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
use parking_lot::Mutex;

use crate::budget::PageBudget;
use crate::lake::{DynLake, LakeError};
use crate::model::{CalendarWindow, Mailbox, PartitionKey, Stream};
use crate::plan::Membership;
use crate::progress::{Progress, ProgressEvent};
use crate::scope::{CalendarFilter, FolderScope, MessageScope};
use crate::seq::SeqGen;
use crate::source::{DynSource, SourceError, SourceErrorKind};

pub use error::PartitionError;
pub use report::{FailureKind, FatalKind, MailboxReport, MailboxStatus, PartitionFailure, RunOutcome, RunReport, StreamReport};

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
}

impl Runner {
    pub fn new(source: DynSource, lake: DynLake, settings: RunSettings, progress: Progress, seq: Arc<SeqGen>, cancel: Cancel) -> Self {
        let budget = PageBudget::new(settings.page_budget_bytes);
        Runner {
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

    pub async fn run(self: Arc<Self>) -> RunReport {
        let started_at = chrono::Utc::now();
        let t0 = Instant::now();
        let mut listing = match self.source.mailboxes().await {
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
        let mut done: Vec<MailboxReport> = stream::iter(listing.mailboxes)
            .map(|mb| this.clone().run_mailbox(mb))
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
            fatal_kind: fatal.as_ref().map(|e| fatal_kind(e.kind)),
            fatal: fatal.map(|e| e.message),
            interrupted: self.stop.cancel.is_cancelled(),
        }
    }

    async fn run_mailbox(self: Arc<Self>, mb: Mailbox) -> MailboxReport {
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
