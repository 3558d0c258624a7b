//! Progress events: the engine says what happened; only the binary draws bars.
//!
//! Events are sent on an unbounded channel and never block the pipeline. A sink that nobody
//! listens to costs one atomic check per event.

use tokio::sync::mpsc::UnboundedSender;

use crate::model::Stream;

#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// The run knows its mailboxes.
    RunStarted {
        mailboxes: usize,
    },
    MailboxStarted {
        mailbox_id: String,
        label: String,
    },
    /// Items the mailbox's folders say they hold (`totalItemCount`), when known.
    MailboxExpected {
        mailbox_id: String,
        items: u64,
    },
    /// A page was fetched, normalized and staged.
    Page {
        mailbox_id: String,
        stream: Stream,
        rows: u64,
        upserts: u64,
    },
    /// A commit made rows visible.
    Committed {
        mailbox_id: String,
        stream: Stream,
        rows: u64,
    },
    Rebaselined {
        mailbox_id: String,
        stream: Stream,
    },
    /// Time spent waiting because of throttling: on the request limiter, or on a 429/503's
    /// `Retry-After` (or backoff) before a retry. `waited_ms` is this wait alone; a renderer
    /// adds them up. Emitted where the source adds to `RequestStats::throttle_wait_ms`, so the
    /// sum over a run equals the report's `throttle_wait_ms`.
    Throttled {
        mailbox_id: String,
        waited_ms: u64,
    },
    MailboxFinished {
        mailbox_id: String,
        ok: bool,
    },
    MailboxSkipped {
        mailbox: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Progress {
    tx: Option<UnboundedSender<ProgressEvent>>,
}

impl Progress {
    pub fn new(tx: UnboundedSender<ProgressEvent>) -> Self {
        Progress { tx: Some(tx) }
    }

    pub fn none() -> Self {
        Progress { tx: None }
    }

    pub fn emit(&self, event: ProgressEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}
