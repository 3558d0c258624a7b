//! Counters served by `GET /_sim/stats` and [`crate::Simulator::stats`].
//!
//! Shape: `{"requests_total", "requests_by_mailbox":{id:n}, "requests_by_kind":{kind:n},
//! "throttled":{"concurrency":n,"window":n}, "server_errors":n, "faults":{kind:n},
//! "max_in_flight":{mailbox id:n}, "in_flight":{"now":n,"max":n,"max_by_kind":{kind:n},
//! "request_secs":x}, "token_requests":{grant:n}, "items_served":n, "delta_pages":n}`.
//! `in_flight` counts the mailbox requests admitted by the throttle until they are answered,
//! over all mailboxes and apps: the most at once (in total and per kind), and the integral of
//! the count over time in request-seconds — its growth over an interval divided by the
//! interval's length is the average number of requests in flight then. Kinds: `users`, `user`, `mail_folder`, `mail_folders_delta`,
//! `messages_delta`, `calendars` (the listing), `calendar` (one calendar), `calendar_view_delta`
//! (every calendarView delta, default or per calendar).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

#[derive(Default, Serialize, Clone)]
pub struct Stats {
    pub requests_total: u64,
    pub requests_by_mailbox: BTreeMap<String, u64>,
    pub requests_by_kind: BTreeMap<String, u64>,
    pub throttled: BTreeMap<String, u64>,
    pub server_errors: u64,
    pub faults: BTreeMap<String, u64>,
    pub max_in_flight: BTreeMap<String, usize>,
    pub in_flight: InFlightMeter,
    pub token_requests: BTreeMap<String, u64>,
    pub items_served: u64,
    pub delta_pages: u64,
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}

/// Requests in flight over all mailboxes (module docs).
#[derive(Default, Serialize, Clone, Debug)]
pub struct InFlightMeter {
    pub now: usize,
    pub max: usize,
    pub max_by_kind: BTreeMap<String, usize>,
    /// ∫ requests in flight dt, in request-seconds, up to the last start or end of a request.
    pub request_secs: f64,
    #[serde(skip)]
    now_by_kind: BTreeMap<String, usize>,
    #[serde(skip)]
    since: Option<Instant>,
}

impl InFlightMeter {
    pub fn start(&mut self, kind: &str) {
        self.advance(Instant::now());
        self.now += 1;
        self.max = self.max.max(self.now);
        let n = self.now_by_kind.entry(kind.to_string()).or_default();
        *n += 1;
        let m = self.max_by_kind.entry(kind.to_string()).or_default();
        *m = (*m).max(*n);
    }

    pub fn end(&mut self, kind: &str) {
        self.advance(Instant::now());
        self.now = self.now.saturating_sub(1);
        if let Some(n) = self.now_by_kind.get_mut(kind) {
            *n = n.saturating_sub(1);
        }
    }

    fn advance(&mut self, at: Instant) {
        if let Some(since) = self.since {
            self.request_secs += self.now as f64 * at.saturating_duration_since(since).as_secs_f64();
        }
        self.since = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_at_once_and_per_kind() {
        let mut m = InFlightMeter::default();
        m.start("messages_delta");
        m.start("messages_delta");
        m.start("mail_folders_delta");
        m.end("messages_delta");
        m.start("messages_delta");
        m.end("messages_delta");
        m.end("messages_delta");
        m.end("mail_folders_delta");
        assert_eq!((m.now, m.max), (0, 3));
        assert_eq!(m.max_by_kind.get("messages_delta"), Some(&2));
        assert_eq!(m.max_by_kind.get("mail_folders_delta"), Some(&1));
        assert!(m.request_secs >= 0.0);
    }
}
