//! One suite, every store: memory, local disk, Azurite and an S3 server (when running).

use std::sync::Arc;
use std::time::Duration;

use arrow::compute::concat_batches;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use outlake_pipeline::keys::Fingerprinter;
use outlake_pipeline::lake::{Lake, LakeErrorKind};
use outlake_pipeline::lease::{Acquired, LeaseHolder, Leases};
use outlake_pipeline::model::{Checkpoint, PartitionKey, PartitionState, Stream};
use outlake_sinks::format;
use outlake_sinks::{ObjectLake, WriterSettings};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;

use crate::support::*;

async fn list_paths(lake: &ObjectLake, prefix: &str) -> Vec<String> {
    let root = lake.data_root();
    let mut v: Vec<String> = root.store.list(Some(&Path::from(prefix))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    v.sort();
    v
}

async fn get(lake: &ObjectLake, path: &str) -> Bytes {
    lake.data_root().store.get(&Path::from(path)).await.unwrap().bytes().await.unwrap()
}

/// Rows come back byte-for-byte through the parquet crate, zstd-compressed, with statistics.
pub async fn stage_commit_read_back(b: &Backend) {
    let (lake, _) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let input = vec![rows_batch("mbx-1", Some("inbox"), 1, 100), rows_batch("mbx-1", Some("inbox"), 101, 50)];
    let files = stage(&lake, &p, &input).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].rows, 150);
    let cp = lake.commit(request(&p, None, files.clone())).await.unwrap();
    assert_eq!(cp.seq, 1);
    assert_eq!(cp.total_rows, 150);
    assert_eq!(cp.files, files);

    let bytes = get(&lake, &files[0].table_path).await;
    assert_eq!(bytes.len() as u64, files[0].bytes);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let meta = builder.metadata().clone();
    let col = meta.row_group(0).column(0);
    assert!(matches!(col.compression(), Compression::ZSTD(_)), "{:?}", col.compression());
    assert!(col.statistics().is_some(), "statistics are written");
    let got: Vec<_> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
    let got = concat_batches(&schema(), &got).unwrap();
    assert_eq!(got, concat_batches(&schema(), &input).unwrap());

    // Published: the staged object is gone; load and list return the commit.
    assert!(list_paths(&lake, format::STAGING_DIR).await.is_empty());
    assert_eq!(lake.load(&p).await.unwrap(), Some(cp.clone()));
    assert_eq!(lake.list(Some("mbx-1")).await.unwrap(), vec![cp.clone()]);
    assert!(lake.list(Some("other")).await.unwrap().is_empty());

    // A second commit continues the sequence and counts rows over the partition's life.
    let cp2 = stage_commit(&lake, &p, Some(cp), &[rows_batch("mbx-1", Some("inbox"), 151, 10)]).await;
    assert_eq!((cp2.seq, cp2.total_rows), (2, 160));
    assert_eq!(lake.load(&p).await.unwrap(), Some(cp2));
}

/// Nothing under `<table>/` until the commit; then exactly the committed files.
pub async fn staged_files_are_invisible_until_commit(b: &Backend) {
    let (lake, _) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 10)]).await;
    assert!(list_paths(&lake, "messages").await.is_empty());
    assert_eq!(list_paths(&lake, format::STAGING_DIR).await, vec![files[0].staging_path.clone()]);
    assert!(files[0].table_path.starts_with("messages/mbx-1/part-messages-"), "{}", files[0].table_path);
    lake.commit(request(&p, None, files.clone())).await.unwrap();
    assert_eq!(list_paths(&lake, "messages").await, vec![files[0].table_path.clone()]);
}

