//! Exchange-style throttling per (app client_id, mailbox).
//!
//! Two limits, both live-configurable: at most `max_in_flight` requests in flight (the next one
//! gets 429 `ApplicationThrottled` "Application is over its MailboxConcurrency limit."), and at
//! most `requests_per_window` requests per sliding `window` (429 `TooManyRequests` "Please retry
//! again later.", the generic Graph body, since Exchange's own wording is undocumented). Throttled requests count
//! toward the window, as Graph keeps counting while an app is throttled. `Retry-After` is the
//! time until the window admits again (fractional seconds), or 1 s for concurrency.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Throttled {
    Concurrency,
    Window { retry_after: Duration },
}

#[derive(Default)]
struct Bucket {
    in_flight: usize,
    max_in_flight: usize,
    recent: VecDeque<Instant>,
}

#[derive(Default)]
pub struct Throttle {
    buckets: HashMap<(String, String), Bucket>,
}

impl Throttle {
    /// Admits a request or says why not. On `Ok` the caller must call [`Throttle::release`].
    pub fn admit(&mut self, client: &str, mailbox: &str, limit: u64, window: Duration, max_in_flight: usize) -> Result<usize, Throttled> {
        let now = Instant::now();
        let b = self.buckets.entry((client.to_string(), mailbox.to_string())).or_default();
        while b.recent.front().is_some_and(|t| now.duration_since(*t) >= window) {
            b.recent.pop_front();
        }
        let over_window = b.recent.len() as u64 >= limit;
        b.recent.push_back(now);
        if over_window {
            let idx = b.recent.len().saturating_sub(limit as usize);
            let oldest = b.recent.get(idx).copied().unwrap_or(now);
            let retry_after = (oldest + window).saturating_duration_since(now).max(Duration::from_millis(1));
            return Err(Throttled::Window { retry_after });
        }
        if b.in_flight >= max_in_flight {
            return Err(Throttled::Concurrency);
        }
        b.in_flight += 1;
        b.max_in_flight = b.max_in_flight.max(b.in_flight);
        Ok(b.in_flight)
    }

    pub fn release(&mut self, client: &str, mailbox: &str) {
        if let Some(b) = self.buckets.get_mut(&(client.to_string(), mailbox.to_string())) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
    }
}
