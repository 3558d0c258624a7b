//! Golden commit records: every checked-in version-1 record still parses and re-encodes to the
//! same bytes; a record of an unknown version is refused with `Corrupt`, naming the record.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use outlake_pipeline::lake::{Lake, LakeErrorKind};
use outlake_pipeline::model::{Cursor, Stream};
use outlake_sinks::parquet::{commit, layout};
use outlake_sinks::{ObjectLake, WriterSettings};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

#[test]
fn v1_golden_records_parse_and_reencode_identically() {
    let mut seen = 0;
    for entry in std::fs::read_dir(data("commit-v1")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let cp = commit::decode_record(&path.display().to_string(), &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            String::from_utf8(commit::encode_record(&cp)).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{} no longer round-trips: the v1 format changed",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 3, "golden records are missing");
}

#[test]
fn v1_golden_record_fields() {
    let bytes = std::fs::read(data("commit-v1/messages-delta.json")).unwrap();
    let cp = commit::decode_record("messages-delta.json", &bytes).unwrap();
    assert_eq!(cp.partition.stream, Stream::Messages);
    assert_eq!(cp.seq, 12);
    assert!(matches!(cp.cursor, Some(Cursor::Delta(ref u)) if u.contains("deltatoken=")));
    assert_eq!(cp.files.len(), 2);
    assert_eq!(cp.files[1].rows, 417);
    assert_eq!(cp.total_rows, 48213);
    assert!(!cp.retired);
    // The table path follows the layout for this partition.
    assert!(layout::is_table_file_of(&cp.partition, &cp.files[0].table_path));

    let bytes = std::fs::read(data("commit-v1/mail_folders-reset-retired.json")).unwrap();
    let cp = commit::decode_record("mail_folders-reset-retired.json", &bytes).unwrap();
    assert_eq!((cp.cursor, cp.retired, cp.round.owes_deletes), (None, true, true));
}

#[test]
fn unknown_format_version_is_rejected() {
    let bytes = std::fs::read(data("commit-future/format-version-99.json")).unwrap();
    let err = commit::decode_record("state/x/00000000000000000001.json", &bytes).unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Corrupt);
    assert_eq!(err.path.as_deref(), Some("state/x/00000000000000000001.json"));
    assert!(err.message.contains("format_version 99"), "{err}");
    assert!(err.message.contains("state/x/00000000000000000001.json"), "{err}");
}

#[test]
fn record_without_version_or_broken_json_is_rejected() {
    for bad in [&b"{\"seq\": 1}"[..], b"{not json", b"{\"format_version\": 1, \"seq\": \"x\"}"] {
        let err = commit::decode_record("r.json", bad).unwrap_err();
        assert_eq!(err.kind, LakeErrorKind::Corrupt, "{err}");
        assert!(err.message.contains("r.json"), "{err}");
    }
}

/// `load` refuses the future record in place and names it by its full URL.
#[tokio::test]
async fn load_refuses_a_future_record() {
    let bytes = std::fs::read(data("commit-future/format-version-99.json")).unwrap();
    let v1 = commit::decode_record("x", &std::fs::read(data("commit-v1/events-next-first-commit.json")).unwrap()).unwrap();
    let store = Arc::new(InMemory::new());
    let lake = ObjectLake::from_store(store, None, WriterSettings::default());
    let record = layout::commit_record_path(&v1.partition, 1);
    lake.checkpoint_root().store.put(&record, PutPayload::from(bytes)).await.unwrap();
    let err = lake.load(&v1.partition).await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Corrupt);
    assert_eq!(err.path.as_deref(), Some(lake.checkpoint_root().url_of(&record).as_str()));
    assert!(err.message.contains("format_version 99"), "{err}");
}
