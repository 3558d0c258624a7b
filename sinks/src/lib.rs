//! outlake's sink: Parquet tables on object storage (local disk, S3, Azure Blob/ADLS, GCS) with
//! an atomic, checkpointed commit per partition.
//!
//! Public: [`open_lake`] / [`ObjectLake::from_store`] (the [`Lake`](outlake_pipeline::lake::Lake)
//! implementation the runner uses), [`build_store`] (URL → object store, with credentials from
//! the environment and options) and [`format`] (the on-disk layout and commit records).
//! Inside:
//! - `store`: URL parsing and store construction; [`check_store_config`] (the configuration part
//!   alone) and [`probe_store`] (write and delete one object, for `outlake check`).
//! - `parquet::layout`: where staged files, table files and commit records live.
//! - `parquet::writer`: rolling zstd Parquet writer that stages files invisibly.
//! - `parquet::commit` + `parquet::record`: put-if-absent commit records, publish, roll-forward,
//!   record versions (see `src/parquet/design.md`).
//! - `parquet::reader`: ranged reads of committed files, the `current_keys` read-back.
//! - `lease`: mailbox leases under `<checkpoint root>/_leases/` (put-if-absent generations).
//! - `vacuum`: removal of staged files no commit references.
mod error;
mod lake;
mod lease;
mod parquet;
mod store;
mod vacuum;

pub use error::{LakeError, LakeErrorKind};
pub use lake::{ObjectLake, open_lake};
pub use parquet::writer::WriterSettings;
pub use store::{StoreRoot, build_store, check_store_config, memory_store, probe_store};

/// The on-disk format other tools (and golden tests) rely on: where staged files, table files
/// and commit records live, and the bytes of a commit record of each version.
pub mod format {
    pub use crate::parquet::layout::{STAGING_DIR, commit_dir, commit_record_path, is_table_file_of, record_file_name};
    pub use crate::parquet::record::{FORMAT_VERSION, READABLE_VERSIONS, decode_record, encode_record};
}
