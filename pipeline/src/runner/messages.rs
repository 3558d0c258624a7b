//! The messages stream of one mailbox: read the folder tree back, apply the folder scope,
//! plan every folder's partition ([`plan_children`]), report the expected items of the
//! baselines, then carry out the plan — parks and retirements first, then the rounds, up to
//! `max_concurrent_per_mailbox` at once.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::{Mailbox, PartitionKey, Stream};
use crate::plan::{Action, plan_children};
use crate::progress::ProgressEvent;
use crate::scope::FolderNode;

use super::{Fatal, MailboxRun, Runner};

impl Runner {
    pub(super) async fn run_messages(self: Arc<Self>, mb: &Mailbox, run: &mut MailboxRun) -> Result<(), Fatal> {
        let folders_part = PartitionKey::new(&mb.id, Stream::MailFolders, None);
        let folders = match self.lake.current_keys(&folders_part).await {
            Ok(k) => k,
            Err(e) => {
                run.errors.push(format!("messages: reading the folder list back failed: {e}"));
                return Ok(());
            }
        };
        let present: HashSet<String> = folders.iter().filter(|(_, s)| !s.deleted).map(|(id, _)| id.clone()).collect();
        let existing = match self.lake.list(Some(&mb.id)).await {
            Ok(c) => c,
            Err(e) => {
                run.errors.push(format!("messages: listing checkpoints failed: {e}"));
                return Ok(());
            }
        };
        let mut selected: Vec<String> = present.iter().cloned().collect();
        selected.sort();
        let scope = &self.settings.folders;
        if !scope.is_everything() {
            let well_known = match scope.resolve_well_known(self.source.as_ref(), mb).await {
                Ok(ids) => ids,
                Err(e) if e.kind.stops_run() => return Err(Fatal(e)),
                Err(e) => {
                    run.errors.push(format!("messages: resolving well-known folder names failed: {e}"));
                    return Ok(());
                }
            };
            let selection = scope.select(&FolderNode::from_keys(&folders), &well_known);
            for p in &selection.unmatched {
                tracing::warn!(mailbox = %mb.label(), pattern = %p, "a folder pattern names no folder of this mailbox (check include_folders / exclude_folders)");
            }
            run.streams.entry(Stream::Messages.as_str().to_string()).or_default().folders_excluded += selection.excluded.len() as u64;
            selected = selection.selected;
        }

        let plan = plan_children(&mb.id, Stream::Messages, &existing, &present, &selected, &self.configured_scope(Stream::Messages));
        // A baseline's first response is about as large as its folder (up to a page): the fetch
        // reserves that much instead of a guess (`crate::budget`).
        for p in plan.iter().filter(|p| matches!(p.action, Action::Baseline | Action::Rebaseline(_))) {
            if let Some(items) = p.partition.folder_id.as_ref().and_then(|f| folders.get(f)).and_then(|k| k.item_count) {
                self.budget.expect_items(&p.partition, items.max(0) as u64);
            }
        }
        if !scope.is_everything() {
            // Progress: the items of selected folders about to be baselined (never synced, or
            // parked and now back in scope).
            let items: u64 = plan
                .iter()
                .filter(|p| matches!(p.action, Action::Baseline | Action::Rebaseline(crate::plan::RebaselineReason::BackInScope)))
                .filter_map(|p| p.partition.folder_id.as_ref().and_then(|f| folders.get(f)).and_then(|k| k.item_count))
                .map(|n| n.max(0) as u64)
                .sum();
            if items > 0 {
                self.progress.emit(ProgressEvent::MailboxExpected { mailbox_id: mb.id.clone(), items });
            }
        }

        self.carry_out(mb, plan, run).await
    }
}
