//! [`ObjectLake`]: the pipeline's [`Lake`] on object_store.
//!
//! Two roots: the **sink root** (staged files under `_staging/`, tables under `<table>/`) and the
//! **checkpoint root** (commit records; `<sink url>/_state` unless configured). Both may be on
//! different stores. Every operation is safe to repeat after a crash; see
//! [`parquet::commit`](crate::parquet::commit) for the protocol.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use outlake_pipeline::keys::{Fingerprinter, KeyIndex};
use outlake_pipeline::lake::{CommitRequest, IdFilter, Lake, StagedWriter, latest_per_id};
use outlake_pipeline::lease::{LeaseRecord, LeaseStore};
use outlake_pipeline::model::{Checkpoint, KeyState, PartitionKey, Stream, columns};

use crate::error::{CHECK_STORE, LakeError, storage};
use crate::lease;
use crate::parquet::writer::{ObjectStagedWriter, WriterSettings};
use crate::parquet::{commit, layout, reader};
use crate::store::{StoreRoot, build_store};

/// Files read concurrently by `current_keys`.
const READ_CONCURRENCY: usize = 8;

/// Files read at once when building a key index or streaming ids (bounds the rows in memory).
const KEY_READ_CONCURRENCY: usize = 2;

/// Rows of a messages partition are those of its folder (the table's files are per mailbox).
fn folder_filter(partition: &PartitionKey) -> Option<&str> {
    match partition.stream {
        Stream::Messages => partition.folder_id.as_deref(),
        _ => None,
    }
}

/// The object_store [`Lake`].
#[derive(Debug, Clone)]
pub struct ObjectLake {
    data: StoreRoot,
    state: StoreRoot,
    settings: WriterSettings,
}

/// Open the lake at `sink_url`, with commit records at `checkpoint_url` (default
/// `<sink_url>/_state`). `options` are object_store config keys applied to cloud stores on top
/// of the environment (see [`store`](crate::store)). Builds clients only; no request is made.
pub async fn open_lake(
    sink_url: &str,
    checkpoint_url: Option<&str>,
    options: &BTreeMap<String, String>,
    settings: WriterSettings,
) -> Result<ObjectLake, LakeError> {
    let data = build_store(sink_url, options)?;
    let state = match checkpoint_url {
        Some(url) => build_store(url, options)?,
        None => data.child(layout::DEFAULT_STATE_DIR),
    };
    Ok(ObjectLake { data, state, settings })
}

impl ObjectLake {
    /// A lake over an existing store (tests, wrappers). Commit records go to `checkpoints`, or
    /// to `_state/` in `store` when `None`.
    pub fn from_store(store: Arc<dyn ObjectStore>, checkpoints: Option<Arc<dyn ObjectStore>>, settings: WriterSettings) -> ObjectLake {
        let data = StoreRoot::new(store.clone(), store.to_string());
        let state = match checkpoints {
            Some(c) => StoreRoot::new(c.clone(), c.to_string()),
            None => data.child(layout::DEFAULT_STATE_DIR),
        };
        ObjectLake { data, state, settings }
    }

    /// The sink root (staged and table files).
    pub fn data_root(&self) -> &StoreRoot {
        &self.data
    }

    /// The checkpoint root (commit records).
    pub fn checkpoint_root(&self) -> &StoreRoot {
        &self.state
    }

    /// [`Lake::vacuum`] as if the time were `now` (for tests and tools that need a fixed clock).
    pub async fn vacuum_at(&self, min_age: Duration, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<String>, LakeError> {
        crate::vacuum::vacuum_at(&self.data, &self.state, min_age, now).await
    }

    pub fn settings(&self) -> &WriterSettings {
        &self.settings
    }

    /// Committed table files of one partition, with their sizes.
    async fn partition_files(&self, partition: &PartitionKey) -> Result<Vec<(Path, u64)>, LakeError> {
        Ok(self
            .table_files(partition.stream, &partition.mailbox_id)
            .await?
            .into_iter()
            .filter(|(p, _)| layout::is_table_file_of(partition, p.as_ref()))
            .collect())
    }

    /// Committed table files of one mailbox in a table, with their sizes.
    pub async fn table_files(&self, stream: Stream, mailbox_id: &str) -> Result<Vec<(Path, u64)>, LakeError> {
        let dir = Path::from(layout::table_dir(stream, mailbox_id));
        let metas: Vec<_> =
            self.data.store.list(Some(&dir)).try_collect().await.map_err(|e| storage("list table files in", &self.data.url_of(&dir), &e, CHECK_STORE))?;
        let mut files: Vec<_> = metas.into_iter().filter(|m| m.location.extension() == Some(layout::PARQUET_EXT)).map(|m| (m.location, m.size)).collect();
        files.sort();
        Ok(files)
    }
}

#[async_trait]
impl LeaseStore for ObjectLake {
    async fn latest_lease(&self, mailbox_id: &str) -> Result<Option<LeaseRecord>, LakeError> {
        lease::latest(&self.state, mailbox_id).await
    }
    async fn put_lease(&self, record: &LeaseRecord) -> Result<bool, LakeError> {
        lease::put(&self.state, record).await
    }
    async fn lease_exists(&self, mailbox_id: &str, generation: u64) -> Result<bool, LakeError> {
        lease::exists(&self.state, mailbox_id, generation).await
    }
    async fn prune_leases(&self, mailbox_id: &str, below: u64) -> Result<(), LakeError> {
        lease::prune(&self.state, mailbox_id, below).await
    }
    async fn list_leases(&self) -> Result<Vec<LeaseRecord>, LakeError> {
        lease::list(&self.state).await
    }
}

#[async_trait]
impl Lake for ObjectLake {
    fn leases(&self) -> Option<Arc<dyn LeaseStore>> {
        Some(Arc::new(self.clone()))
    }

