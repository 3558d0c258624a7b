//! Where every object lives. All paths are relative to the sink root (data) or the checkpoint
//! root (commit records).
//!
//! ```text
//! <sink root>/
//!   _staging/<uuid>.parquet                                  staged, invisible, not yet committed
//!   <table>/<mailbox slug>/part-<partition slug>-<uuid>.parquet   committed data
//! <checkpoint root>/                                         default: <sink root>/_state
//!   <mailbox slug>/<partition slug>/<seq:020>.json           commit records, one per commit
//! ```
//!
//! - `<table>` is [`Stream::as_str`]; readers glob `<table>/**/*.parquet`, and every file there is
//!   committed data. Staged files never live under a table folder.
//! - `<mailbox slug>` is [`mailbox_slug`], `<partition slug>` is [`PartitionKey::slug`]: hashed
//!   where Graph ids are not path-safe. No hive `key=value` folders: `mailbox_id` is a column.
//! - `<uuid>` is a UUIDv7, so names sort by the time they were written.
//! - The file name of a table file starts with `part-<partition slug>-`, so the files of one
//!   partition are found by listing its mailbox folder and matching that prefix.
//! - Commit records are zero-padded to 20 digits so lexicographic order is numeric order.

use object_store::path::Path;
use outlake_pipeline::model::{PartitionKey, Stream, mailbox_slug};
use uuid::Uuid;

/// Folder of staged files, at the sink root.
pub const STAGING_DIR: &str = "_staging";
/// Default checkpoint folder under the sink root.
pub const DEFAULT_STATE_DIR: &str = "_state";
/// Extension of data files.
pub const PARQUET_EXT: &str = "parquet";
/// Extension of commit records.
pub const RECORD_EXT: &str = "json";

/// A new time-ordered file id.
pub fn new_file_id() -> Uuid {
    Uuid::now_v7()
}

/// `_staging/<uuid>.parquet`
pub fn staging_path(id: Uuid) -> String {
    format!("{STAGING_DIR}/{id}.{PARQUET_EXT}")
}

/// `<table>/<mailbox slug>`: the folder holding one mailbox's committed files of a table.
pub fn table_dir(stream: Stream, mailbox_id: &str) -> String {
    format!("{}/{}", stream.as_str(), mailbox_slug(mailbox_id))
}

/// `part-<partition slug>-`: the file-name prefix of a partition's table files.
pub fn table_file_prefix(partition: &PartitionKey) -> String {
    format!("part-{}-", partition.slug())
}

/// `<table>/<mailbox slug>/part-<partition slug>-<uuid>.parquet`
pub fn table_path(partition: &PartitionKey, id: Uuid) -> String {
    format!("{}/{}{id}.{PARQUET_EXT}", table_dir(partition.stream, &partition.mailbox_id), table_file_prefix(partition))
}

/// True when `path` is a table file of `partition` (its folder and its name prefix).
///
/// The rest of the name after the prefix must be exactly a file id: the prefix of a partition
/// without a folder (`part-events-`, the events partition of lakes written before events were
/// partitioned per calendar) is also the start of every per-calendar file name
/// (`part-events-<hash>-<uuid>`), which must not count as its files.
pub fn is_table_file_of(partition: &PartitionKey, path: &str) -> bool {
    let dir = table_dir(partition.stream, &partition.mailbox_id);
    let Some(name) = path.strip_prefix(&dir).and_then(|rest| rest.strip_prefix('/')) else { return false };
    let id = name.strip_prefix(&table_file_prefix(partition)).and_then(|rest| rest.strip_suffix(&format!(".{PARQUET_EXT}")));
    id.is_some_and(|id| Uuid::try_parse(id).is_ok())
}

/// True when `path` is a staged file (`_staging/<name>.parquet`).
pub fn is_staging_path(path: &str) -> bool {
    path.strip_prefix(STAGING_DIR)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/') && name.ends_with(&format!(".{PARQUET_EXT}")))
}

/// `<mailbox slug>/<partition slug>`: a partition's commit folder under the checkpoint root.
pub fn commit_dir(partition: &PartitionKey) -> Path {
    Path::from_iter([partition.mailbox_slug(), partition.slug()])
}

/// `<mailbox slug>/<partition slug>/<seq:020>.json`
pub fn commit_record_path(partition: &PartitionKey, seq: u64) -> Path {
    commit_dir(partition).join(record_file_name(seq))
}

/// `<mailbox slug>/<partition slug>/round/<name>`: a round's bookkeeping files (a rebaseline's
/// seen log), beside the commit records. `None` when `name` is not a plain file name.
pub fn round_file_path(partition: &PartitionKey, name: &str) -> Option<Path> {
    let plain = !name.is_empty() && name.len() <= 80 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plain.then(|| commit_dir(partition).join(ROUND_DIR).join(name))
}

/// The folder of round files inside a partition's commit folder.
pub const ROUND_DIR: &str = "round";

/// `<seq:020>.json`
pub fn record_file_name(seq: u64) -> String {
    format!("{seq:020}.{RECORD_EXT}")
}

/// The commit number in a record's file name, if `name` is one.
pub fn parse_record_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(&format!(".{RECORD_EXT}"))?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_layout() {
        let p = PartitionKey::new("0b1c-22", Stream::Messages, Some("AAMkAD==/x".into()));
        let id = Uuid::parse_str("01890a5d-ac96-774b-bcce-b302099a8057").unwrap();
        assert_eq!(staging_path(id), "_staging/01890a5d-ac96-774b-bcce-b302099a8057.parquet");
        let t = table_path(&p, id);
        assert!(t.starts_with(&format!("messages/0b1c-22/part-{}-", p.slug())), "{t}");
        assert!(is_table_file_of(&p, &t));
        let other = PartitionKey::new("0b1c-22", Stream::Messages, Some("other".into()));
        assert!(!is_table_file_of(&other, &t));
        assert!(!is_table_file_of(&p, "messages/0b1c-22/sub/x.parquet"));
        // The events partition of earlier lakes (no calendar) owns none of the per-calendar files.
        let legacy = PartitionKey::new("0b1c-22", Stream::Events, None);
        let calendar = PartitionKey::new("0b1c-22", Stream::Events, Some("AAMkAGI2=".into()));
        assert!(is_table_file_of(&legacy, &table_path(&legacy, id)));
        assert!(!is_table_file_of(&legacy, &table_path(&calendar, id)));
        assert!(is_table_file_of(&calendar, &table_path(&calendar, id)));
        assert!(!is_table_file_of(&calendar, &table_path(&legacy, id)));
        assert!(is_staging_path(&staging_path(id)));
        assert!(!is_staging_path("_staging/../messages/x.parquet"));
        assert_eq!(commit_record_path(&p, 7).as_ref(), format!("0b1c-22/{}/00000000000000000007.json", p.slug()));
    }

    #[test]
    fn record_names_round_trip_and_sort_numerically() {
        assert_eq!(parse_record_file_name(&record_file_name(42)), Some(42));
        assert_eq!(parse_record_file_name("42.json"), None);
        assert_eq!(parse_record_file_name("0000000000000000004x.json"), None);
        assert!(record_file_name(9) < record_file_name(10));
    }
}
