//! The commit protocol: one put-if-absent commit record per commit, then publish.
//!
//! See `design.md` beside this file for the argument; in short, per partition:
//!
//! 1. Data files are already staged under `_staging/` (invisible to table readers).
//! 2. `commit` writes `<checkpoint root>/<mailbox>/<partition>/<seq:020>.json` with
//!    `PutMode::Create`, `seq = previous.seq + 1`. The put is atomic and fails with
//!    `AlreadyExists` if any other writer created that record first → [`LakeErrorKind::Conflict`].
//!    **The record existing is the commit.** It names the files and carries the cursor.
//! 3. Each staged file is then renamed to its table path (atomic rename on local disk; copy +
//!    delete on object stores). Publishing is idempotent and is rolled forward by `load` (and by
//!    `vacuum`) if a crash interrupted it.
//! 4. The newest [`KEEP_RECORDS`] records of a partition are kept; older ones are deleted.
//!
//! Record format: see [`super::record`] (version 2 written, versions 1 and 2 read).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use outlake_pipeline::lake::CommitRequest;
use outlake_pipeline::model::{Checkpoint, PartitionKey, StagedFile, mailbox_slug};

use super::layout;
use crate::error::{CHECK_STORE, LakeError, LakeErrorKind, corrupt, storage};
use crate::store::StoreRoot;

/// Commit records kept per partition (the newest ones); older ones are deleted after a commit.
pub const KEEP_RECORDS: u64 = 5;

/// Files published concurrently.
const PUBLISH_CONCURRENCY: usize = 4;

pub(crate) use super::record::decode_record;
use super::record::encode_record;

/// Commit numbers of the records present for a partition, ascending.
pub async fn record_seqs(state: &StoreRoot, partition: &PartitionKey) -> Result<Vec<u64>, LakeError> {
    let dir = layout::commit_dir(partition);
    let listed = state.store.list_with_delimiter(Some(&dir)).await.map_err(|e| storage("list commit records in", &state.url_of(&dir), &e, CHECK_STORE))?;
    let mut seqs: Vec<u64> = listed.objects.iter().filter_map(|o| o.location.filename().and_then(layout::parse_record_file_name)).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Read and check one record: its partition and seq must match where it is stored.
pub async fn read_record(state: &StoreRoot, path: &Path, expect_seq: u64) -> Result<Checkpoint, LakeError> {
    let url = state.url_of(path);
    let bytes = async { state.store.get(path).await?.bytes().await }.await.map_err(|e| storage("read commit record", &url, &e, CHECK_STORE))?;
    let cp = decode_record(&url, &bytes)?;
    let expected_dir = layout::commit_dir(&cp.partition);
    let in_dir = path.parts().count() >= 1 && path.as_ref().starts_with(&format!("{}/", expected_dir));
    if cp.seq != expect_seq || !in_dir {
        return Err(corrupt(
            &url,
            format!(
                "commit record {url} holds partition {} position {}, which does not belong at this path; it was copied or renamed by hand: move it back or delete it",
                cp.partition, cp.seq
            ),
        ));
    }
    Ok(cp)
}

/// The newest commit record of a partition, without rolling it forward.
pub async fn latest_record(state: &StoreRoot, partition: &PartitionKey) -> Result<Option<Checkpoint>, LakeError> {
    let Some(&seq) = record_seqs(state, partition).await?.last() else { return Ok(None) };
    let cp = read_record(state, &layout::commit_record_path(partition, seq), seq).await?;
    if &cp.partition != partition {
        let url = state.url_of(&layout::commit_record_path(partition, seq));
        return Err(corrupt(
            &url,
            format!(
                "commit record {url} belongs to partition {}, not {partition} (their folder names collide); use a separate checkpoint root for one of them",
                cp.partition
            ),
        ));
    }
    Ok(Some(cp))
}

/// Make a committed file visible: staged → table path. Idempotent: if the staged object is
/// gone and the table file exists, it was already published.
pub async fn publish_file(data: &StoreRoot, file: &StagedFile) -> Result<(), LakeError> {
    let from = Path::from(file.staging_path.as_str());
    let to = Path::from(file.table_path.as_str());
    match data.store.rename(&from, &to).await {
        Ok(()) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => match data.store.head(&to).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(corrupt(
                &data.url_of(&to),
                format!(
                    "a commit names {} but neither it nor the published {} exists, so that commit's rows are lost (was `_staging` or the table folder cleaned by hand?); run `outlake reset` for this partition to sync it again",
                    data.url_of(&from),
                    data.url_of(&to)
                ),
            )),
            Err(e) => Err(storage("check published file", &data.url_of(&to), &e, CHECK_STORE)),
        },
        Err(e) => Err(storage(
            "publish staged file to",
            &data.url_of(&to),
            &e,
            "the commit is recorded and the next run publishes it; check the storage credentials and network",
        )),
    }
}

