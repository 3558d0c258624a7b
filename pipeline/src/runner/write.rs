//! The write stage of a partition: takes fetched pages in order, applies the message scope,
//! stages rows (rolling files under the memory budget), and commits every
//! `commit_every_pages` pages or `commit_every`, and at the end of the round.
//!
//! Contract:
//! - A cursor is committed only with (or after) the data it covers.
//! - A failure from the fetch stage first commits the pages staged before it at the last safe
//!   link; if that commit fails too, both errors are returned.
//! - A rebaseline round (owes deletes) ends with a delete row for every key the output holds
//!   for the partition that the round did not return, in the same commit as the deltaLink.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use tokio::sync::mpsc;

use crate::budget::PageLease;
use crate::keys::{Fingerprint, Fingerprinter, KeyIndex, decode_fingerprints, encode_fingerprints};
use crate::lake::{DynLake, LakeError, StagedWriter};
use crate::model::{Cursor, Page, PartitionKey, PartitionState, RoundInfo, RoundKind, SeenLog, Stream};
use crate::progress::{Progress, ProgressEvent};
use crate::scope::MessageScope;
use crate::source::{DynSource, SourceError, SourceErrorKind};

use super::Stop;
use super::commit::{Committer, NewPosition};
use super::deletes::DeleteRows;
use super::error::PartitionError;
use super::fetch::Fetched;
use super::report::StreamReport;

/// What the write stage needs besides its committer and staged writer.
pub(super) struct WriteContext {
    pub lake: DynLake,
    /// For delete rows only.
    pub source: DynSource,
    pub partition: PartitionKey,
    pub commit_every_pages: u32,
    pub commit_every: Duration,
    pub messages: MessageScope,
    /// The mail folder stream reports its mailbox's expected items (no folder scope).
    pub report_expected_items: bool,
    pub progress: Progress,
    pub throttle: crate::progress::ThrottleMeter,
    pub stop: Stop,
}

/// How the write stage ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteEnd {
    /// The round reached its deltaLink and committed it.
    RoundDone,
    /// The run is stopping (cancel or a fatal error elsewhere); staged pages were committed.
    Stopped,
    /// The fetch stage ended without a final item; staged pages were committed. The partition
    /// learns why from the fetch task's join handle.
    FetchEnded,
}

pub(super) struct PartitionWriter {
    pub ctx: WriteContext,
    pub committer: Committer,
    pub writer: Box<dyn StagedWriter>,
    pub round: RoundInfo,
    pub report: StreamReport,
    pub buffer_lease: PageLease,
    pages_since_commit: u32,
    rows_since_commit: u64,
    last_commit: Instant,
    /// The nextLink after the latest staged page: where a resume continues.
    last_link: Option<Cursor>,
    seen_event_ids: HashSet<String>,
    repeat_pages: u32,
    /// In a rebaseline round: what the output held when the round started (read on its first
    /// page), with the keys the round has returned so far marked seen.
    baseline_known: Option<KeyIndex>,
    /// Fingerprints of keys the rebaseline returned since its last commit, for its seen log.
    unsaved_seen: Vec<Fingerprint>,
    /// Rows staged since the last commit: they count in the report once a commit holds them.
    pending: Pending,
}

/// Upsert and delete rows staged but not committed yet.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    upserts: u64,
    deletes: u64,
}

impl PartitionWriter {
    pub fn new(ctx: WriteContext, committer: Committer, writer: Box<dyn StagedWriter>, round: RoundInfo, buffer_lease: PageLease) -> Self {
        PartitionWriter {
            ctx,
            committer,
            writer,
            round,
            report: StreamReport::default(),
            buffer_lease,
            pages_since_commit: 0,
            rows_since_commit: 0,
            last_commit: Instant::now(),
            last_link: None,
            seen_event_ids: HashSet::new(),
            repeat_pages: 0,
            baseline_known: None,
            unsaved_seen: Vec::new(),
            pending: Pending::default(),
        }
    }

    /// The partition's report, with rows staged but never committed counted as such (a failure
    /// or a stop between staging and committing them); and its committer.
    pub fn into_parts(self) -> (StreamReport, Committer) {
        let mut report = self.report;
        report.uncommitted_rows += self.pending.upserts + self.pending.deletes;
        (report, self.committer)
    }

