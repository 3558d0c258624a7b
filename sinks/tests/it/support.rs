//! Backends the conformance suite runs on, and test data.
//!
//! memory and local disk always run. Azurite and the S3 server run when their variables are set
//! (`eval "$(scripts/emulators.sh env)"`); with `CI` set, a missing variable fails the test
//! instead of skipping it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use outlake_pipeline::lake::{CommitRequest, Lake};
use outlake_pipeline::model::{Checkpoint, Cursor, PartitionKey, PartitionState, RoundInfo, RoundKind, RoundScope, StagedFile, Stream};
use outlake_sinks::{ObjectLake, WriterSettings, open_lake};

pub const AZURITE_VAR: &str = "OUTLAKE_TEST_AZURITE";
pub const S3_VAR: &str = "OUTLAKE_TEST_S3_ENDPOINT";
pub const BUCKET: &str = "outlake-test";

pub enum Kind {
    Memory,
    Local(tempfile::TempDir),
    Azurite,
    S3(String),
}

pub struct Backend {
    pub kind: Kind,
}

fn emulator_var(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set but CI is: start the emulators with `scripts/emulators.sh start` and `eval \"$(scripts/emulators.sh env)\"`")
        }
        _ => {
            eprintln!("skipped: {var} is not set (run scripts/emulators.sh start; eval \"$(scripts/emulators.sh env)\")");
            None
        }
    }
}

impl Backend {
    pub fn memory() -> Option<Backend> {
        Some(Backend { kind: Kind::Memory })
    }

    pub fn local() -> Option<Backend> {
        Some(Backend { kind: Kind::Local(tempfile::tempdir().unwrap()) })
    }

    pub fn azurite() -> Option<Backend> {
        let url = emulator_var(AZURITE_VAR)?;
        // object_store's emulator mode takes its endpoint from AZURITE_BLOB_STORAGE_URL
        // (default http://127.0.0.1:10000); the two must agree.
        let blob = std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|_| "http://127.0.0.1:10000".into());
        assert_eq!(
            url.trim_end_matches('/'),
            format!("{}/devstoreaccount1", blob.trim_end_matches('/')),
            "{AZURITE_VAR} must be AZURITE_BLOB_STORAGE_URL + /devstoreaccount1"
        );
        Some(Backend { kind: Kind::Azurite })
    }

    pub fn s3() -> Option<Backend> {
        let endpoint = emulator_var(S3_VAR)?;
        Some(Backend { kind: Kind::S3(endpoint) })
    }

    /// The sink URL and options of a location named `prefix` (unique per test).
    pub fn location(&self, prefix: &str) -> (String, BTreeMap<String, String>) {
        let mut o = BTreeMap::new();
        let url = match &self.kind {
            Kind::Memory => format!("memory://{prefix}"),
            Kind::Local(dir) => url::Url::from_directory_path(dir.path().join(prefix)).unwrap().to_string(),
            Kind::Azurite => {
                o.insert("azure_storage_use_emulator".into(), "true".into());
                format!("az://{BUCKET}/{prefix}")
            }
            Kind::S3(endpoint) => {
                for (k, v) in [
                    ("aws_endpoint", endpoint.as_str()),
                    ("aws_allow_http", "true"),
                    ("aws_region", "us-east-1"),
                    ("aws_access_key_id", "test"),
                    ("aws_secret_access_key", "test"),
                    ("aws_virtual_hosted_style_request", "false"),
                ] {
                    o.insert(k.into(), v.into());
                }
                format!("s3://{BUCKET}/{prefix}")
            }
        };
        (url, o)
    }

    /// A lake at a fresh location.
    pub async fn lake(&self) -> (ObjectLake, String) {
        self.lake_with(WriterSettings::default()).await
    }

    pub async fn lake_with(&self, settings: WriterSettings) -> (ObjectLake, String) {
        let prefix = format!("t-{}", uuid::Uuid::now_v7());
        (self.open(&prefix, settings).await, prefix)
    }

    /// Another handle on the location `prefix` (what a second process would open).
    pub async fn open(&self, prefix: &str, settings: WriterSettings) -> ObjectLake {
        let (url, options) = self.location(prefix);
        open_lake(&url, None, &options, settings).await.unwrap()
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("mailbox_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("parent_folder_id", DataType::Utf8, true),
        Field::new("change_key", DataType::Utf8, true),
        Field::new("_op", DataType::Utf8, false),
        Field::new("_seq", DataType::Int64, false),
        Field::new("subject", DataType::Utf8, true),
    ]))
}

/// A row: (mailbox, id, folder, change_key, op, seq).
pub type Row<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str, i64);

pub fn batch(rows: &[Row<'_>]) -> RecordBatch {
    let col = |f: &dyn Fn(&Row<'_>) -> Option<String>| Arc::new(StringArray::from_iter(rows.iter().map(f))) as _;
    RecordBatch::try_new(
        schema(),
        vec![
            col(&|r| Some(r.0.to_string())),
            col(&|r| Some(r.1.to_string())),
            col(&|r| r.2.map(str::to_string)),
            col(&|r| r.3.map(str::to_string)),
            col(&|r| Some(r.4.to_string())),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.5))),
            col(&|r| Some(format!("subject of {} at {}", r.1, r.5))),
        ],
    )
    .unwrap()
}

/// `n` upsert rows of one mailbox and folder, seqs starting at `first_seq`.
pub fn rows_batch(mailbox: &str, folder: Option<&str>, first_seq: i64, n: usize) -> RecordBatch {
    let ids: Vec<String> = (0..n).map(|i| format!("id-{}", first_seq + i as i64)).collect();
    let rows: Vec<Row<'_>> = ids.iter().enumerate().map(|(i, id)| (mailbox, id.as_str(), folder, Some("ck"), "upsert", first_seq + i as i64)).collect();
    batch(&rows)
}

pub fn messages(mailbox: &str, folder: &str) -> PartitionKey {
    PartitionKey::new(mailbox, Stream::Messages, Some(folder.to_string()))
}

pub fn round() -> RoundInfo {
    RoundInfo { kind: RoundKind::Baseline, started_seq: 1, pages: 1, scope: RoundScope::default(), seen: None }
}

pub fn request(partition: &PartitionKey, previous: Option<Checkpoint>, files: Vec<StagedFile>) -> CommitRequest {
    let rows = files.iter().map(|f| f.rows).sum();
    CommitRequest {
        partition: partition.clone(),
        previous,
        files,
        state: PartitionState::Syncing,
        cursor: Some(Cursor::Delta("https://graph.microsoft.com/v1.0/delta?$deltatoken=abc".into())),
        round: round(),
        high_water_seq: 1_000,
        run_id: "run-1".into(),
        rows,
        rebaselined: false,
    }
}

/// Stage batches for a partition and return the staged files.
pub async fn stage(lake: &ObjectLake, partition: &PartitionKey, batches: &[RecordBatch]) -> Vec<StagedFile> {
    let mut w = lake.writer(partition);
    for b in batches {
        w.write(b).await.unwrap();
    }
    w.finish().await.unwrap()
}

/// Stage and commit in one go.
pub async fn stage_commit(lake: &ObjectLake, partition: &PartitionKey, previous: Option<Checkpoint>, batches: &[RecordBatch]) -> Checkpoint {
    let files = stage(lake, partition, batches).await;
    lake.commit(request(partition, previous, files)).await.unwrap()
}
