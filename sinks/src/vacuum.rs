//! Vacuum: remove staged files that no commit will ever publish.
//!
//! A staged object older than `min_age` is
//! - **published** (rolled forward) when any retained commit record names it: the commit
//!   happened, only its publish was interrupted;
//! - **deleted** otherwise: its writer crashed, failed, or lost a commit race.
//!
//! Objects younger than `min_age` are left alone, because a running writer may be about to commit
//! them. `min_age` must therefore exceed the longest time between staging a file and committing
//! it (an hour is plenty for outlake's runner; a day is a safe default).
//!
//! Age is `now − last_modified`, with `last_modified` as the store reports it (some stores keep
//! whole seconds) and `now` passed in ([`vacuum_at`]) so tests choose it; [`vacuum`] passes the
//! current time. An object exactly `min_age` old is still young.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use outlake_pipeline::model::StagedFile;

use crate::error::{CHECK_STORE, LakeError, storage};
use crate::parquet::{commit, layout};
use crate::store::StoreRoot;

/// [`vacuum_at`] the current time. Returns the staging paths deleted (relative to the sink root).
pub async fn vacuum(data: &StoreRoot, state: &StoreRoot, min_age: Duration) -> Result<Vec<String>, LakeError> {
    vacuum_at(data, state, min_age, Utc::now()).await
}

/// Vacuum as if the time were `now`: staged objects last modified before `now − min_age` are
/// published or deleted. Returns the staging paths deleted (relative to the sink root).
pub async fn vacuum_at(data: &StoreRoot, state: &StoreRoot, min_age: Duration, now: DateTime<Utc>) -> Result<Vec<String>, LakeError> {
    let cutoff = chrono::Duration::from_std(min_age).ok().and_then(|age| now.checked_sub_signed(age)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let staging = Path::from(layout::STAGING_DIR);
    let old: Vec<_> = data
        .store
        .list(Some(&staging))
        .try_filter(|m| futures::future::ready(m.last_modified < cutoff))
        .try_collect()
        .await
        .map_err(|e| storage("list staged files in", &data.url_of(&staging), &e, CHECK_STORE))?;
    if old.is_empty() {
        return Ok(Vec::new());
    }

    // Every file named by a retained commit record, of any partition.
    let mut referenced: HashMap<String, StagedFile> = HashMap::new();
    for (dir, seqs) in commit::all_records(state, None).await? {
        for seq in seqs {
            let cp = commit::read_record(state, &dir.clone().join(layout::record_file_name(seq)), seq).await?;
            referenced.extend(cp.files.into_iter().map(|f| (f.staging_path.clone(), f)));
        }
    }

    let mut removed = Vec::new();
    for meta in old {
        let key = meta.location.to_string();
        if let Some(file) = referenced.get(&key) {
            commit::publish_file(data, file).await?;
            tracing::info!(path = %data.url_of(&meta.location), "vacuum published a committed file whose publish was interrupted");
            continue;
        }
        match data.store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => removed.push(key),
            Err(e) => return Err(storage("delete orphaned staged file", &data.url_of(&meta.location), &e, CHECK_STORE)),
        }
    }
    Ok(removed)
}