    pub async fn consume(&mut self, mut rx: mpsc::Receiver<Fetched>) -> Result<WriteEnd, PartitionError> {
        while let Some(item) = rx.recv().await {
            match item {
                Fetched::Failed(e) => return Err(self.fail(PartitionError::Source(e)).await),
                Fetched::Restarted(e, started_seq) => self.restart(e, started_seq).await?,
                Fetched::Page(page, from, lease) => {
                    if let Some(end) = self.page(page, from, lease).await? {
                        return Ok(end);
                    }
                }
            }
        }
        self.commit_staged().await?;
        Ok(WriteEnd::FetchEnded)
    }

    /// Keep what was fetched before a failure (commit it at the last safe link), then return
    /// the failure — with the commit's error when that failed too. A folder that is gone is
    /// retired instead, so nothing is committed for it here.
    pub async fn fail(&mut self, cause: PartitionError) -> PartitionError {
        let gone = matches!(&cause, PartitionError::Source(e) if e.kind == SourceErrorKind::FolderGone);
        if gone {
            return cause;
        }
        match self.commit_staged().await {
            Ok(()) => cause,
            Err(commit) => PartitionError::CommitAfterFailure { cause: Box::new(cause), commit },
        }
    }

    async fn commit_staged(&mut self) -> Result<(), LakeError> {
        if self.pages_since_commit > 0 {
            let cursor = self.last_link.clone();
            self.commit(cursor, false).await?;
        }
        Ok(())
    }

    /// The sync state expired mid-round and the fetcher restarted without a token.
    async fn restart(&mut self, e: SourceError, started_seq: i64) -> Result<(), PartitionError> {
        tracing::warn!(partition = %self.ctx.partition, code = e.code.as_deref().unwrap_or(""), "sync state expired; re-baselining");
        // One commit records the rebaseline round (no cursor: a crash starts it again) and
        // makes the rows staged so far committed state, so the diff at the round's end sees them.
        let abandoned = self.round.seen.take();
        self.round =
            RoundInfo { kind: RoundKind::Rebaseline, started_seq, pages: 0, scope: self.round.scope.clone(), seen: SeenLog::for_round(RoundKind::Rebaseline) };
        self.baseline_known = None;
        self.unsaved_seen.clear();
        self.report.rebaselines += 1;
        self.ctx.progress.emit(ProgressEvent::Rebaselined { mailbox_id: self.ctx.partition.mailbox_id.clone(), stream: self.ctx.partition.stream });
        self.last_link = None;
        self.commit(None, true).await?;
        // A rebaseline that restarted leaves its old seen log behind: no record names it now.
        self.remove_seen_log(abandoned.as_ref()).await;
        Ok(())
    }

    /// Remove a seen log no record needs any more (best effort: an unreferenced log is never read).
    async fn remove_seen_log(&self, log: Option<&SeenLog>) {
        let Some(log) = log else { return };
        if let Err(e) = self.ctx.lake.delete_round_files(&self.ctx.partition, &log.files).await {
            tracing::warn!(partition = %self.ctx.partition, error = %e, "could not remove a rebaseline's seen log; it is no longer used and harmless");
        }
    }

