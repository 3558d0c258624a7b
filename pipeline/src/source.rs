//! The `Source` trait: what the runner needs from a delta API, with no HTTP in sight.
//!
//! The Graph connector implements it. Errors come back already classified
//! ([`SourceErrorKind`]), so the runner acts in one place: re-baseline, skip a mailbox, fail a
//! partition, fail a mailbox, or fail the run.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::budget::PageLease;
use crate::model::{Mailbox, Page, PageRequest, PartitionKey};
use crate::seq::SeqGen;

/// How the runner must react to a source error. The connector decides; the runner obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// The sync state behind a link is gone (410 SyncStateNotFound, SyncStateInvalid,
    /// resyncRequired): restart the partition's round without a token, owing deletes.
    SyncStateExpired,
    /// The tracked folder no longer exists (404 on its message delta): retire the partition and
    /// write delete rows for every message the output holds for it.
    FolderGone,
    /// The user has no mailbox (404 MailboxNotEnabledForRESTAPI, ErrorInvalidUser): skip the
    /// mailbox when mailboxes were discovered with `mailboxes = "all"`.
    NoMailbox,
    /// A mailbox-level refusal (403 access policy, 403 ErrorQuotaExceeded, other 4xx): fail this
    /// mailbox, the others go on.
    Mailbox,
    /// Only this partition fails (retries exhausted, a malformed page, a repeating calendar
    /// page): the rest of the mailbox goes on; the mailbox is reported failed.
    Partition,
    /// Credentials or configuration refused by the identity platform: stop the whole run.
    Auth,
    /// Anything else that should stop the whole run.
    Fatal,
}

impl SourceErrorKind {
    /// `Auth` and `Fatal` stop the whole run; every other kind stays within its mailbox.
    pub fn stops_run(self) -> bool {
        matches!(self, SourceErrorKind::Auth | SourceErrorKind::Fatal)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub kind: SourceErrorKind,
    /// Graph's error code when there is one (e.g. `ErrorQuotaExceeded`, `AADSTS7000215`).
    pub code: Option<String>,
    /// A sentence a person can act on: what happened, and what to do. Never holds a secret.
    pub message: String,
}

impl SourceError {
    pub fn new(kind: SourceErrorKind, code: Option<String>, message: impl Into<String>) -> Self {
        SourceError { kind, code, message: message.into() }
    }
}

/// Counters a source keeps per mailbox, read by the runner for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    pub requests: u64,
    pub throttled: u64,
    pub retries: u64,
    pub bytes: u64,
    /// Milliseconds spent waiting on the limiter or on Retry-After.
    pub throttle_wait_ms: u64,
}

/// Mailboxes found, and the users skipped because they have none.
#[derive(Debug, Clone, Default)]
pub struct MailboxListing {
    pub mailboxes: Vec<Mailbox>,
    /// (user id or UPN, reason) for users without a mailbox.
    pub skipped: Vec<(String, String)>,
    /// (configured entry, error) for listed mailboxes that could not be resolved for a reason of
    /// their own (e.g. 400 `BadRequest`, 404 on `/users/{x}`): each fails alone, the others sync.
    pub failed: Vec<(String, SourceError)>,
    /// Ids of `mailboxes` whose user was not probed ([`Source::mailboxes_unprobed`]): the runner
    /// probes each with [`Source::probe_mailbox`] once it holds the mailbox's lease.
    pub unprobed: std::collections::HashSet<String>,
}

/// One calendar of a mailbox, as the calendars listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarInfo {
    pub id: String,
    pub name: String,
    /// `owner.address`; the mailbox's own calendars carry the mailbox's address.
    pub owner_address: Option<String>,
    pub is_default: bool,
    pub change_key: Option<String>,
}

/// A mailbox's calendars, listed whole (Graph has no delta for calendars).
#[derive(Debug, Clone)]
pub struct CalendarListing {
    /// In the order Graph listed them.
    pub calendars: Vec<CalendarInfo>,
    /// One upsert row per calendar, in the `calendars` table's schema and the same order, `_seq`
    /// drawn in that order.
    pub batch: RecordBatch,
}

