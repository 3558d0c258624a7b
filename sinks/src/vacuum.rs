//! Vacuum: remove staged files that no commit will ever publish, and round files (a
//! rebaseline's seen log) that no partition's latest commit refers to.
//!
//! A staged object older than `min_age` is
//! - **published** (rolled forward) when any retained commit record names it: the commit
//!   happened, only its publish was interrupted;
//! - **deleted** otherwise: its writer crashed, failed, or lost a commit race.
//!
//! A round file (`<state>/<mailbox>/<partition>/round/<name>`) older than `min_age` is deleted
//! unless the partition's latest commit record lists it in `round.seen.files`: its round ended
//! (a finished rebaseline deletes its log, but a crash between the commit and that delete leaves
//! it) or was abandoned (a scope change started a new round).
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
/// published or deleted, unreferenced round files of that age deleted. Returns the paths deleted
/// (staging paths relative to the sink root, round files relative to the checkpoint root).
pub async fn vacuum_at(data: &StoreRoot, state: &StoreRoot, min_age: Duration, now: DateTime<Utc>) -> Result<Vec<String>, LakeError> {
    let cutoff = chrono::Duration::from_std(min_age).ok().and_then(|age| now.checked_sub_signed(age)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut removed = vacuum_staging(data, state, cutoff).await?;
    removed.extend(vacuum_round_files(state, cutoff).await?);
    Ok(removed)
}

async fn vacuum_staging(data: &StoreRoot, state: &StoreRoot, cutoff: DateTime<Utc>) -> Result<Vec<String>, LakeError> {
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

/// Round files older than `cutoff` that the latest commit of their partition does not list.
async fn vacuum_round_files(state: &StoreRoot, cutoff: DateTime<Utc>) -> Result<Vec<String>, LakeError> {
    let metas: Vec<_> = state.store.list(None).try_collect().await.map_err(|e| storage("list round files in", &state.url, &e, CHECK_STORE))?;
    let mut old: HashMap<Path, Vec<(Path, String)>> = HashMap::new();
    for m in metas.into_iter().filter(|m| m.last_modified < cutoff) {
        let parts: Vec<String> = m.location.parts().map(|p| p.as_ref().to_string()).collect();
        if parts.len() == 4 && parts[2] == layout::ROUND_DIR {
            old.entry(Path::from_iter([parts[0].as_str(), parts[1].as_str()])).or_default().push((m.location, parts[3].clone()));
        }
    }
    if old.is_empty() {
        return Ok(Vec::new());
    }
    let records = commit::all_records(state, None).await?;
    let mut removed = Vec::new();
    for (dir, files) in old {
        let keep: Vec<String> = match records.get(&dir).and_then(|seqs| seqs.iter().max()) {
            Some(&seq) => {
                commit::read_record(state, &dir.clone().join(layout::record_file_name(seq)), seq).await?.round.seen.map(|s| s.files).unwrap_or_default()
            }
            None => Vec::new(),
        };
        for (path, _) in files.into_iter().filter(|(_, name)| !keep.contains(name)) {
            match state.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    tracing::info!(path = %state.url_of(&path), "vacuum deleted a round file no commit refers to");
                    removed.push(path.to_string());
                }
                Err(e) => return Err(storage("delete unreferenced round file", &state.url_of(&path), &e, CHECK_STORE)),
            }
        }
    }
    Ok(removed)
}
