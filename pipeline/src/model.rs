//! The messages that travel down the pipeline, named after what they are.
//!
//! A sync is a set of *partitions*: one delta lineage each — (mailbox, stream, folder). Each
//! partition runs *rounds* (Graph's word for following nextLinks until a deltaLink). A round's
//! pages become Arrow batches ([`Page`]), batches become staged files ([`StagedFile`]), and
//! staged files plus the position reached become one [`Checkpoint`] commit.

use std::fmt;

use arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Column names every table carries; sinks read them back to rebuild current state.
pub mod columns {
    pub const MAILBOX_ID: &str = "mailbox_id";
    pub const ID: &str = "id";
    pub const OP: &str = "_op";
    pub const SEQ: &str = "_seq";
    pub const EXTRACTED_AT: &str = "_extracted_at";
    pub const RUN_ID: &str = "_run_id";
    /// Part of the key of `messages` only.
    pub const PARENT_FOLDER_ID: &str = "parent_folder_id";
    pub const CHANGE_KEY: &str = "change_key";
    /// `mail_folders` only.
    pub const DISPLAY_NAME: &str = "display_name";
    /// `mail_folders` only.
    pub const TOTAL_ITEM_COUNT: &str = "total_item_count";
    /// `messages` only.
    pub const RECEIVED_DATE_TIME: &str = "received_date_time";
    pub const OP_UPSERT: &str = "upsert";
    pub const OP_DELETE: &str = "delete";
}

/// The output tables. `as_str` is the table folder name and the config spelling.
///
/// `mail_folders`, `messages` and `events` are delta streams (a cursor per partition);
/// `calendars` is a listing: Graph has no delta for it, so it is listed whole every run and
/// compared with what the output holds; `mailboxes` holds one row per synced mailbox (who it
/// is: UPN, mail, display name), written when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    MailFolders,
    Messages,
    Events,
    Calendars,
    Mailboxes,
}

impl Stream {
    pub const ALL: [Stream; 5] = [Stream::MailFolders, Stream::Messages, Stream::Events, Stream::Calendars, Stream::Mailboxes];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::MailFolders => "mail_folders",
            Stream::Messages => "messages",
            Stream::Events => "events",
            Stream::Calendars => "calendars",
            Stream::Mailboxes => "mailboxes",
        }
    }

    /// Partitions of this stream hold a Graph delta cursor (all but `calendars` and `mailboxes`).
    pub fn is_delta(self) -> bool {
        !matches!(self, Stream::Calendars | Stream::Mailboxes)
    }

    pub fn parse(s: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mailbox to sync. `id` is the Graph user id (the `mailbox_id` column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: String,
    /// userPrincipalName, when known; used in messages to people.
    pub upn: Option<String>,
    /// True when the mailbox is reached through `/me` (delegated sign-in, own mailbox).
    #[serde(default)]
    pub via_me: bool,
    /// The user's `mail`, when Graph gave it.
    #[serde(default)]
    pub mail: Option<String>,
    /// The user's `displayName`, when Graph gave it.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The user's `accountEnabled` (false for shared mailboxes), when Graph gave it.
    #[serde(default)]
    pub account_enabled: Option<bool>,
}

impl Mailbox {
    pub fn label(&self) -> &str {
        self.upn.as_deref().unwrap_or(&self.id)
    }
}

/// One delta lineage: the unit that owns a cursor and commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionKey {
    pub mailbox_id: String,
    pub stream: Stream,
    /// The folder id for `messages`, the calendar id for `events`; `None` for `mail_folders`,
    /// `calendars`, and the single events partition of lakes written before events were
    /// partitioned per calendar.
    pub folder_id: Option<String>,
}

impl PartitionKey {
    pub fn new(mailbox_id: impl Into<String>, stream: Stream, folder_id: Option<String>) -> Self {
        PartitionKey { mailbox_id: mailbox_id.into(), stream, folder_id }
    }

    /// A path-safe, stable name for this partition's folder under the checkpoint root and in
    /// data file names: `<stream>` or `<stream>-<sha256(folder id)[..16]>`. Graph ids are
    /// case-sensitive and may hold characters that object stores treat specially, so they are
    /// hashed, never used raw in paths.
    pub fn slug(&self) -> String {
        match &self.folder_id {
            None => self.stream.as_str().to_string(),
            Some(f) => format!("{}-{}", self.stream.as_str(), short_hash(f)),
        }
    }