/// Publish every file of a commit (concurrently, all attempted; the first error is returned).
pub async fn publish(data: &StoreRoot, files: &[StagedFile]) -> Result<(), LakeError> {
    let futures: Vec<_> = files.iter().map(|f| publish_file(data, f)).collect();
    let results: Vec<Result<(), LakeError>> = futures::stream::iter(futures).buffer_unordered(PUBLISH_CONCURRENCY).collect().await;
    results.into_iter().collect()
}

fn conflict(state: &StoreRoot, partition: &PartitionKey, seq: u64) -> LakeError {
    LakeError::new(
        LakeErrorKind::Conflict,
        Some(state.url_of(&layout::commit_record_path(partition, seq))),
        format!("another outlake process committed position {seq} of this {} partition first; its rows are in the next run", partition.stream),
    )
}

fn check_files(data: &StoreRoot, partition: &PartitionKey, files: &[StagedFile]) -> Result<(), LakeError> {
    for f in files {
        if !layout::is_staging_path(&f.staging_path) || !layout::is_table_file_of(partition, &f.table_path) {
            return Err(LakeError::new(
                LakeErrorKind::Corrupt,
                Some(data.url_of(&Path::from(f.staging_path.as_str()))),
                format!(
                    "refusing to commit {} → {} for {partition}: staged files must be `{}/<name>.parquet` and table files `{}/{}<name>.parquet`; this is a bug in the caller",
                    f.staging_path,
                    f.table_path,
                    layout::STAGING_DIR,
                    layout::table_dir(partition.stream, &partition.mailbox_id),
                    layout::table_file_prefix(partition)
                ),
            ));
        }
    }
    Ok(())
}

/// Record a new position with its files, then publish them. See the module docs.
pub async fn commit(data: &StoreRoot, state: &StoreRoot, req: CommitRequest) -> Result<Checkpoint, LakeError> {
    let partition = req.partition.clone();
    check_files(data, &partition, &req.files)?;
    if let Some(prev) = &req.previous
        && prev.partition != partition
    {
        return Err(LakeError::new(
            LakeErrorKind::Corrupt,
            None,
            format!("commit for {partition} was given the previous commit of {}; this is a bug in the caller", prev.partition),
        ));
    }
    let prev_seq = req.previous.as_ref().map_or(0, |p| p.seq);
    let seq = prev_seq + 1;

    // A writer more than KEEP_RECORDS behind could find `seq` pruned and re-create it: refuse
    // when anything newer than `previous` already exists.
    let existing = record_seqs(state, &partition).await?;
    if let Some(&latest) = existing.last()
        && latest > prev_seq
    {
        return Err(conflict(state, &partition, latest));
    }

    let (total_rows, rebaselines, high_water) = req.previous.as_ref().map_or((0, 0, i64::MIN), |p| (p.total_rows, p.rebaselines, p.high_water_seq));
    let checkpoint = Checkpoint {
        partition: partition.clone(),
        seq,
        state: req.state,
        cursor: req.cursor,
        round: req.round,
        high_water_seq: req.high_water_seq.max(high_water),
        files: req.files,
        run_id: req.run_id,
        committed_at: chrono::Utc::now(),
        total_rows: total_rows + req.rows,
        rebaselines: rebaselines + u64::from(req.rebaselined),
    };

    let path = layout::commit_record_path(&partition, seq);
    let url = state.url_of(&path);
    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
    match state.store.put_opts(&path, PutPayload::from(encode_record(&checkpoint)), opts).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
            return Err(conflict(state, &partition, seq));
        }
        Err(e) => {
            return Err(storage(
                "write commit record",
                &url,
                &e,
                &format!("the partition's position is still {prev_seq}; check the storage credentials and network, then run again"),
            ));
        }
    }

    // Our record can only be stale if newer ones already existed (see the first check); such
    // a record never becomes the latest, so remove it and report the conflict.
    let after = record_seqs(state, &partition).await?;
    if let Some(&latest) = after.last()
        && latest > seq
    {
        if let Err(e) = state.store.delete(&path).await {
            tracing::warn!(path = %url, error = %e, "could not remove a stale commit record; it never becomes the latest and vacuum ignores it");
        }
        return Err(conflict(state, &partition, latest));
    }

    publish(data, &checkpoint.files).await.map_err(|mut e| {
        e.message = format!("commit {seq} of {partition} is recorded, but publishing its files failed: {}", e.message);
        e
    })?;

    prune(state, &partition, seq, &after).await;
    Ok(checkpoint)
}

