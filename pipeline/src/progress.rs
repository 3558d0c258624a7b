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
    /// A mailbox counted in `RunStarted` that this run leaves alone: another worker holds it
    /// (`busy`) or already synced it (`synced_elsewhere`), or its user turned out to have no
    /// mailbox when it was probed under the lease. It leaves the run's total.
    MailboxLeftAlone {
        mailbox_id: String,
        reason: String,
    },
    /// Requests to the source right now: `in_flight` of at most `limit`, and `admitted` since
    /// the run started. Sent about once a second by whoever owns the limiter (the binary).
    Requests {
        in_flight: u64,
        limit: u64,
        admitted: u64,
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

/// Turns the source's per-mailbox throttle-wait counters into [`ProgressEvent::Throttled`]
/// events: each call emits the wait added since the last call for that mailbox, once, however
/// many partitions of the mailbox call it.
#[derive(Debug, Clone, Default)]
pub struct ThrottleMeter(std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<String, u64>>>);

impl ThrottleMeter {
    /// Emit the throttle wait of `mailbox_id` added since the last call (`total_ms`: the
    /// source's running total for the mailbox).
    pub fn update(&self, progress: &Progress, mailbox_id: &str, total_ms: u64) {
        let waited = {
            let mut seen = self.0.lock();
            let last = seen.entry(mailbox_id.to_string()).or_insert(0);
            let waited = total_ms.saturating_sub(*last);
            *last = (*last).max(total_ms);
            waited
        };
        if waited > 0 {
            progress.emit(ProgressEvent::Throttled { mailbox_id: mailbox_id.to_string(), waited_ms: waited });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_are_emitted_once_as_they_grow() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let progress = Progress::new(tx);
        let meter = ThrottleMeter::default();
        meter.update(&progress, "a", 0);
        meter.update(&progress, "a", 1_500);
        // A second partition of the same mailbox sees the same total: nothing new.
        meter.update(&progress, "a", 1_500);
        meter.update(&progress, "b", 200);
        meter.update(&progress, "a", 2_000);
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            if let ProgressEvent::Throttled { mailbox_id, waited_ms } = ev {
                got.push((mailbox_id, waited_ms));
            }
        }
        assert_eq!(got, vec![("a".to_string(), 1_500), ("b".to_string(), 200), ("a".to_string(), 500)]);
    }
}
