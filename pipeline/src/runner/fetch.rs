//! The fetch stage of a partition: limiter → request → retry → normalize, inside the source;
//! here, the loop that follows links and hands pages to the write stage.
//!
//! Contract: the loop ends by sending a page with a deltaLink, a `Failed` item, or by noticing
//! that the write stage went away or the run was cancelled. Anything else — a panic in the
//! source — is seen by the partition through the task's join handle, never as a quiet end.
//!
//! Memory: before each request the loop reserves what the response is expected to take
//! ([`expected_bytes`]), and the source grows the lease while the body arrives
//! ([`Source::fetch_page_metered`](crate::source::Source::fetch_page_metered)); see
//! [`crate::budget`]. The expectation is small unless something says the page is large, so an
//! incremental sweep of mostly empty pages keeps every request slot busy.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::budget::{PageBudget, PageLease};
use crate::model::{Cursor, Mailbox, Page, PageRequest, PartitionKey};
use crate::seq::SeqGen;
use crate::source::{DynSource, SourceError, SourceErrorKind};

use super::Stop;

/// How often a round may restart after its sync state expired before the partition fails.
const MAX_RESTARTS: u32 = 3;

/// What the fetch stage needs, and nothing else.
pub(super) struct FetchContext {
    pub source: DynSource,
    pub mailbox: Mailbox,
    pub partition: PartitionKey,
    pub seq: Arc<SeqGen>,
    pub run_id: String,
    pub stop: Stop,
    pub budget: PageBudget,
    /// What a full page is expected to need (response body + batch): the most any request is
    /// expected to take before its body says otherwise.
    pub first_page_bytes: u64,
}

/// What the first page of an incremental round (from a deltaLink) is expected to take: most
/// are empty or hold a few changes.
pub(super) const INCREMENTAL_PAGE_BYTES: u64 = 16 * 1024;
/// What the first page of a baseline round is expected to take when nothing is known of the
/// collection (the folder tree, a calendar): a few dozen items.
pub(super) const BASELINE_PAGE_BYTES: u64 = 64 * 1024;

/// What the next response of a partition is expected to take (body + batch), from what is
/// known: the partition's previous page in this run, the planner's hint (a folder's item
/// count), the kind of request. Capped at a full page (`full_page`); a larger response grows
/// its lease while it arrives.
pub(super) fn expected_bytes(request: &PageRequest, previous_page: Option<u64>, hint: Option<u64>, full_page: u64) -> u64 {
    let guess = match (previous_page, request) {
        // Pages of one round are alike: full until the last.
        (Some(previous), _) => previous,
        (None, PageRequest::Initial) => hint.unwrap_or(BASELINE_PAGE_BYTES),
        (None, PageRequest::Link(Cursor::Delta(_))) => INCREMENTAL_PAGE_BYTES,
        // Resuming mid-round after a stop: the round's pages so far were full.
        (None, PageRequest::Link(Cursor::Next(_))) => full_page,
    };
    guess.min(full_page).max(1)
}

/// What the fetch stage hands to the write stage.
pub(super) enum Fetched {
    /// A page, the link it was fetched from (`None` for a round's first request), and the
    /// memory budget it holds until it is written.
    Page(Page, Option<Cursor>, PageLease),
    /// The sync state expired; the fetcher restarted the round without a token. Carries the
    /// new round's `started_seq`, drawn before any row of the new round got its `_seq`.
    Restarted(SourceError, i64),
    Failed(SourceError),
}

pub(super) async fn fetch_loop(ctx: FetchContext, mut request: PageRequest, tx: mpsc::Sender<Fetched>) {
    let mut restarts = 0u32;
    // The memory of the partition's previous page in this run: its body and the batch made from it.
    let mut previous_page: Option<u64> = None;
    let mut hint = ctx.budget.take_expected(&ctx.partition);
    loop {
        if ctx.stop.is_stopped() {
            return;
        }
        let expected = expected_bytes(&request, previous_page, hint.take(), ctx.first_page_bytes);
        let mut lease = ctx.budget.reserve(expected).await;
        match ctx.source.fetch_page_metered(&ctx.mailbox, &ctx.partition, &request, &ctx.seq, &ctx.run_id, &lease).await {
            Ok(page) => {
                let batch_bytes = page.batch.get_array_memory_size() as u64;
                previous_page = Some(batch_bytes + page.bytes);
                lease.resize(batch_bytes);
                let from = match &request {
                    PageRequest::Initial => None,
                    PageRequest::Link(c) => Some(c.clone()),
                };
                let next = page.cursor.clone();
                let done = matches!(next, Cursor::Delta(_));
                if tx.send(Fetched::Page(page, from, lease)).await.is_err() || done {
                    return;
                }
                request = PageRequest::Link(next);
            }
            Err(e) if e.kind == SourceErrorKind::SyncStateExpired && request != PageRequest::Initial && restarts < MAX_RESTARTS => {
                restarts += 1;
                let started_seq = ctx.seq.next();
                if tx.send(Fetched::Restarted(e, started_seq)).await.is_err() {
                    return;
                }
                request = PageRequest::Initial;
                previous_page = None;
            }
            Err(e) => {
                // The write stage may already be gone (it failed or stopped); then it has its
                // own outcome and this error has no one left to act on it.
                if tx.send(Fetched::Failed(e)).await.is_err() {
                    tracing::debug!(partition = %ctx.partition, "fetch failed after the write stage ended");
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_follow_what_is_known() {
        let full = 4 << 20;
        let delta = PageRequest::Link(Cursor::Delta("d".into()));
        let next = PageRequest::Link(Cursor::Next("n".into()));
        // Nothing known.
        assert_eq!(expected_bytes(&PageRequest::Initial, None, None, full), BASELINE_PAGE_BYTES);
        assert_eq!(expected_bytes(&delta, None, None, full), INCREMENTAL_PAGE_BYTES);
        assert_eq!(expected_bytes(&next, None, None, full), full);
        // The folder's item count, capped at a full page.
        assert_eq!(expected_bytes(&PageRequest::Initial, None, Some(20_000), full), 20_000);
        assert_eq!(expected_bytes(&PageRequest::Initial, None, Some(1 << 30), full), full);
        // The previous page of the round wins over everything else.
        for req in [&PageRequest::Initial, &delta, &next] {
            assert_eq!(expected_bytes(req, Some(3_000), Some(1 << 20), full), 3_000);
        }
        // A small configured full page caps every guess.
        assert_eq!(expected_bytes(&PageRequest::Initial, None, None, 10_000), 10_000);
    }
}
