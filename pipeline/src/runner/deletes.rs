//! Delete rows for keys a partition's output holds, in bounded memory: the keys to delete are
//! chosen on a compact [`KeyIndex`](crate::keys::KeyIndex) (fingerprints), and their ids are
//! streamed back from the committed files a chunk at a time (used by rebaselines, parks and
//! retirements).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;

use crate::keys::{Fingerprint, Fingerprinter};
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
    pub async fn write(&self, fingerprinter: &Fingerprinter, gone: HashSet<Fingerprint>, writer: &mut dyn StagedWriter) -> Result<u64, PartitionError> {
        if gone.is_empty() {
            return Ok(0);
        }
        let gone = Arc::new(gone);
        let pick = {
            let (gone, fingerprinter) = (gone.clone(), fingerprinter.clone());
            Arc::new(move |id: &str| gone.contains(&fingerprinter.id(id)))
        };
        let mut written: HashSet<Fingerprint> = HashSet::with_capacity(gone.len());
        let mut stream = self.lake.select_ids(self.partition, pick);
        while let Some(chunk) = stream.next().await {
            let mut ids = chunk?;
            ids.retain(|id| written.insert(fingerprinter.id(id)));
            for part in ids.chunks(DELETE_BATCH) {
                let batch = self.source.delete_rows(self.partition, part, self.seq, self.run_id);
                writer.write(&batch).await?;
            }
        }
        Ok(written.len() as u64)
    }
}