/// The writer rolls to a new file at the target size and when the schema changes.
pub async fn writer_rolls_files(b: &Backend) {
    let settings = WriterSettings { target_file_bytes: 1, row_group_rows: 10, zstd_level: 1 };
    let (lake, _) = b.lake_with(settings).await;
    let p = PartitionKey::new("mbx-1", Stream::Events, None);
    let input: Vec<_> = (0..3).map(|i| rows_batch("mbx-1", None, i * 25, 25)).collect();
    let mut w = lake.writer(&p);
    for batch in &input {
        w.write(batch).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    assert_eq!(files.iter().map(|f| f.rows).collect::<Vec<_>>(), vec![25, 25, 25]);
    // Row groups are capped at row_group_rows.
    let bytes = get(&lake, &files[0].staging_path).await;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 3);
    // Nothing more to hand out.
    assert!(w.finish().await.unwrap().is_empty());
}

/// A file larger than object_store's 10 MiB write buffer goes up as a multipart upload and
/// reads back whole.
pub async fn large_file_uses_multipart(b: &Backend) {
    use arrow::array::{BinaryArray, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let (lake, _) = b.lake().await;
    let p = PartitionKey::new("mbx-1", Stream::Events, None);
    let n = 3000usize;
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let blobs: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            (0..512)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("mailbox_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("_op", DataType::Utf8, false),
        Field::new("_seq", DataType::Int64, false),
        Field::new("body", DataType::Binary, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n("mbx-1", n))),
            Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("id-{i}")))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n("upsert", n))),
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(BinaryArray::from_iter_values(blobs.iter())),
        ],
    )
    .unwrap();
    let files = stage(&lake, &p, std::slice::from_ref(&batch)).await;
    assert!(files[0].bytes > 11 * 1024 * 1024, "{} bytes", files[0].bytes);
    lake.commit(request(&p, None, files.clone())).await.unwrap();
    let bytes = get(&lake, &files[0].table_path).await;
    assert_eq!(bytes.len() as u64, files[0].bytes);
    let got: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(concat_batches(&schema, &got).unwrap(), batch);
    assert_eq!(lake.current_keys(&p).await.unwrap().len(), n);
}

/// 8 writers commit the same position at once: exactly one wins, the rest get Conflict.
pub async fn concurrent_commit_has_one_winner(b: &Backend) {
    let (lake, prefix) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let first = stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 5)]).await;

    // Each contender is its own lake handle (like its own process), with its own staged file.
    let mut contenders = Vec::new();
    for i in 0..8 {
        let other = b.open(&prefix, WriterSettings::default()).await;
        let files = stage(&other, &p, &[rows_batch("mbx-1", Some("inbox"), 100 * (i + 1), 3)]).await;
        contenders.push((other, request(&p, Some(first.clone()), files)));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(contenders.len()));
    let tasks: Vec<_> = contenders
        .into_iter()
        .map(|(l, req)| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                l.commit(req).await
            })
        })
        .collect();
    let mut winners: Vec<Checkpoint> = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(cp) => winners.push(cp),
            Err(e) => {
                assert_eq!(e.kind, LakeErrorKind::Conflict, "{e}");
                assert!(e.message.contains("another outlake process committed"), "{e}");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let loaded = lake.load(&p).await.unwrap().unwrap();
    assert_eq!(loaded, winners[0]);
    assert_eq!(loaded.seq, 2);
    // Only the winner's file joined the table; the losers' stay staged for vacuum.
    assert_eq!(list_paths(&lake, "messages").await.len(), 2);
    assert_eq!(list_paths(&lake, format::STAGING_DIR).await.len(), 7);
}