    async fn load(&self, partition: &PartitionKey) -> Result<Option<Checkpoint>, LakeError> {
        commit::load(&self.data, &self.state, partition).await
    }

    async fn list(&self, mailbox_id: Option<&str>) -> Result<Vec<Checkpoint>, LakeError> {
        commit::list_latest(&self.state, mailbox_id).await
    }

    fn writer(&self, partition: &PartitionKey) -> Box<dyn StagedWriter> {
        Box::new(ObjectStagedWriter::new(self.data.clone(), partition.clone(), self.settings.clone()))
    }

    async fn commit(&self, request: CommitRequest) -> Result<Checkpoint, LakeError> {
        commit::commit(&self.data, &self.state, request).await
    }

    async fn current_keys(&self, partition: &PartitionKey) -> Result<HashMap<String, KeyState>, LakeError> {
        let files = self.partition_files(partition).await?;
        let folder = folder_filter(partition);
        let reads: Vec<_> = files.iter().map(|(path, size)| reader::read_key_rows(&self.data, path, *size, &partition.mailbox_id, folder)).collect();
        let chunks: Vec<_> = futures::stream::iter(reads).buffer_unordered(READ_CONCURRENCY).try_collect().await?;
        Ok(latest_per_id(chunks.into_iter().flatten()))
    }

    /// File by file, a few at a time: memory is the index plus the key columns of the files
    /// being read, not the partition's history.
    async fn key_index(&self, partition: &PartitionKey, fingerprinter: Fingerprinter) -> Result<KeyIndex, LakeError> {
        // Room for every committed row up front (the latest commit counts them), so that the
        // index never holds two copies of itself while it grows; files are read one record batch
        // at a time, so the rows being read take a batch's worth of memory, not a file's.
        let rows = commit::load(&self.data, &self.state, partition).await?.map_or(0, |c| c.total_rows);
        let mut index = KeyIndex::with_capacity(fingerprinter, usize::try_from(rows).unwrap_or(0));
        for (path, size) in self.partition_files(partition).await? {
            reader::for_each_key_rows(&self.data, &path, size, &partition.mailbox_id, folder_filter(partition), |chunk| {
                for r in chunk {
                    index.observe(&r.id, r.seq, r.op == columns::OP_DELETE, r.change_key.as_deref());
                }
            })
            .await?;
        }
        Ok(index.seal())
    }

    fn select_ids<'a>(&'a self, partition: &'a PartitionKey, pick: IdFilter) -> BoxStream<'a, Result<Vec<String>, LakeError>> {
        let listed = async move { self.partition_files(partition).await };
        futures::stream::once(listed)
            .map_ok(move |files| {
                let pick = pick.clone();
                futures::stream::iter(files)
                    .map(move |(path, size)| {
                        let pick = pick.clone();
                        async move {
                            // Only the picked ids of each record batch are kept.
                            let mut picked = Vec::new();
                            reader::for_each_key_rows(&self.data, &path, size, &partition.mailbox_id, folder_filter(partition), |chunk| {
                                picked.extend(chunk.into_iter().map(|r| r.id).filter(|id| pick(id)))
                            })
                            .await?;
                            Ok::<_, LakeError>(picked)
                        }
                    })
                    .buffered(KEY_READ_CONCURRENCY)
            })
            .try_flatten()
            .boxed()
    }

    async fn put_round_file(&self, partition: &PartitionKey, bytes: Vec<u8>) -> Result<String, LakeError> {
        let name = format!("seen-{}.bin", uuid::Uuid::now_v7());
        let path = layout::round_file_path(partition, &name).expect("a generated name is plain");
        self.state
            .store
            .put(&path, object_store::PutPayload::from(bytes))
            .await
            .map_err(|e| storage("write round file", &self.state.url_of(&path), &e, CHECK_STORE))?;
        Ok(name)
    }

    async fn get_round_file(&self, partition: &PartitionKey, name: &str) -> Result<Vec<u8>, LakeError> {
        let Some(path) = layout::round_file_path(partition, name) else {
            return Err(crate::error::corrupt(
                &self.state.url,
                format!("a commit record of {partition} names round file {name:?}, which is not a plain file name; the record was edited by hand"),
            ));
        };
        let url = self.state.url_of(&path);
        let got = async { self.state.store.get(&path).await?.bytes().await }.await;
        match got {
            Ok(b) => Ok(b.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(crate::error::corrupt(
                &url,
                format!(
                    "{url}, named by the latest commit record of {partition}, is missing; run `outlake reset` for this partition to re-baseline it from the start"
                ),
            )),
            Err(e) => Err(storage("read round file", &url, &e, CHECK_STORE)),
        }
    }

    async fn delete_round_files(&self, partition: &PartitionKey, names: &[String]) -> Result<(), LakeError> {
        for name in names {
            let Some(path) = layout::round_file_path(partition, name) else { continue };
            match self.state.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage("remove round file", &self.state.url_of(&path), &e, CHECK_STORE)),
            }
        }
        Ok(())
    }

    async fn vacuum(&self, min_age: Duration) -> Result<Vec<String>, LakeError> {
        crate::vacuum::vacuum(&self.data, &self.state, min_age).await
    }
}
