//! outlake's engine, independent of Graph and of storage.
//!
//! - [`model`]: the messages that travel down the pipeline (pages, staged files, checkpoints).
//! - [`source`]: the `Source` trait a delta API implements (the Graph connector).
//! - [`lake`]: the `Lake` trait: staged files, atomic commits with the cursor, read-back.
//! - [`lease`]: mailbox leases in the checkpoint store (no two workers sync a mailbox at once).
//! - [`keys`]: a compact index of a partition's keys (rebaselines, parks, retirements).
//! - [`budget`]: the memory budget for pages in flight.
//! - [`limiter`]: the per-mailbox token bucket and in-flight caps.
//! - [`seq`]: the `_seq` generator.
//! - [`state`]: helpers that read pipeline columns out of record batches.
//! - [`scope`]: folder include/exclude and `received_after`.
//! - [`plan`]: the pure planner: what each partition does this run.
//! - [`runner`]: carries the plan out: fetch, write and commit stages per partition.
pub mod budget;
pub mod keys;
pub mod lake;
pub mod lease;
pub mod limiter;
pub mod model;
pub mod plan;
pub mod progress;
pub mod runner;
pub mod scope;
pub mod seq;
pub mod source;
pub mod state;
