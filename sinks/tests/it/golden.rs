//! Golden commit records: every checked-in version-3 record parses and re-encodes to the same
//! bytes; version-2 records re-encode to the same bytes but the version; version-1 records (earlier releases) are read with the state their flags implied; a
//! record of an unknown version is refused with `Corrupt`, naming the record.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use outlake_pipeline::lake::{Lake, LakeErrorKind};
use outlake_pipeline::model::{Checkpoint, Cursor, PartitionState, RoundKind, RoundScope, Stream};
use outlake_sinks::format;
use outlake_sinks::{ObjectLake, WriterSettings};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

#[test]
fn v3_golden_records_parse_and_reencode_identically() {
    assert_eq!(format::FORMAT_VERSION, 3);
    let mut seen = 0;
    for entry in std::fs::read_dir(data("commit-v3")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let cp = format::decode_record(&path.display().to_string(), &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            String::from_utf8(format::encode_record(&cp)).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{} no longer round-trips: the v3 format changed",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 8, "golden records are missing");
}

/// Version 3 only adds optional fields: a version-2 record reads as the same checkpoint and
/// re-encodes to the same bytes but for the version number.
#[test]
fn v2_golden_records_upgrade_to_v3_unchanged() {
    let mut seen = 0;
    for entry in std::fs::read_dir(data("commit-v2")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let cp = format::decode_record(&path.display().to_string(), bytes.as_bytes()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(cp.round.scope.calendar_window, None);
        assert_eq!(
            String::from_utf8(format::encode_record(&cp)).unwrap(),
            bytes.replacen("\"format_version\": 2,", "\"format_version\": 3,", 1),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 5, "golden records are missing");
}

#[test]
fn v3_golden_record_fields() {
    let cp = decode("commit-v3/events-calendar-window-rolled.json");
    assert_eq!((cp.partition.stream, cp.partition.folder_id.as_deref(), cp.round.kind), (Stream::Events, Some("AAMkAGI2TG93AAA="), RoundKind::Rebaseline));
    let window = cp.round.scope.calendar_window.expect("a calendar window");
    assert_eq!((window.start, window.end), ("2025-12-01T00:00:00Z".parse().unwrap(), "2027-12-01T00:00:00Z".parse().unwrap()));
    let cp = decode("commit-v3/calendars-listing.json");
    assert_eq!((cp.partition.stream, cp.state, cp.cursor), (Stream::Calendars, PartitionState::Syncing, None));
}

#[test]
fn v2_golden_record_fields() {
    let cp = decode("commit-v2/messages-syncing-delta-received-after.json");
    assert_eq!((cp.partition.stream, cp.seq, cp.state, cp.round.kind), (Stream::Messages, 12, PartitionState::Syncing, RoundKind::Incremental));
    assert!(matches!(cp.cursor, Some(Cursor::Delta(ref u)) if u.contains("deltatoken=")));
    assert_eq!(cp.round.scope.received_after, Some("2025-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(cp.high_water_seq, 1732790400009999);
    assert!(format::is_table_file_of(&cp.partition, &cp.files[0].table_path));
    let states: Vec<PartitionState> = ["mail_folders-needs-rebaseline", "messages-parked", "messages-retired"]
        .iter()
        .map(|n| decode(&format!("commit-v2/{n}.json")))
        .inspect(|cp| assert_eq!(cp.cursor, None))
        .map(|cp| cp.state)
        .collect();
    assert_eq!(states, vec![PartitionState::NeedsRebaseline, PartitionState::Parked, PartitionState::Retired]);
}

fn decode(rel: &str) -> Checkpoint {
    let bytes = std::fs::read(data(rel)).unwrap();
    format::decode_record(rel, &bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Records written by earlier releases (format 1) are read, with the state their flags implied.
#[test]
fn v1_golden_records_are_read_as_their_state() {
    let cp = decode("commit-v1/messages-delta.json");
    assert_eq!((cp.partition.stream, cp.seq, cp.state, cp.round.kind), (Stream::Messages, 12, PartitionState::Syncing, RoundKind::Incremental));
    assert!(matches!(cp.cursor, Some(Cursor::Delta(ref u)) if u.contains("deltatoken=")));
    assert_eq!((cp.files.len(), cp.files[1].rows, cp.total_rows), (2, 417, 48213));
    // No high-water mark in v1: the round's start stands in for it.
    assert_eq!(cp.high_water_seq, cp.round.started_seq);
    assert_eq!(cp.round.scope, RoundScope::default());
    assert!(format::is_table_file_of(&cp.partition, &cp.files[0].table_path));

    let cp = decode("commit-v1/events-next-first-commit.json");
    assert_eq!((cp.state, cp.round.kind), (PartitionState::Syncing, RoundKind::Baseline));
    assert!(matches!(cp.cursor, Some(Cursor::Next(_))));

    let cp = decode("commit-v1/mail_folders-reset-retired.json");
    assert_eq!((cp.cursor, cp.state, cp.round.kind), (None, PartitionState::Retired, RoundKind::Rebaseline));

    let cp = decode("commit-v1/messages-parked-out-of-scope.json");
    assert_eq!((cp.cursor, cp.state, cp.round.scope), (None, PartitionState::Parked, RoundScope::default()));

    let cp = decode("commit-v1/messages-rebaseline-received-after.json");
    assert_eq!((cp.state, cp.round.kind), (PartitionState::Syncing, RoundKind::Rebaseline));
    assert_eq!(cp.round.scope.received_after, Some("2025-01-01T00:00:00Z".parse().unwrap()));

    // Re-encoding a v1 record writes the current version.
    let now: serde_json::Value = serde_json::from_slice(&format::encode_record(&cp)).unwrap();
    assert_eq!((now["format_version"].as_u64(), now["state"].as_str()), (Some(format::FORMAT_VERSION), Some("syncing")));
}

#[test]
fn v1_record_with_an_unknown_scope_is_refused() {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(data("commit-v1/messages-delta.json")).unwrap()).unwrap();
    v["round"]["scope"] = "since=yesterday".into();
    let err = format::decode_record("r.json", &serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Corrupt);
    assert!(err.message.contains("since=yesterday"), "{err}");
}

#[test]
fn unknown_format_version_is_rejected() {
    let bytes = std::fs::read(data("commit-future/format-version-99.json")).unwrap();
    let err = format::decode_record("state/x/00000000000000000001.json", &bytes).unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Corrupt);
    assert_eq!(err.path.as_deref(), Some("state/x/00000000000000000001.json"));
    assert!(err.message.contains("format_version 99"), "{err}");
    assert!(err.message.contains("state/x/00000000000000000001.json"), "{err}");
}

#[test]
fn record_without_version_or_broken_json_is_rejected() {
    for bad in [&b"{\"seq\": 1}"[..], b"{not json", b"{\"format_version\": 1, \"seq\": \"x\"}", b"{\"format_version\": 2, \"seq\": \"x\"}"] {
        let err = format::decode_record("r.json", bad).unwrap_err();
        assert_eq!(err.kind, LakeErrorKind::Corrupt, "{err}");
        assert!(err.message.contains("r.json"), "{err}");
    }
}

/// `load` refuses the future record in place and names it by its full URL.
#[tokio::test]
async fn load_refuses_a_future_record() {
    let bytes = std::fs::read(data("commit-future/format-version-99.json")).unwrap();
    let v1 = format::decode_record("x", &std::fs::read(data("commit-v1/events-next-first-commit.json")).unwrap()).unwrap();
    let store = Arc::new(InMemory::new());
    let lake = ObjectLake::from_store(store, None, WriterSettings::default());
    let record = format::commit_record_path(&v1.partition, 1);
    lake.checkpoint_root().store.put(&record, PutPayload::from(bytes)).await.unwrap();
    let err = lake.load(&v1.partition).await.unwrap_err();
    assert_eq!(err.kind, LakeErrorKind::Corrupt);
    assert_eq!(err.path.as_deref(), Some(lake.checkpoint_root().url_of(&record).as_str()));
    assert!(err.message.contains("format_version 99"), "{err}");
}
