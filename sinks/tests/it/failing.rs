//! A store that fails on demand: commit errors name the object and leave the previous commit
//! loadable; an interrupted publish is rolled forward once the store works again.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, Result,
};
use outlake_pipeline::lake::{Lake, LakeErrorKind};
use outlake_sinks::{ObjectLake, WriterSettings};

use crate::support::*;

/// Wraps a store; `fail_puts` fails every put, `fail_copies` every copy and rename,
/// `slow_puts` delays every put (so concurrent writers all get past their pre-checks).
#[derive(Debug)]
pub struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    pub fail_puts: AtomicBool,
    pub fail_copies: AtomicBool,
    pub slow_puts: AtomicBool,
}

impl FailingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FailingStore { inner, fail_puts: AtomicBool::new(false), fail_copies: AtomicBool::new(false), slow_puts: AtomicBool::new(false) }
    }

    fn check(&self, flag: &AtomicBool, op: &str, path: &Path) -> Result<()> {
        if flag.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic { store: "FailingStore", source: format!("injected failure of {op} {path}").into() });
        }
        Ok(())
    }
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failing://{}", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check(&self.fail_puts, "put", location)?;
        if self.slow_puts.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check(&self.fail_puts, "put", location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(&self.fail_copies, "copy", to)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.check(&self.fail_copies, "rename", to)?;
        self.inner.rename_opts(from, to, options).await
    }
}

fn failing_lake() -> (ObjectLake, Arc<FailingStore>) {
    let store = Arc::new(FailingStore::new(Arc::new(InMemory::new())));
    (ObjectLake::from_store(store.clone(), None, WriterSettings::default()), store)
}

#[tokio::test]
async fn failed_record_write_names_the_record_and_keeps_the_previous_commit() {
    let (lake, store) = failing_lake();
    let p = messages("mbx-1", "inbox");
    let first = stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 4, 3)]).await;

    store.fail_puts.store(true, Ordering::SeqCst);
    let err = lake.commit(request(&p, Some(first.clone()), files.clone())).await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Storage);
    let path = err.path.clone().unwrap();
    assert!(path.ends_with(&format!("_state/mbx-1/{}/00000000000000000002.json", p.slug())), "{path}");
    assert!(err.message.contains("could not write commit record"), "{err}");
    assert!(err.message.contains(&path), "{err}");
    assert!(err.message.contains("position is still 1"), "{err}");

    store.fail_puts.store(false, Ordering::SeqCst);
    assert_eq!(lake.load(&p).await.unwrap(), Some(first.clone()));
    assert_eq!(lake.current_keys(&p).await.unwrap().len(), 3, "the failed commit's rows are not visible");
    // The same staged files commit fine once the store works again.
    let second = lake.commit(request(&p, Some(first), files)).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(lake.current_keys(&p).await.unwrap().len(), 6);
}

#[tokio::test]
async fn failed_publish_is_reported_and_rolled_forward_by_load() {
    let (lake, store) = failing_lake();
    let p = messages("mbx-1", "inbox");
    let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;

    store.fail_copies.store(true, Ordering::SeqCst);
    let err = lake.commit(request(&p, None, files.clone())).await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Storage);
    assert!(err.message.contains("commit 1 of") && err.message.contains("is recorded"), "{err}");
    assert!(err.path.as_deref().unwrap().ends_with(&files[0].table_path), "{err:?}");
    assert!(lake.current_keys(&p).await.unwrap().is_empty());

    store.fail_copies.store(false, Ordering::SeqCst);
    let loaded = lake.load(&p).await.unwrap().unwrap();
    assert_eq!((loaded.seq, loaded.files.clone()), (1, files));
    assert_eq!(lake.current_keys(&p).await.unwrap().len(), 3);
}

/// Regression guard: a commit must never name files outside the layout (a caller bug could
/// otherwise publish into another partition's folder or outside the sink).
#[tokio::test]
async fn commit_refuses_files_outside_the_layout() {
    let (lake, _) = failing_lake();
    let p = messages("mbx-1", "inbox");
    let mut files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    files[0].table_path = "messages/mbx-2/part-x.parquet".into();
    let err = lake.commit(request(&p, None, files)).await.unwrap_err();
    assert!(err.message.contains("refusing to commit"), "{err}");
    assert_eq!(lake.load(&p).await.unwrap(), None);
}

/// Every contender passes the "nothing newer exists" pre-check (puts are slow), so only the
/// put-if-absent decides: exactly one winner. Fails if the record put were an overwrite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_if_absent_alone_decides_a_race() {
    let (lake, store) = failing_lake();
    let p = messages("mbx-1", "inbox");
    let first = stage_commit(&lake, &p, None, &[rows_batch("mbx-1", Some("inbox"), 1, 3)]).await;
    let mut reqs = Vec::new();
    for i in 0..8 {
        let files = stage(&lake, &p, &[rows_batch("mbx-1", Some("inbox"), 100 * (i + 1), 3)]).await;
        reqs.push(request(&p, Some(first.clone()), files));
    }
    store.slow_puts.store(true, Ordering::SeqCst);
    let tasks: Vec<_> = reqs
        .into_iter()
        .map(|req| {
            let lake = lake.clone();
            tokio::spawn(async move { lake.commit(req).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(cp) => {
                winners += 1;
                assert_eq!(cp.seq, 2);
            }
            Err(e) => assert_eq!(e.kind, LakeErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(winners, 1);
}