/// Delete records older than the newest KEEP_RECORDS (best effort: a leftover record is harmless).
async fn prune(state: &StoreRoot, partition: &PartitionKey, latest: u64, seqs: &[u64]) {
    for &old in seqs.iter().filter(|&&s| s + KEEP_RECORDS <= latest) {
        let path = layout::commit_record_path(partition, old);
        if let Err(e) = state.store.delete(&path).await {
            tracing::warn!(path = %state.url_of(&path), error = %e, "could not prune an old commit record; it is harmless and will be retried");
        }
    }
}

/// The latest commit of a partition with its files published (rolled forward if needed).
pub async fn load(data: &StoreRoot, state: &StoreRoot, partition: &PartitionKey) -> Result<Option<Checkpoint>, LakeError> {
    let Some(cp) = latest_record(state, partition).await? else { return Ok(None) };
    publish(data, &cp.files).await?;
    Ok(Some(cp))
}

/// Every record path under the checkpoint root (or one mailbox), grouped by partition folder,
/// as (folder, ascending seqs).
pub async fn all_records(state: &StoreRoot, mailbox_id: Option<&str>) -> Result<BTreeMap<Path, Vec<u64>>, LakeError> {
    let prefix = mailbox_id.map(|m| Path::from(mailbox_slug(m)));
    let metas: Vec<_> = state
        .store
        .list(prefix.as_ref())
        .try_collect()
        .await
        .map_err(|e| storage("list commit records under", &prefix.as_ref().map_or(state.url.clone(), |p| state.url_of(p)), &e, CHECK_STORE))?;
    let mut out: BTreeMap<Path, Vec<u64>> = BTreeMap::new();
    for m in metas {
        let parts: Vec<_> = m.location.parts().collect();
        if parts.len() != 3 {
            continue;
        }
        let Some(seq) = layout::parse_record_file_name(parts[2].as_ref()) else { continue };
        out.entry(Path::from_iter([parts[0].clone(), parts[1].clone()])).or_default().push(seq);
    }
    for seqs in out.values_mut() {
        seqs.sort_unstable();
    }
    Ok(out)
}

/// The latest record of every partition (optionally of one mailbox), not rolled forward.
pub async fn list_latest(state: &StoreRoot, mailbox_id: Option<&str>) -> Result<Vec<Checkpoint>, LakeError> {
    let records = all_records(state, mailbox_id).await?;
    let mut out = Vec::with_capacity(records.len());
    for (dir, seqs) in records {
        let Some(&seq) = seqs.last() else { continue };
        let cp = read_record(state, &dir.clone().join(layout::record_file_name(seq)), seq).await?;
        if mailbox_id.is_none_or(|m| cp.partition.mailbox_id == m) {
            out.push(cp);
        }
    }
    out.sort_by(|a, b| a.partition.cmp(&b.partition));
    Ok(out)
}
