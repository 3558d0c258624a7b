//! The fetch stage of a partition: limiter → request → retry → normalize, inside the source;
//! here, the loop that follows links and hands pages to the write stage.
//!
//! Contract: the loop ends by sending a page with a deltaLink, a `Failed` item, or by noticing
//! that the write stage went away or the run was cancelled. Anything else — a panic in the
//! source — is seen by the partition through the task's join handle, never as a quiet end.

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
    /// What the first request is expected to need (response body + batch).
    pub first_page_bytes: u64,
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
    // Expected memory of the next request: its response body and the batch made from it,
    // as large as the previous page's (the first page: the configured guess).
    let mut expected: u64 = ctx.first_page_bytes;
    loop {
        if ctx.stop.is_stopped() {
            return;
        }
        let mut lease = ctx.budget.reserve(expected).await;
        match ctx.source.fetch_page(&ctx.mailbox, &ctx.partition, &request, &ctx.seq, &ctx.run_id).await {
            Ok(page) => {
                let batch_bytes = page.batch.get_array_memory_size() as u64;
                expected = batch_bytes + page.bytes;
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