    /// Path-safe name of the mailbox folder (Graph user ids are GUIDs, but a UPN could be
    /// configured; hash anything that is not plainly safe).
    pub fn mailbox_slug(&self) -> String {
        mailbox_slug(&self.mailbox_id)
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.folder_id {
            None => write!(f, "{}/{}", self.mailbox_id, self.stream),
            Some(folder) => write!(f, "{}/{}/{}", self.mailbox_id, self.stream, folder),
        }
    }
}

/// The path-safe folder name used for a mailbox in data and state paths.
pub fn mailbox_slug(mailbox_id: &str) -> String {
    let safe = !mailbox_id.is_empty() && mailbox_id.len() <= 64 && mailbox_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if safe { mailbox_id.to_string() } else { format!("h{}", short_hash(mailbox_id)) }
}

fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a partition stands in Graph's delta protocol.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "url", rename_all = "snake_case")]
pub enum Cursor {
    /// Mid-round: the `@odata.nextLink` to fetch next.
    Next(String),
    /// Round complete: the `@odata.deltaLink` that starts the next round.
    Delta(String),
}

impl Cursor {
    pub fn url(&self) -> &str {
        match self {
            Cursor::Next(u) | Cursor::Delta(u) => u,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Cursor::Next(_) => "next",
            Cursor::Delta(_) => "delta",
        }
    }
}

/// Links carry opaque sync-state tokens; they are not secrets, but they are long and noisy, so
/// Debug shows only the kind and a short tail.
impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.url();
        let tail: String = u.chars().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        write!(f, "Cursor::{}(…{tail})", self.kind())
    }
}

/// What a fetch starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// A new round without a token (initial sync or re-baseline): the connector builds the URL
    /// with its query options.
    Initial,
    /// A link exactly as Graph returned it.
    Link(Cursor),
}

/// One fetched and normalized page.
#[derive(Debug)]
pub struct Page {
    /// Rows in the table's schema, `_seq` already assigned in the order observed.
    pub batch: RecordBatch,
    /// Where the next fetch starts: `Next` → more pages in this round; `Delta` → round done.
    pub cursor: Cursor,
    /// Ids of the upserted items on this page (for repeat detection and baseline bookkeeping).
    pub upserted_ids: Vec<String>,
    /// Number of removal entries on this page.
    pub removed: usize,
    /// Items recorded with nulls because a property had the wrong type (see connectors' rules).
    pub malformed_items: usize,
    /// Bytes of the response body.
    pub bytes: u64,
}

/// A data file written invisibly (under the sink's staging area), not yet part of any table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// Object path of the staged file, relative to the sink root, e.g. `_staging/<uuid>.parquet`.
    pub staging_path: String,
    /// Object path where the file becomes visible, relative to the sink root, e.g.
    /// `messages/<mailbox>/part-<…>.parquet`.
    pub table_path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// Where a partition is in its life; stored in every commit record (format 2 on).
///
/// ```text
///            first commit                 folder left the scope
///   (none) ─────────────► Syncing ──────────────────────────────► Parked
///                          ▲  │ 410 / `outlake reset`               │ back in scope
///        rebaseline round  │  ▼                                     ▼
///        commits a link    NeedsRebaseline ◄──────────────────── (rebaseline)
///   folder deleted (from any state but Retired) ──────────────────► Retired
/// ```
///
/// The decisions between states are made by [`crate::plan`]; this type only names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionState {
    /// Following Graph's links: the cursor is a nextLink (mid-round) or a deltaLink (caught up).
    Syncing,
    /// The next round starts without a token and owes deletes: the sync state expired (410) or
    /// `outlake reset` cleared the cursor. No cursor.
    NeedsRebaseline,
    /// The folder left `include_folders` / `exclude_folders`: its rows were deleted from the
    /// output. No cursor; it re-baselines if the folder comes back into scope.
    Parked,
    /// The folder was deleted: its rows were deleted from the output. Never resumed.
    Retired,
}

impl PartitionState {
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionState::Syncing => "syncing",
            PartitionState::NeedsRebaseline => "needs_rebaseline",
            PartitionState::Parked => "parked",
            PartitionState::Retired => "retired",
        }
    }
}

