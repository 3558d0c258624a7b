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
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use outlake_pipeline::lake::{CommitRequest, Lake, StagedWriter, latest_per_id};
use outlake_pipeline::model::{Checkpoint, KeyState, PartitionKey, Stream};

use crate::error::{CHECK_STORE, LakeError, storage};
use crate::parquet::writer::{ObjectStagedWriter, WriterSettings};
use crate::parquet::{commit, layout, reader};
use crate::store::{StoreRoot, build_store};

/// Files read concurrently by `current_keys`.
const READ_CONCURRENCY: usize = 8;

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
impl Lake for ObjectLake {
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
        let files: Vec<_> = self
            .table_files(partition.stream, &partition.mailbox_id)
            .await?
            .into_iter()
            .filter(|(p, _)| layout::is_table_file_of(partition, p.as_ref()))
            .collect();
        let folder = match partition.stream {
            Stream::Messages => partition.folder_id.as_deref(),
            _ => None,
        };
        let reads: Vec<_> = files.iter().map(|(path, size)| reader::read_key_rows(&self.data, path, *size, &partition.mailbox_id, folder)).collect();
        let chunks: Vec<_> = futures::stream::iter(reads).buffer_unordered(READ_CONCURRENCY).try_collect().await?;
        Ok(latest_per_id(chunks.into_iter().flatten()))
    }

    async fn vacuum(&self, min_age: Duration) -> Result<Vec<String>, LakeError> {
        crate::vacuum::vacuum(&self.data, &self.state, min_age).await
    }
}