/// The same position committed twice in a row: the second is a Conflict naming the position.
pub async fn sequential_conflict(b: &Backend) {
    let (lake, prefix) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let first = stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 5)]).await;
    let second = stage_commit(&lake, &p, Some(first.clone()), &[rows_batch("mbx-1", Some("inbox"), 6, 5)]).await;
    let other = b.open(&prefix, WriterSettings::default()).await;
    let files = stage(&other, &p, &[rows_batch("mbx-1", Some("inbox"), 11, 5)]).await;
    let err = other.commit(request(&p, Some(first), files)).await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Conflict);
    assert!(err.message.contains("committed position 2 of this messages partition first"), "{err}");
    // First commit of a partition that already has one.
    let files = stage(&other, &p, &[rows_batch("mbx-1", Some("inbox"), 11, 5)]).await;
    assert_eq!(other.commit(request(&p, None, files)).await.unwrap_err().kind, LakeErrorKind::Conflict);
    assert_eq!(lake.load(&p).await.unwrap(), Some(second));

    // put-if-absent itself, underneath the protocol.
    let path = format::commit_record_path(&p, 2);
    let opts = object_store::PutOptions { mode: object_store::PutMode::Create, ..Default::default() };
    let again = lake.checkpoint_root().store.put_opts(&path, PutPayload::from_static(b"{}"), opts).await;
    assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");
}

/// Crash after the record, before publish: `load` publishes the files.
pub async fn load_rolls_forward_an_interrupted_publish(b: &Backend) {
    let (lake, prefix) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 7)]).await;
    let cp = Checkpoint {
        partition: p.clone(),
        seq: 1,
        state: PartitionState::NeedsRebaseline,
        cursor: None,
        round: round(),
        high_water_seq: 1,
        files: files.clone(),
        run_id: "crashed".into(),
        committed_at: chrono::Utc::now(),
        total_rows: 7,
        rebaselines: 0,
    };
    let record = format::commit_record_path(&p, 1);
    lake.checkpoint_root().store.put(&record, PutPayload::from(format::encode_record(&cp))).await.unwrap();
    assert!(list_paths(&lake, "messages").await.is_empty());

    let restarted = b.open(&prefix, WriterSettings::default()).await;
    assert_eq!(restarted.load(&p).await.unwrap(), Some(cp.clone()));
    assert_eq!(list_paths(&lake, "messages").await, vec![files[0].table_path.clone()]);
    assert!(list_paths(&lake, format::STAGING_DIR).await.is_empty());
    // Idempotent.
    assert_eq!(restarted.load(&p).await.unwrap(), Some(cp));
    let keys = restarted.current_keys(&p).await.unwrap();
    assert_eq!(keys.len(), 7);
}

/// Vacuum deletes old orphans, publishes staged files a commit names, and spares young files.
pub async fn vacuum_removes_orphans_keeps_referenced(b: &Backend) {
    let (lake, _) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let orphan = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    let referenced = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 10, 3)]).await;
    let cp = Checkpoint {
        partition: p.clone(),
        seq: 1,
        state: PartitionState::NeedsRebaseline,
        cursor: None,
        round: round(),
        high_water_seq: 1,
        files: referenced.clone(),
        run_id: "crashed".into(),
        committed_at: chrono::Utc::now(),
        total_rows: 3,
        rebaselines: 0,
    };
    let record = format::commit_record_path(&p, 1);
    lake.checkpoint_root().store.put(&record, PutPayload::from(format::encode_record(&cp))).await.unwrap();

    let min_age = Duration::from_secs(3600);
    assert!(lake.vacuum(min_age).await.unwrap().is_empty(), "young files are left alone");
    assert_eq!(list_paths(&lake, format::STAGING_DIR).await.len(), 2);

    // "Now" is injected: ages count from the times the store itself gave the staged files (some
    // stores keep whole seconds), so the test needs no sleep and no slack.
    let staged: Vec<_> = lake.data_root().store.list(Some(&Path::from(format::STAGING_DIR))).map_ok(|m| m.last_modified).try_collect().await.unwrap();
    let (oldest, newest) = (*staged.iter().min().unwrap(), *staged.iter().max().unwrap());
    let age = chrono::Duration::from_std(min_age).unwrap();
    let vacuum_at = |now| lake.vacuum_at(min_age, now);
    assert!(vacuum_at(oldest + age).await.unwrap().is_empty(), "a file exactly min_age old is still young");
    assert_eq!(list_paths(&lake, format::STAGING_DIR).await.len(), 2);
    let removed = vacuum_at(newest + age + chrono::Duration::milliseconds(1)).await.unwrap();
    assert_eq!(removed, vec![orphan[0].staging_path.clone()]);
    assert!(list_paths(&lake, format::STAGING_DIR).await.is_empty());
    assert_eq!(list_paths(&lake, "messages").await, vec![referenced[0].table_path.clone()]);
    assert_eq!(lake.load(&p).await.unwrap(), Some(cp));
}

