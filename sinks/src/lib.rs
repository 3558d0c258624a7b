//! outlake's sink: Parquet tables on object storage (local disk, S3, Azure Blob/ADLS, GCS) with
//! an atomic, checkpointed commit per partition.
//!
//! - [`open_lake`] / [`ObjectLake::from_store`]: the [`Lake`](outlake_pipeline::lake::Lake)
//!   implementation the runner uses.
//! - [`store`]: URL → object store, with credentials from the environment and options.
//! - [`parquet::layout`]: where staged files, table files and commit records live.
//! - [`parquet::writer`]: rolling zstd Parquet writer that stages files invisibly.
//! - [`parquet::commit`]: put-if-absent commit records, publish, roll-forward (see
//!   `src/parquet/design.md`).
//! - [`parquet::reader`]: ranged reads of committed files, the `current_keys` read-back.
//! - [`vacuum`]: removal of staged files no commit references.
pub mod error;
pub mod lake;
pub mod parquet;
pub mod store;
pub mod vacuum;

pub use error::{LakeError, LakeErrorKind};
pub use lake::{ObjectLake, open_lake};
pub use parquet::writer::WriterSettings;
