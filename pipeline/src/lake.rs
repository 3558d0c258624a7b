//! The `Lake` trait: staged data files, atomic commits that carry the cursor, read-back of the
//! current state. The object_store implementation lives in the `sinks` crate.
//!
//! Contract:
//! - [`Lake::stage`] writes batches to files no table reader can see.
//! - [`Lake::commit`] makes them part of their table together with the partition's new position,
//!   atomically: either the commit record exists (and the files are, or will be rolled forward
//!   to be, visible) or nothing happened. It fails with [`LakeErrorKind::Conflict`] when another
//!   writer committed the same position first.
//! - [`Lake::current_keys`] reads back committed rows of one partition, latest `_seq` per id.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use futures::stream::BoxStream;

use crate::keys::{Fingerprinter, KeyIndex};
use crate::model::{Checkpoint, Cursor, KeyState, PartitionKey, PartitionState, RoundInfo, StagedFile};

/// Which ids [`Lake::select_ids`] returns.
pub type IdFilter = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LakeErrorKind {
    /// Another writer committed this partition's next position first.
    Conflict,
    /// A commit record could not be understood (unknown version, corrupt JSON).
    Corrupt,
    /// Storage failed (I/O, network, permissions).
    Storage,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LakeError {
    pub kind: LakeErrorKind,
    /// The object path involved, relative to its store's root URL, or the full URL.
    pub path: Option<String>,
    pub message: String,
}

impl LakeError {
    pub fn new(kind: LakeErrorKind, path: Option<String>, message: impl Into<String>) -> Self {
        LakeError { kind, path, message: message.into() }
    }
}

/// One partition's staged output in progress: batches go in, files come out on `finish`.
#[async_trait]
pub trait StagedWriter: Send {
    /// Append rows. The writer rolls to a new file at its target size.
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError>;
    /// Bytes of encoded output held in memory (the open file's row group in progress and the
    /// part of the file not yet handed to storage).
    fn buffered_bytes(&self) -> u64 {
        0
    }
    /// Write the open file out to storage now (it stays staged, and is returned by the next
    /// `finish`), freeing its buffers.
    async fn roll(&mut self) -> Result<(), LakeError> {
        Ok(())
    }
    /// Close the current file(s) and return them, staged, for the next commit.
    async fn finish(&mut self) -> Result<Vec<StagedFile>, LakeError>;
}

/// A new position for a partition.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub partition: PartitionKey,
    /// The commit this one follows (`None` for the partition's first commit).
    pub previous: Option<Checkpoint>,
    pub files: Vec<StagedFile>,
    /// The partition's state after this commit.
    pub state: PartitionState,
    pub cursor: Option<Cursor>,
    pub round: RoundInfo,
    /// The largest `_seq` handed out so far ([`Checkpoint::high_water_seq`]); the sink keeps
    /// the larger of this and the previous commit's.
    pub high_water_seq: i64,
    pub run_id: String,
    pub rows: u64,
    pub rebaselined: bool,
}

#[async_trait]
pub trait Lake: Send + Sync + 'static {
    /// The latest commit of a partition, with its files published (rolled forward if a crash
    /// interrupted the publish).
    async fn load(&self, partition: &PartitionKey) -> Result<Option<Checkpoint>, LakeError>;

    /// Every partition's latest commit, optionally for one mailbox.
    async fn list(&self, mailbox_id: Option<&str>) -> Result<Vec<Checkpoint>, LakeError>;

    /// A writer that stages files for a partition.
    fn writer(&self, partition: &PartitionKey) -> Box<dyn StagedWriter>;

    /// Atomically record files + cursor, then publish the files into their table.
    async fn commit(&self, request: CommitRequest) -> Result<Checkpoint, LakeError>;

    /// Committed state of one partition: per id, the row with the largest `_seq`.
    /// For `messages` only rows whose `parent_folder_id` is the partition's folder count.
    async fn current_keys(&self, partition: &PartitionKey) -> Result<HashMap<String, KeyState>, LakeError>;

    /// The partition's committed keys as a compact, sealed [`KeyIndex`], fingerprinted with
    /// `fingerprinter`. Implementations should read file by file so that memory is the index, not
    /// the rows; the default goes through [`Lake::current_keys`].
    async fn key_index(&self, partition: &PartitionKey, fingerprinter: Fingerprinter) -> Result<KeyIndex, LakeError> {
        let keys = self.current_keys(partition).await?;
        let mut index = KeyIndex::with_capacity(fingerprinter, keys.len());
        for (id, k) in keys {
            index.observe(&id, k.seq, k.deleted, k.change_key.as_deref());
        }
        Ok(index.seal())
    }

    /// The ids of the partition's committed rows that `pick` selects, a chunk at a time (an id
    /// may come more than once: callers de-duplicate). The default goes through
    /// [`Lake::current_keys`].
    fn select_ids<'a>(&'a self, partition: &'a PartitionKey, pick: IdFilter) -> BoxStream<'a, Result<Vec<String>, LakeError>> {
        Box::pin(futures::stream::once(async move {
            let mut ids: Vec<String> = self.current_keys(partition).await?.into_keys().filter(|id| pick(id)).collect();
            ids.sort();
            Ok(ids)
        }))
    }

    /// Store a file of a round's own bookkeeping (a rebaseline's seen log) beside the
    /// partition's commit records; returns the name a commit record can refer to it by.
    async fn put_round_file(&self, partition: &PartitionKey, bytes: Vec<u8>) -> Result<String, LakeError>;

    /// Read a file stored by [`Lake::put_round_file`].
    async fn get_round_file(&self, partition: &PartitionKey, name: &str) -> Result<Vec<u8>, LakeError>;

    /// Remove files of a finished round (missing ones are not an error).
    async fn delete_round_files(&self, partition: &PartitionKey, names: &[String]) -> Result<(), LakeError>;

    /// Remove staged files that no commit references and that are older than `min_age`.
    /// Returns the paths removed.
    async fn vacuum(&self, min_age: std::time::Duration) -> Result<Vec<String>, LakeError>;

    /// Where this lake keeps mailbox leases ([`crate::lease`]); `None` when it has none (then
    /// nothing is leased, and overlapping runs are kept apart only by the commit records).
    fn leases(&self) -> Option<std::sync::Arc<dyn crate::lease::LeaseStore>> {
        None
    }
}

/// One row read back from a table (used by `current_keys` implementations and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub parent_folder_id: Option<String>,
    pub seq: i64,
    pub op: String,
    pub change_key: Option<String>,
    pub display_name: Option<String>,
    pub item_count: Option<i64>,
}

pub fn latest_per_id(rows: impl IntoIterator<Item = KeyRow>) -> HashMap<String, KeyState> {
    let mut out: HashMap<String, KeyState> = HashMap::new();
    for r in rows {
        let newer = out.get(&r.id).is_none_or(|k| k.seq < r.seq);
        if newer {
            out.insert(
                r.id,
                KeyState {
                    seq: r.seq,
                    deleted: r.op == "delete",
                    change_key: r.change_key,
                    parent_folder_id: r.parent_folder_id,
                    display_name: r.display_name,
                    item_count: r.item_count,
                },
            );
        }
    }
    out
}

pub type DynLake = std::sync::Arc<dyn Lake>;

/// Batches that a `StagedWriter` implementation might want to hold; re-exported for sinks.
pub type Batch = RecordBatch;