#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// Resolve the configured mailboxes ("all" pages the directory; a list is resolved by id or
    /// UPN; delegated sign-in resolves `/me`).
    async fn mailboxes(&self) -> Result<MailboxListing, SourceError>;

    /// Resolve the configured mailboxes knowing which of them already have commits
    /// (`synced`: mailbox ids), so that checks made when a mailbox was first synced need not be
    /// made again (Graph: the probe of a discovered user's inbox). By default, [`Source::mailboxes`].
    async fn mailboxes_known(&self, synced: &HashSet<String>) -> Result<MailboxListing, SourceError> {
        let _ = synced;
        self.mailboxes().await
    }

    /// [`Source::mailboxes_known`], leaving the probes of discovered users that are not `synced`
    /// to [`Source::probe_mailbox`] (their ids in [`MailboxListing::unprobed`]): with many
    /// workers on one tenant, a mailbox is then probed only by the worker that holds its lease,
    /// and a worker's shard probes only its own mailboxes. By default nothing is left unprobed.
    async fn mailboxes_unprobed(&self, synced: &HashSet<String>) -> Result<MailboxListing, SourceError> {
        self.mailboxes_known(synced).await
    }

    /// Probe a mailbox [`Source::mailboxes_unprobed`] left unprobed: `Some(reason)` when the user
    /// has no mailbox (it is then skipped, as the listing would have skipped it).
    async fn probe_mailbox(&self, mailbox: &Mailbox) -> Result<Option<String>, SourceError> {
        let _ = mailbox;
        Ok(None)
    }

    /// Fetch one page of a partition's round and normalize it. `_seq` values are drawn from
    /// `seq` in the order items appear on the page.
    async fn fetch_page(&self, mailbox: &Mailbox, partition: &PartitionKey, request: &PageRequest, seq: &SeqGen, run_id: &str) -> Result<Page, SourceError>;

    /// [`Source::fetch_page`], growing `memory` (reserved by the runner for this response) to
    /// what the response really takes while its body arrives and before it is normalized
    /// ([`PageLease::grow`]; [`crate::budget`]). By default the response is not accounted
    /// beyond the reservation.
    async fn fetch_page_metered(
        &self,
        mailbox: &Mailbox,
        partition: &PartitionKey,
        request: &PageRequest,
        seq: &SeqGen,
        run_id: &str,
        memory: &PageLease,
    ) -> Result<Page, SourceError> {
        let _ = memory;
        self.fetch_page(mailbox, partition, request, seq, run_id).await
    }

    /// List a mailbox's calendars (following nextLinks), normalized into `calendars` rows.
    async fn calendars(&self, mailbox: &Mailbox, seq: &SeqGen, run_id: &str) -> Result<CalendarListing, SourceError>;

    /// The `mailboxes` row of a mailbox (an upsert of who it is), `_seq` drawn from `seq`. Its
    /// `change_key` changes whenever one of the row's fields does.
    fn mailbox_row(&self, mailbox: &Mailbox, seq: &SeqGen, run_id: &str) -> RecordBatch;

    /// Delete rows (key columns set, everything else null) for the given ids of a partition.
    fn delete_rows(&self, partition: &PartitionKey, ids: &[String], seq: &SeqGen, run_id: &str) -> RecordBatch;

    /// The id of a well-known folder (`inbox`, `sentitems`, …) in a mailbox; `None` when the
    /// mailbox has no such folder. Used to resolve `include_folders` / `exclude_folders`.
    async fn well_known_folder(&self, mailbox: &Mailbox, name: &str) -> Result<Option<String>, SourceError> {
        let _ = (mailbox, name);
        Ok(None)
    }

    /// Per-mailbox request counters so far.
    fn stats(&self, mailbox_id: &str) -> RequestStats;
}

pub type DynSource = Arc<dyn Source>;