/// Vacuum deletes old round files (a rebaseline's seen log) that the partition's latest commit
/// does not list, and keeps the listed ones.
pub async fn vacuum_removes_unreferenced_round_files(b: &Backend) {
    let (lake, _) = b.lake().await;
    let p = messages("mbx-1", "inbox");
    let listed = lake.put_round_file(&p, vec![7u8; 32]).await.unwrap();
    let orphan = lake.put_round_file(&p, vec![9u8; 16]).await.unwrap();
    let mut cp = stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 2)]).await;
    cp.seq = 2;
    cp.round.seen = Some(outlake_pipeline::model::SeenLog { salt: "00".repeat(16), files: vec![listed.clone()] });
    let record = format::commit_record_path(&p, 2);
    lake.checkpoint_root().store.put(&record, PutPayload::from(format::encode_record(&cp))).await.unwrap();

    let min_age = Duration::from_secs(3600);
    assert!(lake.vacuum(min_age).await.unwrap().is_empty(), "young round files are left alone");
    let removed = lake.vacuum_at(min_age, chrono::Utc::now() + chrono::Duration::days(2)).await.unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].ends_with(&orphan), "{removed:?}");
    assert_eq!(lake.get_round_file(&p, &listed).await.unwrap(), vec![7u8; 32]);
    assert!(lake.get_round_file(&p, &orphan).await.is_err());
}

/// Latest `_seq` per id, only this mailbox, only this folder (messages).
pub async fn current_keys_latest_per_id(b: &Backend) {
    let (lake, _) = b.lake().await;
    let inbox = messages("mbx-1", "inbox");
    let sent = messages("mbx-1", "sent");
    let c1 = stage_commit(
        &lake,
        &inbox,
        None,
        &[batch(&[
            ("mbx-1", "a", Some("inbox"), Some("ck1"), "upsert", 1),
            ("mbx-1", "b", Some("inbox"), Some("ck1"), "upsert", 2),
            ("mbx-1", "moved", Some("sent"), Some("ck1"), "upsert", 3),
            ("other-mbx", "x", Some("inbox"), None, "upsert", 4),
        ])],
    )
    .await;
    stage_commit(
        &lake,
        &inbox,
        Some(c1),
        &[batch(&[
            ("mbx-1", "a", Some("inbox"), Some("ck2"), "upsert", 5),
            ("mbx-1", "b", Some("inbox"), None, "delete", 6),
            ("mbx-1", "a", Some("inbox"), Some("ck-old"), "upsert", 0),
        ])],
    )
    .await;
    stage_commit(&lake, &sent, None, &[batch(&[("mbx-1", "s", Some("sent"), Some("ck"), "upsert", 7)])]).await;
    // Staged but uncommitted rows do not count.
    stage(&lake, &inbox, &[batch(&[("mbx-1", "c", Some("inbox"), None, "upsert", 8)])]).await;

    let keys = lake.current_keys(&inbox).await.unwrap();
    let mut ids: Vec<_> = keys.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!((keys["a"].seq, keys["a"].deleted, keys["a"].change_key.as_deref()), (5, false, Some("ck2")));
    assert_eq!((keys["b"].seq, keys["b"].deleted), (6, true));
    let sent_keys = lake.current_keys(&sent).await.unwrap();
    assert_eq!(sent_keys.keys().collect::<Vec<_>>(), vec!["s"]);

    // The compact index holds the same latest state, by fingerprint.
    let index = lake.key_index(&inbox, Fingerprinter::default()).await.unwrap();
    assert_eq!(index.len(), 2);
    let a = index.get("a").unwrap();
    assert_eq!((a.seq, a.deleted, a.change), (5, false, Some(index.fingerprinter().change_key("ck2"))));
    assert_eq!((index.get("b").unwrap().seq, index.get("b").unwrap().deleted), (6, true));
    assert!(index.get("moved").is_none() && index.get("c").is_none() && index.get("x").is_none());
    // Ids stream back file by file, filtered; "a" has rows in two files.
    let chunks: Vec<Vec<String>> = lake.select_ids(&inbox, Arc::new(|id: &str| id != "b")).try_collect().await.unwrap();
    let mut picked: Vec<String> = chunks.into_iter().flatten().collect();
    picked.sort();
    assert_eq!(picked, vec!["a", "a", "a"]);
    assert!(lake.current_keys(&messages("mbx-2", "inbox")).await.unwrap().is_empty());

    // Tables without a folder key read every row of the mailbox.
    let events = PartitionKey::new("mbx-1", Stream::Events, None);
    stage_commit(&lake, &events, None, &[batch(&[("mbx-1", "e", None, None, "upsert", 1)])]).await;
    assert_eq!(lake.current_keys(&events).await.unwrap()["e"].seq, 1);
}