    /// Stage one page; commit when due. `Some` when the write stage is done.
    async fn page(&mut self, page: Page, from: Option<Cursor>, lease: PageLease) -> Result<Option<WriteEnd>, PartitionError> {
        let mut page = self.apply_message_scope(page)?;
        self.check_repeats(&page)?;
        if self.ctx.report_expected_items && self.round.kind.is_baseline() {
            let items = crate::state::sum_column(&page.batch, crate::model::columns::TOTAL_ITEM_COUNT);
            if items > 0 {
                self.ctx.progress.emit(ProgressEvent::MailboxExpected { mailbox_id: self.ctx.partition.mailbox_id.clone(), items });
            }
        }
        let batch = if self.round.kind.owes_deletes() { self.skip_unchanged(&page).await? } else { page.batch.clone() };
        let rows = batch.num_rows() as u64;
        let deletes = (page.removed as u64).min(rows);
        self.writer.write(&batch).await?;
        // The rows now live encoded in the Parquet writer: free the page's memory and its share
        // of the budget, and account for the writer's buffers.
        page.batch = RecordBatch::new_empty(page.batch.schema());
        drop(batch);
        drop(lease);
        self.account_buffers().await?;
        self.report.pages += 1;
        self.pending.upserts += rows - deletes;
        self.pending.deletes += deletes;
        self.report.malformed_items += page.malformed_items as u64;
        self.report.bytes += page.bytes;
        self.round.pages += 1;
        self.pages_since_commit += 1;
        self.rows_since_commit += rows;
        let mailbox_id = &self.ctx.partition.mailbox_id;
        self.ctx.throttle.update(&self.ctx.progress, mailbox_id, self.ctx.source.stats(mailbox_id).throttle_wait_ms);
        self.ctx.progress.emit(ProgressEvent::Page {
            mailbox_id: self.ctx.partition.mailbox_id.clone(),
            stream: self.ctx.partition.stream,
            rows,
            upserts: page.upserted_ids.len() as u64,
        });
        match page.cursor {
            Cursor::Delta(_) => {
                self.finish_round(page.cursor, from).await?;
                Ok(Some(WriteEnd::RoundDone))
            }
            Cursor::Next(_) => {
                self.last_link = Some(page.cursor.clone());
                let stopping = self.ctx.stop.is_stopped();
                let due = self.pages_since_commit >= self.ctx.commit_every_pages || self.last_commit.elapsed() >= self.ctx.commit_every || stopping;
                if due {
                    self.commit(Some(page.cursor), false).await?;
                }
                Ok(stopping.then_some(WriteEnd::Stopped))
            }
        }
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
    /// a rebaseline removes them from the output).
    fn apply_message_scope(&mut self, mut page: Page) -> Result<Page, PartitionError> {
        if self.ctx.partition.stream != Stream::Messages {
            return Ok(page);
        }
        let Some(mask) = self.ctx.messages.mask(&page.batch) else { return Ok(page) };
        let dropped: HashSet<String> = match page.batch.column_by_name(crate::model::columns::ID).and_then(|c| c.as_string_opt::<i32>().cloned()) {
            Some(ids) => (0..mask.len()).filter(|&i| !mask.value(i) && ids.is_valid(i)).map(|i| ids.value(i).to_string()).collect(),
            None => HashSet::new(),
        };
        page.batch = arrow::compute::filter_record_batch(&page.batch, &mask).map_err(|e| PartitionError::Batch(format!("filtering by received_after: {e}")))?;
        self.report.filtered += (mask.len() - mask.true_count()) as u64;
        page.upserted_ids.retain(|id| !dropped.contains(id));
        Ok(page)
    }

    /// calendarView can hand out the same events page after page (a known Graph fault); stop
    /// rather than loop.
    fn check_repeats(&mut self, page: &Page) -> Result<(), PartitionError> {
        if self.ctx.partition.stream != Stream::Events || page.upserted_ids.is_empty() {
            return Ok(());
        }
        let all_seen = page.upserted_ids.iter().all(|id| self.seen_event_ids.contains(id));
        if !all_seen {
            self.repeat_pages = 0;
            self.seen_event_ids.extend(page.upserted_ids.iter().cloned());
            return Ok(());
        }
        self.repeat_pages += 1;
        if self.repeat_pages < 3 {
            return Ok(());
        }
        Err(PartitionError::Source(SourceError::new(
            SourceErrorKind::Partition,
            None,
            format!(
                "calendarView delta returned only already-seen events on {} pages in a row; stopping this calendar instead of looping (narrow calendar_start/calendar_end or lower page_size)",
                self.repeat_pages
            ),
        )))
    }

    /// In a rebaseline, rows whose change key equals what the output already holds are not
    /// written again; they are marked seen so the final diff keeps them.
    async fn skip_unchanged(&mut self, page: &Page) -> Result<RecordBatch, PartitionError> {
        let known = match &mut self.baseline_known {
            Some(k) => k,
            None => self.baseline_known.insert(self.load_known().await?),
        };
        for id in &page.upserted_ids {
            if known.mark_seen(id) {
                self.unsaved_seen.push(known.fingerprinter().id(id));
            }
        }
        let known = &*known;
        let keep = crate::state::changed_rows(&page.batch, |id, change_key| {
            known.get(id).is_none_or(|k| k.deleted || k.change != Some(known.fingerprinter().change_key(change_key)))
        });
        match keep {
            Some(mask) => arrow::compute::filter_record_batch(&page.batch, &mask).map_err(|e| PartitionError::Batch(format!("filtering unchanged rows: {e}"))),
            None => Ok(page.batch.clone()),
        }
    }

    /// What the output held when the rebaseline started, with the keys of its seen log (a
    /// resumed round) marked seen.
    async fn load_known(&self) -> Result<KeyIndex, PartitionError> {
        let log = self.round.seen.as_ref();
        let fingerprinter = log.and_then(|l| Fingerprinter::from_salt_hex(&l.salt)).unwrap_or_default();
        let mut known = self.ctx.lake.key_index(&self.ctx.partition, fingerprinter).await?;
        for name in log.map(|l| l.files.as_slice()).unwrap_or_default() {
            let bytes = self.ctx.lake.get_round_file(&self.ctx.partition, name).await?;
            let fps = decode_fingerprints(&bytes).ok_or_else(|| {
                PartitionError::Batch(format!(
                    "round file {name} of {} is damaged (its length is not a multiple of 16); run `outlake reset` for this partition",
                    self.ctx.partition
                ))
            })?;
            for fp in fps {
                known.mark_seen_fingerprint(fp);
            }
        }
        Ok(known)
    }

    async fn finish_round(&mut self, delta: Cursor, fetched_from: Option<Cursor>) -> Result<(), PartitionError> {
        if self.round.kind.owes_deletes() {
            // Make this round's rows committed state first (resume point: the link of the last
            // page), then delete what the output held at the round's start and the round did
            // not return.
            self.commit(fetched_from, false).await?;
            let known = match self.baseline_known.take() {
                Some(k) => k,
                None => self.load_known().await?,
            };
            let started = self.round.started_seq;
            let gone = known.present_matching(|k| !k.seen && k.seq < started);
            let fingerprinter = known.fingerprinter().clone();
            drop(known);
            let deletes = DeleteRows {
                lake: &self.ctx.lake,
                source: &self.ctx.source,
                partition: &self.ctx.partition,
                seq: &self.committer.seq,
                run_id: &self.committer.run_id,
            };
            let n = deletes.write(&fingerprinter, gone, self.writer.as_mut()).await?;
            if n > 0 {
                self.pending.deletes += n;
                self.rows_since_commit += n;
                tracing::info!(partition = %self.ctx.partition, deletes = n, "rebaseline: items gone while the sync state was lost");
            }
        }
        self.commit(Some(delta), false).await?;
        // The round is complete: its seen log is no longer needed.
        self.remove_seen_log(self.round.seen.as_ref()).await;
        Ok(())
    }

    /// Commit the staged files at `cursor`. Without a cursor the partition needs a rebaseline
    /// (the round restarted after a 410, or a rebaseline's last page was its first).
    async fn commit(&mut self, cursor: Option<Cursor>, rebaselined: bool) -> Result<(), LakeError> {
        let files = self.writer.finish().await?;
        self.buffer_lease.hold_buffered(0);
        // A rebaseline mid-round records what it returned since the last commit (its seen log)
        // before the commit that names it.
        if matches!(cursor, Some(Cursor::Next(_)))
            && !self.unsaved_seen.is_empty()
            && let Some(log) = &mut self.round.seen
        {
            let name = self.ctx.lake.put_round_file(&self.ctx.partition, encode_fingerprints(&self.unsaved_seen)).await?;
            log.files.push(name);
            self.unsaved_seen.clear();
        }
        let state = if cursor.is_some() { PartitionState::Syncing } else { PartitionState::NeedsRebaseline };
        let rows = self.rows_since_commit;
        self.committer.commit(NewPosition { files, state, cursor, round: &self.round, rows, rebaselined }).await?;
        self.report.commits += 1;
        self.report.upserts += self.pending.upserts;
        self.report.deletes += self.pending.deletes;
        self.pending = Pending::default();
        self.pages_since_commit = 0;
        self.rows_since_commit = 0;
        self.last_commit = Instant::now();
        Ok(())
    }
}
