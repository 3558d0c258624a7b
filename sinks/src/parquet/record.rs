//! The bytes of a commit record, by format version.
//!
//! - **Version 3** (written): the JSON of [`Checkpoint`] with `"format_version": 3` first:
//!   `partition {mailbox_id, stream, folder_id}`, `seq`, `state` (`syncing` | `needs_rebaseline`
//!   | `parked` | `retired`), `cursor`, `round {kind: baseline|rebaseline|incremental,
//!   started_seq, pages, scope {received_after?, calendar_window? {start, end}}, seen? {salt,
//!   files}}`, `high_water_seq`, `files`, `run_id`, `committed_at`, `total_rows`,
//!   `rebaselines`. New in 3: events partitions per calendar (`folder_id` is the calendar id),
//!   the `calendars` listing partition (state `syncing`, never a cursor), and the calendar window
//!   of an events round. Earlier releases refuse it (they would read a per-calendar partition as
//!   something else).
//! - **Version 2** (read only): the same fields without `calendar_window`; its one events
//!   partition per mailbox has `folder_id: null`.
//! - **Version 1** (read only, written by earlier releases): the state was implied by flags —
//!   `retired: true` → retired; no cursor with `round.scope = "out_of_scope"` → parked; no cursor
//!   otherwise → needs a rebaseline; `round {baseline, owes_deletes}` → the round kind;
//!   `round.scope = "received_after=<RFC 3339>"` → the scope's field; no high-water mark, so the
//!   round's `started_seq` stands in for it (the next commit writes version 2 with a real one).
//!
//! Readers refuse any other version with `Corrupt`, naming the record. Golden records of each
//! version live in `sinks/tests/data/commit-v<N>/`.

use outlake_pipeline::model::{Checkpoint, Cursor, PartitionKey, PartitionState, RoundInfo, RoundKind, RoundScope, StagedFile};
use serde::{Deserialize, Serialize};

use crate::error::{LakeError, corrupt};

/// The version this build writes.
pub const FORMAT_VERSION: u64 = 3;

/// Versions this build reads.
pub const READABLE_VERSIONS: [u64; 3] = [1, 2, 3];

#[derive(Serialize)]
struct RecordOut<'a> {
    format_version: u64,
    #[serde(flatten)]
    checkpoint: &'a Checkpoint,
}

/// The bytes of a commit record for `checkpoint` (pretty JSON, trailing newline).
pub fn encode_record(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&RecordOut { format_version: FORMAT_VERSION, checkpoint }).expect("a Checkpoint always serializes");
    out.push(b'\n');
    out
}

/// Parse a commit record of any readable version; `url` names it in errors.
pub fn decode_record(url: &str, bytes: &[u8]) -> Result<Checkpoint, LakeError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(url, format!("commit record {url} is not valid JSON ({e}); restore it from a backup or delete it to resume from the previous record"))
    })?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    let Some(version) = version else {
        return Err(corrupt(
            url,
            format!(
                "commit record {url} has no numeric format_version field; it was not written by outlake or is damaged: restore it or delete it to resume from the previous record"
            ),
        ));
    };
    if !READABLE_VERSIONS.contains(&version) {
        return Err(corrupt(
            url,
            format!(
                "commit record {url} has format_version {version}, but this outlake reads only versions {READABLE_VERSIONS:?}; it was written by a newer outlake release: run that release, or upgrade this one"
            ),
        ));
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("format_version");
    }
    let mismatch = |e: serde_json::Error| {
        corrupt(
            url,
            format!(
                "commit record {url} does not match format_version {version} ({e}); restore it from a backup or delete it to resume from the previous record"
            ),
        )
    };
    match version {
        1 => serde_json::from_value::<CheckpointV1>(value).map_err(mismatch)?.upgrade(url),
        // Version 3 only adds fields to version 2, each optional.
        _ => serde_json::from_value::<Checkpoint>(value).map_err(mismatch),
    }
}

/// A version-1 record as earlier releases wrote it.
#[derive(Deserialize)]
struct CheckpointV1 {
    partition: PartitionKey,
    seq: u64,
    cursor: Option<Cursor>,
    round: RoundInfoV1,
    files: Vec<StagedFile>,
    run_id: String,
    committed_at: chrono::DateTime<chrono::Utc>,
    total_rows: u64,
    rebaselines: u64,
    #[serde(default)]
    retired: bool,
}

#[derive(Deserialize)]
struct RoundInfoV1 {
    baseline: bool,
    owes_deletes: bool,
    started_seq: i64,
    pages: u64,
    #[serde(default)]
    scope: Option<String>,
}

/// Version 1's marker of a parked partition, in `round.scope`.
const V1_OUT_OF_SCOPE: &str = "out_of_scope";
/// Version 1's prefix of the `received_after` fingerprint, in `round.scope`.
const V1_RECEIVED_AFTER: &str = "received_after=";

impl CheckpointV1 {
    fn upgrade(self, url: &str) -> Result<Checkpoint, LakeError> {
        let parked = self.cursor.is_none() && self.round.scope.as_deref() == Some(V1_OUT_OF_SCOPE);
        let state = match (self.retired, parked, &self.cursor) {
            (true, _, _) => PartitionState::Retired,
            (false, true, _) => PartitionState::Parked,
            (false, false, None) => PartitionState::NeedsRebaseline,
            (false, false, Some(_)) => PartitionState::Syncing,
        };
        let kind = match (self.round.baseline, self.round.owes_deletes) {
            (_, true) => RoundKind::Rebaseline,
            (true, false) => RoundKind::Baseline,
            (false, false) => RoundKind::Incremental,
        };
        let received_after = match self.round.scope.as_deref() {
            None | Some(V1_OUT_OF_SCOPE) => None,
            Some(s) => {
                let at = s.strip_prefix(V1_RECEIVED_AFTER).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                let Some(at) = at else {
                    return Err(corrupt(
                        url,
                        format!(
                            "commit record {url} (format_version 1) has an unknown round scope {s:?}; restore it from a backup or delete it to resume from the previous record"
                        ),
                    ));
                };
                Some(at.with_timezone(&chrono::Utc))
            }
        };
        Ok(Checkpoint {
            partition: self.partition,
            seq: self.seq,
            state,
            cursor: if state == PartitionState::Syncing { self.cursor } else { None },
            round: RoundInfo {
                kind,
                started_seq: self.round.started_seq,
                pages: self.round.pages,
                scope: RoundScope { received_after, calendar_window: None },
                seen: None,
            },
            high_water_seq: self.round.started_seq,
            files: self.files,
            run_id: self.run_id,
            committed_at: self.committed_at,
            total_rows: self.total_rows,
            rebaselines: self.rebaselines,
        })
    }
}
