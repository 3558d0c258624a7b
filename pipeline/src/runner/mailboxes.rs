//! The `mailboxes` table: one row per synced mailbox (key `mailbox_id`) saying who it is —
//! `user_principal_name`, `mail`, `display_name`, `account_enabled` — so that rows keyed by
//! user id can be joined to people.
//!
//! Contract: a listing partition per mailbox (`Stream::Mailboxes`, no cursor). Each run builds
//! the mailbox's row from what the mailbox listing returned and compares its `change_key` (a
//! fingerprint of the fields) with the row the output holds; a new or changed row is written
//! and committed, an unchanged one costs no write. A mailbox that leaves the directory keeps
//! its last row (the table says who a mailbox was).

use std::sync::Arc;

use arrow::array::{Array, AsArray};

use crate::model::{Mailbox, PartitionKey, PartitionState, RoundKind, Stream, columns};

use super::commit::NewPosition;
use super::error::PartitionError;
use super::partition::PartitionOutcome;
use super::report::StreamReport;
use super::{Fatal, MailboxRun, Runner};

impl Runner {
    /// Write the mailbox's row when it is new or changed.
    pub(super) async fn sync_mailbox_row(self: &Arc<Self>, mb: &Mailbox, run: &mut MailboxRun) -> Result<(), Fatal> {
        let part = PartitionKey::new(&mb.id, Stream::Mailboxes, None);
        let mut report = StreamReport::default();
        let result: Result<(), PartitionError> = async {
            let row = self.source.mailbox_row(mb, &self.seq, &self.settings.run_id);
            let change_key =
                row.column_by_name(columns::CHANGE_KEY).and_then(|c| c.as_string_opt::<i32>()).filter(|c| c.is_valid(0)).map(|c| c.value(0).to_string());
            let held = self.lake.current_keys(&part).await?;
            if held.get(&mb.id).is_some_and(|k| !k.deleted && k.change_key.is_some() && k.change_key == change_key) {
                return Ok(());
            }
            let previous = self.lake.load(&part).await?;
            let mut writer = self.lake.writer(&part);
            writer.write(&row).await?;
            let files = writer.finish().await?;
            let kind = if previous.is_none() { RoundKind::Baseline } else { RoundKind::Incremental };
            let round = self.new_round(&part, kind);
            let mut committer = self.committer(&part, previous);
            committer.commit(NewPosition { files, state: PartitionState::Syncing, cursor: None, round: &round, rows: 1, rebaselined: false }).await?;
            report.upserts = 1;
            report.commits = 1;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            tracing::warn!(partition = %part, kind = e.kind().as_str(), error = %e, "writing the mailbox's row failed");
        }
        run.absorb(&part, PartitionOutcome { report, error: result.err(), interrupted: false })?;
        Ok(())
    }
}
