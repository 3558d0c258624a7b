//! Counters served by `GET /_sim/stats` and [`crate::Simulator::stats`].
//!
//! Shape: `{"requests_total", "requests_by_mailbox":{id:n}, "requests_by_kind":{kind:n},
//! "throttled":{"concurrency":n,"window":n}, "server_errors":n, "faults":{kind:n},
//! "max_in_flight":{mailbox id:n}, "token_requests":{grant:n}, "items_served":n,
//! "delta_pages":n}`. Kinds: `users`, `user`, `mail_folder`, `mail_folders_delta`,
//! `messages_delta`, `calendars` (the listing), `calendar` (one calendar), `calendar_view_delta`
//! (every calendarView delta, default or per calendar).

use std::collections::BTreeMap;

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
    pub token_requests: BTreeMap<String, u64>,
    pub items_served: u64,
    pub delta_pages: u64,
}

pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}