/// `list` returns the latest commit of every partition; old records are pruned to five.
pub async fn list_and_prune(b: &Backend) {
    let (lake, _) = b.lake().await;
    let inbox = messages("mbx-1", "inbox");
    let mut prev = None;
    for i in 0..7 {
        prev = Some(stage_commit(&lake, &inbox, prev, &[rows_batch("mbx-1", Some("inbox"), i * 10, 2)]).await);
    }
    let folders = PartitionKey::new("mbx-1", Stream::MailFolders, None);
    let f1 = stage_commit(&lake, &folders, None, &[rows_batch("mbx-1", None, 1, 2)]).await;
    let other = PartitionKey::new("user@example.com", Stream::Events, None);
    let o1 = stage_commit(&lake, &other, None, &[rows_batch("user@example.com", None, 1, 2)]).await;

    let records: Vec<_> = lake
        .checkpoint_root()
        .store
        .list(Some(&format::commit_dir(&inbox)))
        .map_ok(|m| m.location.filename().unwrap().to_string())
        .try_collect()
        .await
        .unwrap();
    let mut records = records;
    records.sort();
    assert_eq!(records, (3..=7).map(format::record_file_name).collect::<Vec<_>>());

    let mine = lake.list(Some("mbx-1")).await.unwrap();
    assert_eq!(mine.iter().map(|c| (c.partition.clone(), c.seq)).collect::<Vec<_>>(), vec![(folders, 1), (inbox.clone(), 7)]);
    assert_eq!(mine[0], f1);
    let all = lake.list(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.contains(&o1));
    assert_eq!(lake.list(Some("user@example.com")).await.unwrap(), vec![o1]);
    assert_eq!(lake.current_keys(&inbox).await.unwrap().len(), 14);
}

fn lease_holder(i: usize) -> LeaseHolder {
    LeaseHolder { worker: format!("pod-{i}/1"), run_id: format!("run-{i}"), process: None }
}

