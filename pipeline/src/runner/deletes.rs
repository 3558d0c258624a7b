//! Delete rows for keys a partition's output holds, in bounded memory: the keys to delete are
//! chosen on a compact [`KeyIndex`](crate::keys::KeyIndex) (fingerprints), and their ids are
//! streamed back from the committed files a chunk at a time (used by rebaselines, parks and
//! retirements).

use std::sync::Arc;

use futures::StreamExt;

use crate::keys::{FingerprintSet, Fingerprinter};
use crate::lake::{DynLake, StagedWriter};
use crate::model::PartitionKey;
use crate::seq::SeqGen;
use crate::source::DynSource;

use super::error::PartitionError;

/// Ids written per delete batch.
const DELETE_BATCH: usize = 10_000;

/// Where delete rows come from and go.
pub(super) struct DeleteRows<'a> {
    pub lake: &'a DynLake,
    pub source: &'a DynSource,
    pub partition: &'a PartitionKey,
    pub seq: &'a SeqGen,
    pub run_id: &'a str,
}

impl DeleteRows<'_> {
    /// Write one delete row for every committed key whose fingerprint is in `gone`. Returns
    /// how many were written.
    ///
    /// Memory: the set (16 bytes a key) and one bit a key for "written already" (an id comes
    /// back once per committed row that holds it).
    pub async fn write(&self, fingerprinter: &Fingerprinter, gone: FingerprintSet, writer: &mut dyn StagedWriter) -> Result<u64, PartitionError> {
        if gone.is_empty() {
            return Ok(0);
        }
        let gone = Arc::new(gone);
        let pick = {
            let (gone, fingerprinter) = (gone.clone(), fingerprinter.clone());
            Arc::new(move |id: &str| gone.contains(fingerprinter.id(id)))
        };
        let mut written = vec![0u64; gone.len().div_ceil(64)];
        let mut count = 0u64;
        let mut stream = self.lake.select_ids(self.partition, pick);
        while let Some(chunk) = stream.next().await {
            let mut ids = chunk?;
            ids.retain(|id| {
                let Some(i) = gone.position(fingerprinter.id(id)) else { return false };
                let (word, bit) = (i / 64, 1u64 << (i % 64));
                let first = written[word] & bit == 0;
                written[word] |= bit;
                first
            });
            count += ids.len() as u64;
            for part in ids.chunks(DELETE_BATCH) {
                let batch = self.source.delete_rows(self.partition, part, self.seq, self.run_id);
                writer.write(&batch).await?;
            }
        }
        Ok(count)
    }
}
