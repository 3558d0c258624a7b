//! The commit stage of a partition: one commit record per position (through [`Lake::commit`]),
//! carrying the state, the round, the cursor and the `_seq` high-water mark. Each commit first
//! checks that the worker still holds the mailbox's lease ([`MailboxLease::check`]).
//!
//! [`Lake::commit`]: crate::lake::Lake::commit

use std::sync::Arc;

use crate::lake::{CommitRequest, DynLake, LakeError};
use crate::lease::MailboxLease;
use crate::model::{Checkpoint, Cursor, PartitionKey, PartitionState, RoundInfo, StagedFile};
use crate::progress::{Progress, ProgressEvent};
use crate::seq::SeqGen;

/// What a partition commits with, and the commit it follows.
pub(super) struct Committer {
    pub lake: DynLake,
    pub partition: PartitionKey,
    /// The partition's latest commit (`None` before its first).
    pub previous: Option<Checkpoint>,
    pub run_id: String,
    pub seq: Arc<SeqGen>,
    pub progress: Progress,
    /// The mailbox's lease, checked before every commit: a worker that lost it never commits.
    pub lease: Option<Arc<MailboxLease>>,
}

/// One new position.
pub(super) struct NewPosition<'a> {
    pub files: Vec<StagedFile>,
    pub state: PartitionState,
    pub cursor: Option<Cursor>,
    pub round: &'a RoundInfo,
    pub rows: u64,
    pub rebaselined: bool,
}

impl Committer {
    pub async fn commit(&mut self, pos: NewPosition<'_>) -> Result<(), LakeError> {
        let rows = pos.rows;
        if let Some(lease) = &self.lease {
            lease.check().await?;
        }
        let cp = self
            .lake
            .commit(CommitRequest {
                partition: self.partition.clone(),
                previous: self.previous.clone(),
                files: pos.files,
                state: pos.state,
                cursor: pos.cursor,
                round: pos.round.clone(),
                // Every row staged so far got its `_seq` before this call.
                high_water_seq: self.seq.high_water(),
                run_id: self.run_id.clone(),
                rows,
                rebaselined: pos.rebaselined,
            })
            .await?;
        self.previous = Some(cp);
        self.progress.emit(ProgressEvent::Committed { mailbox_id: self.partition.mailbox_id.clone(), stream: self.partition.stream, rows });
        Ok(())
    }
}
