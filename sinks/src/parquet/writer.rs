//! The staged Parquet writer: batches in, staged files out.
//!
//! Layering as in iceberg-rust: a format writer (`AsyncArrowWriter` over object_store's
//! `BufWriter`, which switches to a multipart upload once a file outgrows its buffer) inside a
//! rolling writer (a new file once the current one reaches `target_file_bytes`, or when the
//! batch schema changes), with names from [`layout`](super::layout). `finish` closes the open
//! file and returns every file written since the last `finish` as [`StagedFile`]s; nothing is
//! committed here. Files are zstd-compressed, with page-level statistics.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use outlake_pipeline::lake::StagedWriter;
use outlake_pipeline::model::{PartitionKey, StagedFile};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use uuid::Uuid;

use super::layout;
use crate::error::{CHECK_STORE, LakeError, storage};
use crate::store::StoreRoot;

/// How staged files are cut and encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSettings {
    /// Maximum rows per row group.
    pub row_group_rows: usize,
    /// A file is closed and a new one started once it reaches this many bytes (approximate:
    /// checked after each batch, counting the encoded row group in progress).
    pub target_file_bytes: u64,
    /// zstd level, 1..=22.
    pub zstd_level: i32,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings { row_group_rows: 128 * 1024, target_file_bytes: 128 * 1024 * 1024, zstd_level: 3 }
    }
}

/// What `BufWriter` buffers before it switches to a multipart upload (object_store's default).
const UPLOAD_BUFFER_BYTES: usize = 10 * 1024 * 1024;

/// Target size of a data page before encoding.
const DATA_PAGE_BYTES: usize = 128 * 1024;

/// Columns of the three tables whose values are (nearly) unique per row.
const UNIQUE_COLUMNS: &[&str] =
    &["id", "_seq", "body_preview", "body_content", "change_key", "conversation_id", "internet_message_id", "web_link", "i_cal_uid", "online_meeting_join_url"];

impl WriterSettings {
    pub(crate) fn properties(&self, partition: &PartitionKey) -> WriterProperties {
        // An out-of-range level falls back to zstd's default rather than failing every write.
        let level = ZstdLevel::try_new(self.zstd_level).unwrap_or_default();
        let mut builder = WriterProperties::builder();
        // Columns whose values are (nearly) all distinct: a dictionary only grows to its size
        // limit, gets compressed, and is abandoned. Plain encoding writes them ~1.1× faster and
        // the files come out slightly smaller (benches/README.md, write bench).
        for column in UNIQUE_COLUMNS {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
        }
        builder
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            // A column's open page is buffered unencoded; with dozens of files open at once
            // (one per partition), 1 MiB pages (the default) made the peak RSS grow with the
            // partition size. Pages of 128 KiB bound that part (benches/README.md).
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .set_key_value_metadata(Some(vec![KeyValue::new("outlake.partition".to_string(), partition.slug())]))
            .build()
    }
}

struct OpenFile {
    id: Uuid,
    schema: SchemaRef,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

/// [`StagedWriter`] over an object store; made by [`ObjectLake::writer`](crate::ObjectLake).
pub struct ObjectStagedWriter {
    data: StoreRoot,
    partition: PartitionKey,
    settings: WriterSettings,
    open: Option<OpenFile>,
    done: Vec<StagedFile>,
}

impl ObjectStagedWriter {
    pub fn new(data: StoreRoot, partition: PartitionKey, settings: WriterSettings) -> Self {
        ObjectStagedWriter { data, partition, settings, open: None, done: Vec::new() }
    }

    fn start(&self, schema: SchemaRef) -> Result<OpenFile, LakeError> {
        let id = layout::new_file_id();
        let path = Path::from(layout::staging_path(id));
        let sink = BufWriter::with_capacity(self.data.store.clone(), path.clone(), UPLOAD_BUFFER_BYTES);
        let writer = AsyncArrowWriter::try_new(sink, schema.clone(), Some(self.settings.properties(&self.partition))).map_err(|e| {
            storage("start staged file", &self.data.url_of(&path), &e, "the batch schema cannot be written as Parquet; this is a bug in the table schema")
        })?;
        Ok(OpenFile { id, schema, writer, rows: 0 })
    }

    async fn close_open(&mut self) -> Result<(), LakeError> {
        let Some(mut f) = self.open.take() else { return Ok(()) };
        let staging = layout::staging_path(f.id);
        let url = self.data.url_of(&Path::from(staging.clone()));
        f.writer.finish().await.map_err(|e| storage("finish staged file", &url, &e, CHECK_STORE))?;
        self.done.push(StagedFile {
            staging_path: staging,
            table_path: layout::table_path(&self.partition, f.id),
            rows: f.rows,
            bytes: f.writer.bytes_written() as u64,
        });
        Ok(())
    }
}

#[async_trait]
impl StagedWriter for ObjectStagedWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.as_ref().is_some_and(|f| f.schema != batch.schema()) {
            self.close_open().await?;
        }
        if self.open.is_none() {
            self.open = Some(self.start(batch.schema())?);
        }
        let f = self.open.as_mut().expect("opened above");
        let url = self.data.url_of(&Path::from(layout::staging_path(f.id)));
        f.writer.write(batch).await.map_err(|e| storage("write staged file", &url, &e, CHECK_STORE))?;
        f.rows += batch.num_rows() as u64;
        let size = (f.writer.bytes_written() + f.writer.in_progress_size()) as u64;
        if size >= self.settings.target_file_bytes {
            self.close_open().await?;
        }
        Ok(())
    }

    fn buffered_bytes(&self) -> u64 {
        // BufWriter keeps up to its capacity (then uploads parts of that size).
        self.open.as_ref().map_or(0, |f| (f.writer.bytes_written().min(UPLOAD_BUFFER_BYTES) + f.writer.in_progress_size()) as u64)
    }

    async fn roll(&mut self) -> Result<(), LakeError> {
        self.close_open().await
    }

    async fn finish(&mut self) -> Result<Vec<StagedFile>, LakeError> {
        self.close_open().await?;
        Ok(std::mem::take(&mut self.done))
    }
}
