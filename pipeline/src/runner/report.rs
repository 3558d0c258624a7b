//! What a run did, per stream, per mailbox and in all: the data behind the summary, the JSON
//! report and the metrics. Failures keep their kind ([`FailureKind`]) so the binary decides on
//! kinds, never on message text.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lake::LakeErrorKind;
use crate::source::SourceErrorKind;

/// What one stream of one mailbox did in this run. Row counts (`upserts`, `deletes`) are rows
/// a commit of this run holds; rows staged but never committed are `uncommitted_rows`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamReport {
    pub upserts: u64,
    pub deletes: u64,
    /// Rows written to staging that no commit holds (the partition failed or was stopped before
    /// committing them); the next run fetches them again.
    pub uncommitted_rows: u64,
    pub pages: u64,
    pub commits: u64,
    pub rebaselines: u64,
    pub partitions: u64,
    pub malformed_items: u64,
    /// Messages left out by `received_after`.
    pub filtered: u64,
    /// Folders left out by `include_folders` / `exclude_folders` (messages stream).
    pub folders_excluded: u64,
    /// Calendars left out by `source.calendars` (events stream).
    pub calendars_excluded: u64,
    /// Events partitions that started a new round because the calendar window moved (it rolled
    /// into a new period, or the configured window changed).
    pub window_rollovers: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    /// One sentence per failed partition (the same as `failures[].message`).
    pub errors: Vec<String>,
    /// The failed partitions of this stream, with the kind of each failure.
    pub failures: Vec<PartitionFailure>,
}

impl StreamReport {
    /// Add another partition's counters to this stream's.
    pub fn add(&mut self, other: &StreamReport) {
        self.upserts += other.upserts;
        self.deletes += other.deletes;
        self.uncommitted_rows += other.uncommitted_rows;
        self.pages += other.pages;
        self.commits += other.commits;
        self.rebaselines += other.rebaselines;
        self.partitions += other.partitions;
        self.malformed_items += other.malformed_items;
        self.filtered += other.filtered;
        self.folders_excluded += other.folders_excluded;
        self.calendars_excluded += other.calendars_excluded;
        self.window_rollovers += other.window_rollovers;
        self.bytes += other.bytes;
        self.duration_ms += other.duration_ms;
        self.errors.extend(other.errors.iter().cloned());
        self.failures.extend(other.failures.iter().cloned());
    }
}

/// One partition that did not finish, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionFailure {
    /// The folder id (messages partitions) or calendar id (events partitions); `None` for
    /// `mail_folders`, `calendars` and the single events partition of earlier lakes.
    pub folder_id: Option<String>,
    pub kind: FailureKind,
    pub message: String,
}

/// Why a partition did not finish.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Graph refused the mailbox (403, quota, other 4xx).
    Mailbox,
    /// Graph failed this partition (retries exhausted, a malformed page, a looping calendar).
    Source,
    /// Another outlake process committed this partition's next position first.
    Conflict,
    /// Storage failed (I/O, network, permissions).
    Storage,
    /// A commit record could not be understood.
    Corrupt,
    /// The fetch task panicked (a bug); what was staged before it was committed.
    Panicked,
    /// The fetch task ended without a final link and without being cancelled (a bug).
    EndedEarly,
    /// Rows could not be processed (an Arrow error).
    Internal,
}