/// 16 workers (each its own lake handle) race for a free mailbox: one wins generation 1.
pub async fn lease_race_has_one_winner(b: &Backend) {
    let (_, prefix) = b.lake().await;
    let mut contenders = Vec::new();
    for i in 0..16 {
        let lake = b.open(&prefix, WriterSettings::default()).await;
        contenders.push(Leases::new(lake.leases().unwrap(), lease_holder(i), Duration::from_secs(60)));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(contenders.len()));
    let tasks: Vec<_> = contenders
        .into_iter()
        .map(|l| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                match l.acquire("mbx-1", None).await.unwrap() {
                    Acquired::Held(lease) => Some((l.holder().clone(), lease.record().await.generation)),
                    Acquired::Busy(_) => None,
                    Acquired::Done(r) => panic!("nothing was done yet: {r:?}"),
                }
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    assert_eq!(winners[0].1, 1);
    let lake = b.open(&prefix, WriterSettings::default()).await;
    let latest = lake.leases().unwrap().latest_lease("mbx-1").await.unwrap().unwrap();
    assert_eq!((latest.generation, &latest.holder), (1, &winners[0].0));
    assert_eq!(lake.leases().unwrap().list_leases().await.unwrap(), vec![latest]);
}

/// A lease whose holder stopped renewing is taken over exactly once, and the old holder's next
/// check before a commit fails as a conflict.
pub async fn expired_lease_is_taken_over_once(b: &Backend) {
    let (lake, prefix) = b.lake().await;
    let first = Leases::new(lake.leases().unwrap(), lease_holder(99), Duration::from_secs(60));
    let Acquired::Held(old) = first.acquire("mbx-1", None).await.unwrap() else { panic!("a free mailbox is taken") };
    old.renew().await.unwrap();
    // Two minutes later (the holder died): 16 workers find it expired.
    let later = chrono::Utc::now() + chrono::Duration::seconds(120);
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let l = Leases::new(b.open(&prefix, WriterSettings::default()).await.leases().unwrap(), lease_holder(i), Duration::from_secs(60));
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            match l.acquire_at("mbx-1", None, Some(later)).await.unwrap() {
                Acquired::Held(lease) => Some(lease.record().await),
                Acquired::Busy(by) => {
                    assert_eq!(by.generation, 3, "the loser sees the winner's generation");
                    None
                }
                Acquired::Done(r) => panic!("{r:?}"),
            }
        }));
    }
    let mut takeovers = Vec::new();
    for t in tasks {
        takeovers.extend(t.await.unwrap());
    }
    assert_eq!(takeovers.len(), 1, "taken over exactly once");
    assert_eq!(takeovers[0].generation, 3);
    let err = old.check().await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Conflict);
    assert!(err.message.contains(&format!("{} took it over", takeovers[0].holder)), "{err}");
    // Generations older than the previous one are pruned.
    let latest = lake.leases().unwrap().latest_lease("mbx-1").await.unwrap().unwrap();
    assert_eq!(latest, takeovers[0]);
}

macro_rules! suite {
    ($backend:ident, $ctor:expr, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(b) = $ctor {
                        super::$case(&b).await;
                    }
                }
            )*
        }
    };
}

macro_rules! all_backends {
    (common: [$($case:ident),* $(,)?], races: [$($race:ident),* $(,)?] $(,)?) => {
        suite!(memory, crate::support::Backend::memory(), [$($case,)* $($race,)*]);
        suite!(local, crate::support::Backend::local(), [$($case,)* $($race,)*]);
        suite!(azurite, crate::support::Backend::azurite(), [$($case,)* $($race,)*]);
        // moto's conditional put is only sequentially correct: no race cases there.
        suite!(s3, crate::support::Backend::s3(), [$($case,)*]);
    };
}

all_backends!(
    common: [
        stage_commit_read_back,
        staged_files_are_invisible_until_commit,
        writer_rolls_files,
        large_file_uses_multipart,
        sequential_conflict,
        load_rolls_forward_an_interrupted_publish,
        vacuum_removes_orphans_keeps_referenced,
        vacuum_removes_unreferenced_round_files,
        current_keys_latest_per_id,
        list_and_prune,
    ],
    races: [concurrent_commit_has_one_winner, lease_race_has_one_winner, expired_lease_is_taken_over_once],
);
