//! Carrying out one partition's [`Action`]: load its latest commit (rolling a publish
//! forward), plan it, then run a round (fetch stage → write stage, joined) or write the delete
//! rows of a park or a retirement.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::keys::Fingerprinter;
use crate::model::{Checkpoint, Mailbox, PageRequest, PartitionKey, PartitionState, RoundInfo, RoundKind, RoundScope, SeenLog, Stream};
use crate::plan::{Action, Membership, PlannedPartition, plan_partition};
use crate::source::SourceErrorKind;

use futures::stream::{self, StreamExt};

use super::commit::{Committer, NewPosition};
use super::deletes::DeleteRows;
use super::error::PartitionError;
use super::fetch::{FetchContext, Fetched, fetch_loop};
use super::report::StreamReport;
use super::write::{PartitionWriter, WriteContext, WriteEnd};
use super::{Fatal, MailboxRun, Runner};

/// Pages in flight between a partition's fetch and write stages.
const CHANNEL_PAGES: usize = 2;

/// What one partition did, and why it failed if it did.
#[derive(Debug, Default)]
pub(super) struct PartitionOutcome {
    pub report: StreamReport,
    pub error: Option<PartitionError>,
    /// The run stopped this partition before its round ended (what was staged was committed).
    pub interrupted: bool,
}

impl Runner {
    /// The round scope the configuration asks of a partition's stream.
    pub(super) fn configured_scope(&self, stream: Stream) -> RoundScope {
        match stream {
            Stream::Messages => self.settings.messages.round_scope(),
            Stream::Events => RoundScope { calendar_window: self.settings.calendar_window, ..RoundScope::default() },
            Stream::MailFolders | Stream::Calendars | Stream::Mailboxes => RoundScope::default(),
        }
    }

    /// Carry out a mailbox's plan for one per-container stream ([`crate::plan::plan_children`]):
    /// parks and retirements first, one at a time, then the rounds, up to
    /// `max_concurrent_per_mailbox` at once; every outcome goes into the mailbox's report.
    pub(super) async fn carry_out(self: Arc<Self>, mb: &Mailbox, plan: Vec<PlannedPartition>, run: &mut MailboxRun) -> Result<(), Fatal> {
        let (removals, rounds): (Vec<_>, Vec<_>) = plan.into_iter().partition(|p| matches!(p.action, Action::Park | Action::Retire));
        for p in removals {
            let outcome = self.clone().run_partition(mb, p.partition.clone(), p.membership).await;
            run.absorb(&p.partition, outcome)?;
        }
        let this = self.clone();
        let outcomes: Vec<(PartitionKey, PartitionOutcome)> = stream::iter(rounds)
            .map(|p| {
                let this = this.clone();
                let mb = mb.clone();
                async move {
                    let outcome = this.run_partition(&mb, p.partition.clone(), p.membership).await;
                    (p.partition, outcome)
                }
            })
            .buffer_unordered(self.settings.max_concurrent_per_mailbox.max(1))
            .collect()
            .await;
        for (part, outcome) in outcomes {
            run.absorb(&part, outcome)?;
        }
        Ok(())
    }

    /// Load, plan and carry out one partition.
    pub(super) async fn run_partition(self: Arc<Self>, mb: &Mailbox, part: PartitionKey, membership: Membership) -> PartitionOutcome {
        let t0 = Instant::now();
        let previous = match self.lake.load(&part).await {
            Ok(p) => p,
            Err(e) => return PartitionOutcome { report: StreamReport::default(), error: Some(e.into()), interrupted: false },
        };
        let action = plan_partition(previous.as_ref(), membership, &self.configured_scope(part.stream));
        tracing::debug!(partition = %part, ?action, "planned");
        let rolled = window_rolled(previous.as_ref(), &action);
        let mut outcome = match action {
            Action::Nothing => return PartitionOutcome::default(),
            Action::Park | Action::Retire => self.remove(part, previous, action).await,
            _ => self.run_round(mb, part, previous, action).await,
        };
        outcome.report.duration_ms = t0.elapsed().as_millis() as u64;
        outcome.report.window_rollovers = u64::from(rolled);
        outcome
    }