impl FailureKind {
    /// The kind as the JSON report spells it (`storage`, `ended_early`, …), for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Mailbox => "mailbox",
            FailureKind::Source => "source",
            FailureKind::Conflict => "conflict",
            FailureKind::Storage => "storage",
            FailureKind::Corrupt => "corrupt",
            FailureKind::Panicked => "panicked",
            FailureKind::EndedEarly => "ended_early",
            FailureKind::Internal => "internal",
        }
    }

    pub fn of_source(kind: SourceErrorKind) -> FailureKind {
        match kind {
            SourceErrorKind::Mailbox | SourceErrorKind::NoMailbox => FailureKind::Mailbox,
            _ => FailureKind::Source,
        }
    }
    pub fn of_lake(kind: LakeErrorKind) -> FailureKind {
        match kind {
            LakeErrorKind::Conflict => FailureKind::Conflict,
            LakeErrorKind::Corrupt => FailureKind::Corrupt,
            LakeErrorKind::Storage => FailureKind::Storage,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MailboxStatus {
    /// Every partition finished its round (or had nothing to do).
    Ok,
    /// The run was stopped (a signal, or another mailbox's run-stopping error) before every
    /// partition of this mailbox finished; what was staged was committed.
    Interrupted,
    /// A partition failed; the reasons are in `error` and the streams' `failures`.
    Failed,
    /// The user has no mailbox.
    Skipped,
    /// Another worker holds the mailbox's lease (who, until when: `lease`); it was left alone.
    Busy,
    /// Draining with other workers (`--shard any`): another worker already synced it during
    /// this drain (who, when: `lease`).
    SyncedElsewhere,
}

/// The lease that kept a mailbox from this run ([`MailboxStatus::Busy`],
/// [`MailboxStatus::SyncedElsewhere`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaseReport {
    /// `<host>/<pid>` of the worker.
    pub worker: String,
    pub run_id: String,
    /// Busy: until when the lease holds without a renewal. Synced elsewhere: when it was
    /// released.
    pub until: chrono::DateTime<chrono::Utc>,
}

impl LeaseReport {
    pub fn of(record: &crate::lease::LeaseRecord) -> LeaseReport {
        LeaseReport { worker: record.holder.worker.clone(), run_id: record.holder.run_id.clone(), until: record.expires_at }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MailboxReport {
    pub mailbox_id: String,
    pub label: String,
    pub status: MailboxStatus,
    pub error: Option<String>,
    pub streams: BTreeMap<String, StreamReport>,
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub throttle_wait_ms: u64,
    pub duration_ms: u64,
    /// Set for `busy` and `synced_elsewhere`: the other worker's lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseReport>,
}

impl MailboxReport {
    /// A mailbox another worker holds (or, draining, already synced).
    pub fn leased_elsewhere(id: &str, label: &str, status: MailboxStatus, record: &crate::lease::LeaseRecord) -> Self {
        MailboxReport {
            mailbox_id: id.to_string(),
            label: label.to_string(),
            status,
            error: None,
            lease: Some(LeaseReport::of(record)),
            ..MailboxReport::skipped(id, "")
        }
    }

    /// A listed mailbox that could not be resolved: failed, with the reason.
    pub fn unresolved(who: &str, error: &crate::source::SourceError) -> Self {
        MailboxReport { status: MailboxStatus::Failed, error: Some(error.message.clone()), ..MailboxReport::skipped(who, "") }
    }

    /// A user that has no mailbox, skipped.
    pub fn skipped(who: &str, why: &str) -> Self {
        MailboxReport {
            mailbox_id: who.to_string(),
            label: who.to_string(),
            status: MailboxStatus::Skipped,
            error: Some(why.to_string()),
            streams: BTreeMap::new(),
            requests: 0,
            throttled: 0,
            retries: 0,
            throttle_wait_ms: 0,
            duration_ms: 0,
            lease: None,
        }
    }
}

/// Why a whole run stopped. Serialized as `"Auth"` / `"Fatal"` in the JSON report.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum FatalKind {
    /// Credentials or configuration refused by the identity platform or Graph.
    Auth,
    /// Anything else that stops the run.
    Fatal,
}

/// How a run ended, from the most to the least severe; the binary maps it to its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run stopped: credentials refused.
    AuthFailed,
    /// The run stopped for another reason.
    Stopped,
    /// The run was cancelled before it finished.
    Interrupted,
    /// The run finished, but some mailboxes (or partitions of them) failed.
    Partial,
    /// Every mailbox synced or was skipped.
    Ok,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub mailboxes: Vec<MailboxReport>,
    /// Set when the whole run stopped (auth refused, fatal error).
    pub fatal: Option<String>,
    pub fatal_kind: Option<FatalKind>,
    /// The run was cancelled (SIGINT / SIGTERM) before it finished.
    pub interrupted: bool,
}

impl RunReport {
    pub fn failed_mailboxes(&self) -> impl Iterator<Item = &MailboxReport> {
        self.mailboxes.iter().filter(|m| m.status == MailboxStatus::Failed)
    }
    pub fn total(&self, f: impl Fn(&StreamReport) -> u64) -> u64 {
        self.mailboxes.iter().flat_map(|m| m.streams.values()).map(f).sum()
    }
    pub fn outcome(&self) -> RunOutcome {
        match self.fatal_kind {
            Some(FatalKind::Auth) => RunOutcome::AuthFailed,
            Some(FatalKind::Fatal) => RunOutcome::Stopped,
            None if self.interrupted => RunOutcome::Interrupted,
            None if self.failed_mailboxes().next().is_some() => RunOutcome::Partial,
            None => RunOutcome::Ok,
        }
    }
    /// Every partition failure of the run, with its mailbox and stream.
    pub fn failures(&self) -> impl Iterator<Item = (&MailboxReport, &str, &PartitionFailure)> {
        self.mailboxes.iter().flat_map(|m| m.streams.iter().flat_map(move |(s, r)| r.failures.iter().map(move |f| (m, s.as_str(), f))))
    }
}