/// What kind of round a partition is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    /// The partition's first round, without a token; it owes no deletes.
    Baseline,
    /// A round without a token after the partition already had data (410 expiry, `outlake
    /// reset`, a changed scope, a folder back in scope). At its end, every key the output holds
    /// for the partition that the round did not return gets a delete row.
    Rebaseline,
    /// A round started from a deltaLink.
    Incremental,
}

impl RoundKind {
    /// The round started without a token.
    pub fn is_baseline(self) -> bool {
        matches!(self, RoundKind::Baseline | RoundKind::Rebaseline)
    }
    /// The round must end with delete rows for what it did not return.
    pub fn owes_deletes(self) -> bool {
        self == RoundKind::Rebaseline
    }
}

/// The configured scope a round runs under, one field per setting. A partition whose committed
/// round scope differs from the configured one re-baselines, so the output follows the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundScope {
    /// `source.received_after` (messages only): messages received before it are not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_after: Option<chrono::DateTime<chrono::Utc>>,
    /// `events`: the calendarView window the round's links were created with. A window that
    /// rolled (or was changed in the config) re-baselines the partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_window: Option<CalendarWindow>,
}

/// A calendarView window: events that overlap `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarWindow {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
}

impl fmt::Display for CalendarWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = |d: chrono::DateTime<chrono::Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        write!(f, "{} … {}", day(self.start), day(self.end))
    }
}

/// Bookkeeping of the round a partition is in, carried by every commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundInfo {
    pub kind: RoundKind,
    /// The smallest `_seq` any row of this round can carry: rows of this partition with a
    /// smaller `_seq` were written before the round started.
    pub started_seq: i64,
    /// Pages fetched in this round so far.
    pub pages: u64,
    /// The configured scope the round runs under.
    #[serde(default)]
    pub scope: RoundScope,
    /// Rebaseline rounds: the keys returned but not rewritten so far (see [`SeenLog`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<SeenLog>,
}

impl SeenLog {
    /// A new, empty log for a round of `kind` (rebaselines only), with a fresh salt.
    pub fn for_round(kind: RoundKind) -> Option<SeenLog> {
        kind.owes_deletes().then(|| SeenLog { salt: crate::keys::Fingerprinter::default().salt_hex(), files: Vec::new() })
    }
}

/// What a rebaseline has returned without rewriting it (its change key was unchanged), stored
/// beside the partition's commit records, so that an interrupted rebaseline resumes at its
/// nextLink instead of starting over: files of 16-byte key fingerprints, keyed by `salt`
/// ([`crate::keys::Fingerprinter::salted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenLog {
    /// 32 hex digits.
    pub salt: String,
    /// Names of the files written so far, in order (see `Lake::put_round_file`).
    #[serde(default)]
    pub files: Vec<String>,
}

/// The persisted position of a partition: one commit record. Versioned on disk by the sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub partition: PartitionKey,
    /// Commit number of this partition, starting at 1; the next commit must be `seq + 1`.
    pub seq: u64,
    pub state: PartitionState,
    /// Where the next request starts; `Some` only in [`PartitionState::Syncing`].
    pub cursor: Option<Cursor>,
    pub round: RoundInfo,
    /// The largest `_seq` handed out before this commit: every row this partition has
    /// committed has a smaller or equal `_seq`. The next run's `_seq` floor lies above it.
    pub high_water_seq: i64,
    pub files: Vec<StagedFile>,
    pub run_id: String,
    pub committed_at: chrono::DateTime<chrono::Utc>,
    /// Rows committed by this partition over its whole life.
    pub total_rows: u64,
    /// Re-baselines (410 or reset) over the partition's life.
    pub rebaselines: u64,
}

/// What the output currently holds for a key, as read back from committed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub seq: i64,
    pub deleted: bool,
    pub change_key: Option<String>,
    /// The row's `parent_folder_id` (folders: the parent folder; messages: the folder).
    pub parent_folder_id: Option<String>,
    /// The name the key is shown by: a folder's display name (`mail_folders`), a calendar's
    /// name (`calendars`), a mailbox's UPN (`mailboxes`).
    pub display_name: Option<String>,
    /// `mail_folders` rows: the folder's `total_item_count`.
    pub item_count: Option<i64>,
}
