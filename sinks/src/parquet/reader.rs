//! Reading committed Parquet back: an [`AsyncFileReader`] over object_store that always uses the
//! known file size (Azure rejects suffix-range requests), and the projected key read behind
//! `current_keys`.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use outlake_pipeline::lake::KeyRow;
use outlake_pipeline::model::columns;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{CHECK_STORE, LakeError, corrupt, storage};
use crate::store::StoreRoot;

/// A Parquet file in an object store, read with ranged GETs.
#[derive(Debug, Clone)]
pub struct ObjectFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

impl ObjectFileReader {
    /// `size` must be the object's size (from `list` or `head`).
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, size: u64) -> Self {
        ObjectFileReader { store, path, size }
    }
}

fn to_parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store.get_range(&self.path, range).map_err(to_parquet_err).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(to_parquet_err) }.boxed()
    }

    fn get_metadata<'a>(&'a mut self, options: Option<&'a ArrowReaderOptions>) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).with_prefetch_hint(Some(64 * 1024)).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// `calendars`: the calendar's name.
const NAME: &str = "name";
/// `mailboxes`: the user's UPN.
const USER_PRINCIPAL_NAME: &str = "user_principal_name";

/// The columns a key read projects.
const KEY_COLUMNS: [&str; 10] = [
    columns::ID,
    columns::SEQ,
    columns::OP,
    columns::CHANGE_KEY,
    columns::PARENT_FOLDER_ID,
    columns::MAILBOX_ID,
    columns::DISPLAY_NAME,
    NAME,
    USER_PRINCIPAL_NAME,
    columns::TOTAL_ITEM_COUNT,
];

/// The key columns of a file's rows as [`KeyRow`]s, keeping rows of `mailbox_id` (when the file
/// has that column) and, when `folder` is given, rows whose `parent_folder_id` equals it.
pub async fn read_key_rows(root: &StoreRoot, path: &Path, size: u64, mailbox_id: &str, folder: Option<&str>) -> Result<Vec<KeyRow>, LakeError> {
    let mut rows = Vec::new();
    for_each_key_rows(root, path, size, mailbox_id, folder, |chunk| rows.extend(chunk)).await?;
    Ok(rows)
}

/// [`read_key_rows`] a record batch at a time (about a thousand rows), so that reading a large
/// file holds one batch of keys at a time, not the whole file's.
pub async fn for_each_key_rows(
    root: &StoreRoot,
    path: &Path,
    size: u64,
    mailbox_id: &str,
    folder: Option<&str>,
    mut each: impl FnMut(Vec<KeyRow>),
) -> Result<(), LakeError> {
    let url = root.url_of(path);
    let reader = ObjectFileReader::new(root.store.clone(), path.clone(), size);
    let bad = |e: ParquetError| {
        corrupt(
            &url,
            format!(
                "could not read Parquet file {url} ({e}); if the file is damaged, move it out of the table folder and run `outlake reset` for its partition"
            ),
        )
    };
    let fail = |e: ParquetError| match e {
        ParquetError::External(inner) => storage("read", &url, &inner, CHECK_STORE),
        e => bad(e),
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await.map_err(fail)?;
    let indices: Vec<usize> = builder.schema().fields().iter().enumerate().filter(|(_, f)| KEY_COLUMNS.contains(&f.name().as_str())).map(|(i, _)| i).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut stream = builder.with_projection(mask).build().map_err(bad)?;
    while let Some(batch) = stream.try_next().await.map_err(fail)? {
        each(key_rows_of(&batch, &url, mailbox_id, folder)?);
    }
    Ok(())
}

/// The key rows of one batch (see [`read_key_rows`]).
fn key_rows_of(batch: &RecordBatch, url: &str, mailbox_id: &str, folder: Option<&str>) -> Result<Vec<KeyRow>, LakeError> {
    let mut rows = Vec::new();
    let text = |name: &str| -> Result<Option<Vec<Option<String>>>, LakeError> {
        let Some(col) = batch.column_by_name(name) else { return Ok(None) };
        let col =
            cast(col, &DataType::Utf8).map_err(|e| corrupt(url, format!("column `{name}` of {url} is not text ({e}); the file was not written by outlake")))?;
        let s = col.as_string::<i32>();
        Ok(Some((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect()))
    };
    let missing = |name: &str| corrupt(url, format!("{url} has no `{name}` column; the file was not written by outlake: move it out of the table folder"));
    let ids = text(columns::ID)?.ok_or_else(|| missing(columns::ID))?;
    let ops = text(columns::OP)?.ok_or_else(|| missing(columns::OP))?;
    let change_keys = text(columns::CHANGE_KEY)?;
    let folders = text(columns::PARENT_FOLDER_ID)?;
    let mailboxes = text(columns::MAILBOX_ID)?;
    // The name a key is shown by: a mailbox's UPN, a folder's display name, a calendar's name.
    let names = match text(USER_PRINCIPAL_NAME)? {
        Some(n) => Some(n),
        None => match text(columns::DISPLAY_NAME)? {
            Some(n) => Some(n),
            None => text(NAME)?,
        },
    };
    let counts = match batch.column_by_name(columns::TOTAL_ITEM_COUNT) {
        Some(c) => Some(cast(c, &DataType::Int64).map_err(|e| corrupt(url, format!("column `total_item_count` of {url} is not an integer ({e})")))?),
        None => None,
    };
    let counts = counts.as_ref().map(|c| c.as_primitive::<Int64Type>());
    let seq_col = batch.column_by_name(columns::SEQ).ok_or_else(|| missing(columns::SEQ))?;
    let seq_col = cast(seq_col, &DataType::Int64).map_err(|e| corrupt(url, format!("column `_seq` of {url} is not an integer ({e})")))?;
    let seqs = seq_col.as_primitive::<Int64Type>();
    for i in 0..batch.num_rows() {
        let Some(id) = ids[i].clone() else { continue };
        if let Some(m) = &mailboxes
            && m[i].as_deref() != Some(mailbox_id)
        {
            continue;
        }
        let parent = folders.as_ref().and_then(|f| f[i].clone());
        if let Some(folder) = folder
            && parent.as_deref() != Some(folder)
        {
            continue;
        }
        if seqs.is_null(i) {
            continue;
        }
        let op = ops[i].clone().unwrap_or_else(|| columns::OP_UPSERT.to_string());
        let change_key = change_keys.as_ref().and_then(|c| c[i].clone());
        let display_name = names.as_ref().and_then(|n| n[i].clone());
        let item_count = counts.and_then(|c| c.is_valid(i).then(|| c.value(i)));
        rows.push(KeyRow { id, parent_folder_id: parent, seq: seqs.value(i), op, change_key, display_name, item_count });
    }
    Ok(rows)
}