    async fn run_round(self: Arc<Self>, mb: &Mailbox, part: PartitionKey, previous: Option<Checkpoint>, action: Action) -> PartitionOutcome {
        let rebaseline = matches!(action, Action::Rebaseline(_));
        if let Action::Rebaseline(why) = action {
            tracing::info!(partition = %part, reason = why.as_str(), "re-baselining");
        }
        let (round, request) = match action {
            Action::Resume { link, round } => (round, PageRequest::Link(link)),
            Action::Incremental { link } => (self.new_round(&part, RoundKind::Incremental), PageRequest::Link(link)),
            Action::Baseline => (self.new_round(&part, RoundKind::Baseline), PageRequest::Initial),
            _ => (self.new_round(&part, RoundKind::Rebaseline), PageRequest::Initial),
        };
        let (tx, rx) = mpsc::channel::<Fetched>(CHANNEL_PAGES);
        let fetch = FetchContext {
            source: self.source.clone(),
            mailbox: mb.clone(),
            partition: part.clone(),
            seq: self.seq.clone(),
            run_id: self.settings.run_id.clone(),
            stop: self.stop.clone(),
            budget: self.budget.clone(),
            first_page_bytes: self.settings.first_page_bytes,
        };
        let fetcher = tokio::spawn(fetch_loop(fetch, request, tx));
        let mut writer = PartitionWriter::new(
            WriteContext {
                lake: self.lake.clone(),
                source: self.source.clone(),
                partition: part.clone(),
                commit_every_pages: self.settings.commit_every_pages,
                commit_every: self.settings.commit_every,
                messages: self.settings.messages.clone(),
                // With a folder scope, the expected count comes from the selected folders instead.
                report_expected_items: part.stream == Stream::MailFolders && self.settings.folders.is_everything(),
                progress: self.progress.clone(),
                throttle: self.throttle.clone(),
                stop: self.stop.clone(),
            },
            self.committer(&part, previous),
            self.lake.writer(&part),
            round,
            self.budget.empty_lease(),
        );
        writer.report.rebaselines = u64::from(rebaseline);
        let written = writer.consume(rx).await;
        // The fetch task is always joined: when the write stage ended first, stop it; when the
        // fetch stage ended first, learn why.
        let fetch_ended = matches!(written, Ok(WriteEnd::FetchEnded));
        let interrupted = matches!(written, Ok(WriteEnd::Stopped)) || (fetch_ended && self.stop.is_stopped());
        if !fetch_ended {
            fetcher.abort();
        }
        let joined = fetcher.await;
        let result = match (written, joined) {
            (_, Err(e)) if e.is_panic() => {
                let panic = PartitionError::FetchPanicked(panic_text(e.into_panic()));
                Err(panic)
            }
            (Ok(WriteEnd::FetchEnded), _) if !self.stop.is_stopped() => Err(PartitionError::FetchEndedEarly),
            (result, _) => result.map(|_| ()),
        };
        let (report, committer) = writer.into_parts();
        match result {
            Err(PartitionError::Source(e)) if e.kind == SourceErrorKind::FolderGone => {
                tracing::info!(partition = %part, "folder no longer exists");
                let retired = self.remove(part, committer.previous, Action::Retire).await;
                let mut merged = report;
                merged.deletes += retired.report.deletes;
                merged.commits += retired.report.commits;
                PartitionOutcome { report: merged, error: retired.error, interrupted: false }
            }
            Err(e) => {
                tracing::warn!(partition = %part, kind = e.kind().as_str(), error = %e, "partition failed");
                PartitionOutcome { report, error: Some(e), interrupted: false }
            }
            Ok(()) => PartitionOutcome { report, error: None, interrupted },
        }
    }

    /// Park or retire: a delete row for every key the output holds for the partition, in one
    /// commit that records the new state (no cursor).
    async fn remove(self: Arc<Self>, part: PartitionKey, previous: Option<Checkpoint>, action: Action) -> PartitionOutcome {
        let state = if action == Action::Park { PartitionState::Parked } else { PartitionState::Retired };
        let mut report = StreamReport::default();
        let result: Result<(), PartitionError> = async {
            let index = self.lake.key_index(&part, Fingerprinter::default()).await?;
            let present = index.present_matching(|_| true);
            let fingerprinter = index.fingerprinter().clone();
            drop(index);
            let mut writer = self.lake.writer(&part);
            let deletes = DeleteRows { lake: &self.lake, source: &self.source, partition: &part, seq: &self.seq, run_id: &self.settings.run_id };
            let rows = deletes.write(&fingerprinter, present, writer.as_mut()).await?;
            let files = writer.finish().await?;
            let round = previous.as_ref().map(|p| p.round.clone()).unwrap_or_else(|| self.new_round(&part, RoundKind::Baseline));
            let mut committer = self.committer(&part, previous);
            committer.commit(NewPosition { files, state, cursor: None, round: &round, rows, rebaselined: false }).await?;
            report.deletes = rows;
            report.commits = 1;
            let why = match (part.stream, state, &part.folder_id) {
                (Stream::Events, _, None) => "events are now synced per calendar: wrote delete rows for the single events partition of the earlier layout",
                (Stream::Events, PartitionState::Parked, _) => "calendar left source.calendars: wrote delete rows for its events",
                (Stream::Events, _, _) => "calendar is gone: wrote delete rows for its events",
                (_, PartitionState::Parked, _) => "folder left include_folders / exclude_folders: wrote delete rows for its messages",
                _ => "folder is gone: wrote delete rows for its messages",
            };
            tracing::info!(partition = %part, deletes = rows, "{why}");
            Ok(())
        }
        .await;
        PartitionOutcome { report, error: result.err(), interrupted: false }
    }

    pub(super) fn committer(&self, part: &PartitionKey, previous: Option<Checkpoint>) -> Committer {
        Committer {
            lake: self.lake.clone(),
            partition: part.clone(),
            previous,
            run_id: self.settings.run_id.clone(),
            seq: self.seq.clone(),
            progress: self.progress.clone(),
            lease: self.held.lock().get(&part.mailbox_id).cloned(),
        }
    }

    pub(super) fn new_round(&self, part: &PartitionKey, kind: RoundKind) -> RoundInfo {
        RoundInfo { kind, started_seq: self.seq.next(), pages: 0, scope: self.configured_scope(part.stream), seen: SeenLog::for_round(kind) }
    }
}

/// Whether the action re-baselines an events partition because its calendar window moved.
fn window_rolled(previous: Option<&Checkpoint>, action: &Action) -> bool {
    let Some(cp) = previous else { return false };
    cp.partition.stream == Stream::Events
        && matches!(action, Action::Rebaseline(crate::plan::RebaselineReason::ScopeChanged))
        && cp.round.scope.calendar_window.is_some()
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(|| "no message".to_string(), |s| s.to_string()),
    }
}
