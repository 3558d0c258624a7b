//! The calendars of one mailbox and their events.
//!
//! Contract:
//! - `calendars` is a listing partition (`Stream::Calendars`, no cursor): every run lists the
//!   mailbox's calendars whole (Graph has no delta for them) and compares the listing with what
//!   the output holds. New calendars, calendars whose change key changed and calendars that
//!   came back get an upsert row; calendars that disappeared get a delete row; all in one
//!   commit. Nothing changed: no commit.
//! - Then every events partition is planned ([`plan_children`]) like the messages of a folder:
//!   one per calendar that `source.calendars` selects; a calendar that left the selection is
//!   parked and one that disappeared is retired (a delete row for every event the output holds
//!   for it); the single events partition of a lake written before events were partitioned per
//!   calendar is retired the same way, so its rows (without `calendar_id`) are superseded by
//!   delete rows and the per-calendar partitions take over.
//! - The calendar window is part of an events round's scope: when the window in force differs
//!   from the one a partition's round was created with (it rolled into a new period, or the
//!   config changed), the partition re-baselines with the new window and owes deletes — events
//!   that left the window get delete rows, events that entered it arrive.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};

use crate::model::{KeyState, Mailbox, PartitionKey, PartitionState, RoundKind, Stream};
use crate::plan::plan_children;
use crate::source::{CalendarInfo, CalendarListing};

use super::commit::NewPosition;
use super::error::PartitionError;
use super::partition::PartitionOutcome;
use super::report::StreamReport;
use super::{Fatal, MailboxRun, Runner};

impl Runner {
    /// The calendars listing, then the events of every selected calendar.
    pub(super) async fn run_calendars_and_events(self: Arc<Self>, mb: &Mailbox, run: &mut MailboxRun, events: bool) -> Result<(), Fatal> {
        let part = PartitionKey::new(&mb.id, Stream::Calendars, None);
        let (outcome, listing) = self.clone().sync_calendar_listing(mb, &part).await;
        let failed = run.absorb(&part, outcome)?;
        let Some(calendars) = listing.filter(|_| !failed && events) else { return Ok(()) };
        if run.stopped_before_stage(&self.stop) {
            return Ok(());
        }
        self.run_events(mb, run, &calendars).await
    }

    /// List the calendars and commit what changed (module contract).
    async fn sync_calendar_listing(self: Arc<Self>, mb: &Mailbox, part: &PartitionKey) -> (PartitionOutcome, Option<Vec<CalendarInfo>>) {
        let t0 = std::time::Instant::now();
        let mut report = StreamReport::default();
        let result: Result<Vec<CalendarInfo>, PartitionError> = async {
            let previous = self.lake.load(part).await?;
            let CalendarListing { calendars, batch } = self.source.calendars(mb, &self.seq, &self.settings.run_id).await.map_err(PartitionError::Source)?;
            let held = self.lake.current_keys(part).await?;
            let (changed, gone) = listing_changes(&calendars, &held);
            let upserts =
                arrow::compute::filter_record_batch(&batch, &BooleanArray::from(changed.clone())).map_err(|e| PartitionError::Batch(e.to_string()))?;
            let gone_ids: Vec<String> = gone.into_iter().collect();
            let rows = (upserts.num_rows() + gone_ids.len()) as u64;
            if rows == 0 && previous.is_some() {
                return Ok(calendars);
            }
            let mut writer = self.lake.writer(part);
            if upserts.num_rows() > 0 {
                writer.write(&upserts).await?;
            }
            if !gone_ids.is_empty() {
                let deletes: RecordBatch = self.source.delete_rows(part, &gone_ids, &self.seq, &self.settings.run_id);
                writer.write(&deletes).await?;
            }
            let files = writer.finish().await?;
            let kind = if previous.is_none() { RoundKind::Baseline } else { RoundKind::Incremental };
            let round = self.new_round(part, kind);
            let mut committer = self.committer(part, previous);
            committer.commit(NewPosition { files, state: PartitionState::Syncing, cursor: None, round: &round, rows, rebaselined: false }).await?;
            // Counted once committed.
            report.upserts = upserts.num_rows() as u64;
            report.deletes = gone_ids.len() as u64;
            report.commits = 1;
            tracing::debug!(partition = %part, upserts = report.upserts, deletes = report.deletes, "calendars listed");
            Ok(calendars)
        }
        .await;
        report.duration_ms = t0.elapsed().as_millis() as u64;
        match result {
            Ok(calendars) => (PartitionOutcome { report, error: None, interrupted: false }, Some(calendars)),
            Err(e) => {
                tracing::warn!(partition = %part, kind = e.kind().as_str(), error = %e, "listing calendars failed");
                (PartitionOutcome { report, error: Some(e), interrupted: false }, None)
            }
        }
    }

    /// Plan and carry out the events partitions of the listed calendars.
    async fn run_events(self: Arc<Self>, mb: &Mailbox, run: &mut MailboxRun, calendars: &[CalendarInfo]) -> Result<(), Fatal> {
        let existing = match self.lake.list(Some(&mb.id)).await {
            Ok(c) => c,
            Err(e) => {
                run.errors.push(format!("events: listing checkpoints failed: {e}"));
                return Ok(());
            }
        };
        let present: HashSet<String> = calendars.iter().map(|c| c.id.clone()).collect();
        let selected = self.settings.calendars.select(mb, calendars);
        let excluded = calendars.len() - selected.len();
        run.streams.entry(Stream::Events.as_str().to_string()).or_default().calendars_excluded += excluded as u64;
        let plan = plan_children(&mb.id, Stream::Events, &existing, &present, &selected, &self.configured_scope(Stream::Events));
        self.carry_out(mb, plan, run).await
    }
}

/// Which listed calendars need an upsert row (new, changed, or back after a delete), as a mask
/// over the listing, and the ids the output holds that the listing no longer shows.
fn listing_changes(calendars: &[CalendarInfo], held: &HashMap<String, KeyState>) -> (Vec<bool>, Vec<String>) {
    let changed = calendars
        .iter()
        .map(|c| match held.get(&c.id) {
            None => true,
            Some(k) => k.deleted || k.change_key.is_none() || k.change_key != c.change_key,
        })
        .collect();
    let listed: HashSet<&str> = calendars.iter().map(|c| c.id.as_str()).collect();
    let mut gone: Vec<String> = held.iter().filter(|(id, k)| !k.deleted && !listed.contains(id.as_str())).map(|(id, _)| id.clone()).collect();
    gone.sort();
    (changed, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, ck: &str) -> CalendarInfo {
        CalendarInfo { id: id.into(), name: id.into(), owner_address: None, is_default: false, change_key: Some(ck.into()) }
    }
    fn held(ck: &str, deleted: bool) -> KeyState {
        KeyState { seq: 1, deleted, change_key: Some(ck.into()), parent_folder_id: None, display_name: None, item_count: None }
    }

    #[test]
    fn only_new_changed_returning_and_gone_calendars_are_written() {
        let listing = vec![info("same", "k1"), info("changed", "k2"), info("new", "k1"), info("back", "k1")];
        let output = HashMap::from([
            ("same".to_string(), held("k1", false)),
            ("changed".to_string(), held("k1", false)),
            ("back".to_string(), held("k1", true)),
            ("gone".to_string(), held("k1", false)),
            ("gone-before".to_string(), held("k1", true)),
        ]);
        let (changed, gone) = listing_changes(&listing, &output);
        assert_eq!(changed, vec![false, true, true, true]);
        assert_eq!(gone, vec!["gone".to_string()]);
    }
}
