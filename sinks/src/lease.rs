//! Mailbox leases in the checkpoint store (the pipeline's
//! [`LeaseStore`](outlake_pipeline::lease::LeaseStore); the rules are in
//! [`outlake_pipeline::lease`]).
//!
//! ```text
//! <checkpoint root>/_leases/<mailbox slug>/<generation:020>.lease    one JSON record per generation
//! ```
//!
//! A generation is created with `PutMode::Create` (put-if-absent): on the local filesystem an
//! atomic create-new, on S3 `If-None-Match: *`, on Azure Blob `If-None-Match: *`, on GCS
//! `ifGenerationMatch=0`. `_leases` cannot collide with a mailbox folder (mailbox slugs start
//! with a letter or digit), and `.lease` files are never read as commit records.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use outlake_pipeline::lease::{LEASE_FORMAT, LeaseRecord};
use outlake_pipeline::model::mailbox_slug;

use crate::error::{CHECK_STORE, LakeError, LakeErrorKind, corrupt, storage};
use crate::store::StoreRoot;

/// The folder of lease records under the checkpoint root.
pub const LEASES_DIR: &str = "_leases";
/// Extension of lease records.
pub const LEASE_EXT: &str = "lease";

fn lease_dir(mailbox_id: &str) -> Path {
    Path::from_iter([LEASES_DIR.to_string(), mailbox_slug(mailbox_id)])
}

fn lease_path(mailbox_id: &str, generation: u64) -> Path {
    lease_dir(mailbox_id).join(format!("{generation:020}.{LEASE_EXT}"))
}

fn parse_generation(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(&format!(".{LEASE_EXT}"))?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

async fn generations(state: &StoreRoot, mailbox_id: &str) -> Result<Vec<u64>, LakeError> {
    let dir = lease_dir(mailbox_id);
    let listed = state.store.list_with_delimiter(Some(&dir)).await.map_err(|e| storage("list mailbox leases in", &state.url_of(&dir), &e, CHECK_STORE))?;
    let mut gens: Vec<u64> = listed.objects.iter().filter_map(|o| o.location.filename().and_then(parse_generation)).collect();
    gens.sort_unstable();
    Ok(gens)
}

async fn read(state: &StoreRoot, path: &Path) -> Result<Option<LeaseRecord>, LakeError> {
    let url = state.url_of(path);
    let bytes = match state.store.get(path).await {
        Ok(got) => got.bytes().await.map_err(|e| storage("read mailbox lease", &url, &e, CHECK_STORE))?,
        // Pruned between the listing and the read: the caller lists again.
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(storage("read mailbox lease", &url, &e, CHECK_STORE)),
    };
    let rec: LeaseRecord = serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(&url, format!("mailbox lease {url} is not a lease record ({e}); delete it, and the mailbox can be leased again")))?;
    if rec.format > LEASE_FORMAT {
        return Err(corrupt(&url, format!("mailbox lease {url} has format {}, newer than this release reads ({LEASE_FORMAT}); upgrade outlake", rec.format)));
    }
    Ok(Some(rec))
}

pub async fn latest(state: &StoreRoot, mailbox_id: &str) -> Result<Option<LeaseRecord>, LakeError> {
    // A generation pruned between listing and reading means a newer one exists: list again.
    for _ in 0..3 {
        let Some(&g) = generations(state, mailbox_id).await?.last() else { return Ok(None) };
        if let Some(rec) = read(state, &lease_path(mailbox_id, g)).await? {
            return Ok(Some(rec));
        }
    }
    Err(LakeError::new(LakeErrorKind::Storage, Some(state.url_of(&lease_dir(mailbox_id))), "mailbox lease records kept vanishing while being read; try again"))
}

pub async fn put(state: &StoreRoot, record: &LeaseRecord) -> Result<bool, LakeError> {
    let path = lease_path(&record.mailbox_id, record.generation);
    let body = serde_json::to_vec_pretty(record).expect("a lease record serializes");
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match state.store.put_opts(&path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
        Err(e) => Err(storage("write mailbox lease", &state.url_of(&path), &e, CHECK_STORE)),
    }
}

pub async fn exists(state: &StoreRoot, mailbox_id: &str, generation: u64) -> Result<bool, LakeError> {
    let path = lease_path(mailbox_id, generation);
    match state.store.head(&path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(storage("check mailbox lease", &state.url_of(&path), &e, CHECK_STORE)),
    }
}

pub async fn prune(state: &StoreRoot, mailbox_id: &str, below: u64) -> Result<(), LakeError> {
    for g in generations(state, mailbox_id).await?.into_iter().filter(|&g| g < below) {
        let path = lease_path(mailbox_id, g);
        match state.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(storage("remove old mailbox lease", &state.url_of(&path), &e, CHECK_STORE)),
        }
    }
    Ok(())
}

/// The latest record of every leased mailbox, by mailbox folder.
pub async fn list(state: &StoreRoot) -> Result<Vec<LeaseRecord>, LakeError> {
    let root = Path::from(LEASES_DIR);
    let metas: Vec<_> =
        state.store.list(Some(&root)).try_collect().await.map_err(|e| storage("list mailbox leases in", &state.url_of(&root), &e, CHECK_STORE))?;
    let mut newest: std::collections::BTreeMap<String, (u64, Path)> = Default::default();
    for m in metas {
        let parts: Vec<_> = m.location.parts().collect();
        let (Some(folder), Some(g)) = (parts.get(1), parts.get(2).and_then(|n| parse_generation(n.as_ref()))) else { continue };
        let slot = newest.entry(folder.as_ref().to_string()).or_insert((g, m.location.clone()));
        if g > slot.0 {
            *slot = (g, m.location.clone());
        }
    }
    let mut out = Vec::with_capacity(newest.len());
    for (_, (_, path)) in newest {
        if let Some(rec) = read(state, &path).await? {
            out.push(rec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_round_trip_and_are_not_commit_records() {
        let p = lease_path("0b1c-22", 12);
        assert_eq!(p.as_ref(), "_leases/0b1c-22/00000000000000000012.lease");
        assert_eq!(parse_generation(p.filename().unwrap()), Some(12));
        assert_eq!(crate::parquet::layout::parse_record_file_name(p.filename().unwrap()), None);
        assert_eq!(parse_generation("00000000000000000012.json"), None);
    }
}
