//! Pre-rendered pages: record the delta pages of a backfill once, then serve those bytes as they
//! are, so that serving costs next to nothing and a client under benchmark measures itself.
//!
//! Modes ([`ReplayMode`]):
//! - `Off` (default): nothing recorded, nothing replayed.
//! - `Record`: every delta page the normal path answers with 200 is stored under its request
//!   key — the request's path and query plus its `Prefer` headers — with its `Preference-Applied`
//!   header. The first recording of a key wins. The bytes are exactly the normal path's.
//! - `Serve`: a Graph request whose key was recorded is answered with the recorded bytes before
//!   anything else happens: no token check beyond the presence of an `Authorization` header, no
//!   throttling, latency, faults or state lock. Other requests (`/users`, the token endpoint,
//!   keys never recorded) take the normal path.
//!
//! Only a read lock is taken while serving. Replayed requests are counted in [`Replay::served`],
//! not in the simulator's `stats`.
//!
//! A replayed backfill is only meaningful when the client asks the same URLs again: every link it
//! follows comes from a recorded body, so only its first-round URLs (folder delta, each folder's
//! messages delta, the calendar window) must be the same; a client that changes its `$select`,
//! its calendar window or its `Prefer` headers misses and falls through to the normal path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use parking_lot::RwLock;

/// What the simulator does with delta pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayMode {
    Off,
    Record,
    Serve,
}

/// One recorded answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub body: Bytes,
    pub preference_applied: Option<HeaderValue>,
}

/// One recorded request: what a plain HTTP client must send to get the recorded answer.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path and query, e.g. `/v1.0/users/{id}/mailFolders('…')/messages/delta?$skiptoken=…`.
    pub path_and_query: String,
    /// The `Prefer` header values sent with it, in order.
    pub prefer: Vec<String>,
    pub body_len: usize,
}

/// The recorded pages; lives in the simulator's shared state.
#[derive(Debug)]
pub struct Replay {
    mode: AtomicU8,
    pages: RwLock<HashMap<String, Recorded>>,
    served: AtomicU64,
}

impl Default for Replay {
    fn default() -> Self {
        Replay { mode: AtomicU8::new(0), pages: RwLock::new(HashMap::new()), served: AtomicU64::new(0) }
    }
}

fn prefer_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok())
}

/// The request key: path and query, then each `Prefer` value on its own line.
pub fn key(path_and_query: &str, headers: &HeaderMap) -> String {
    let mut k = String::with_capacity(path_and_query.len() + 96);
    k.push_str(path_and_query);
    for v in prefer_values(headers) {
        k.push('\n');
        k.push_str(v);
    }
    k
}

impl Replay {
    pub fn mode(&self) -> ReplayMode {
        match self.mode.load(Ordering::Relaxed) {
            1 => ReplayMode::Record,
            2 => ReplayMode::Serve,
            _ => ReplayMode::Off,
        }
    }

    pub fn set_mode(&self, mode: ReplayMode) {
        let v = match mode {
            ReplayMode::Off => 0,
            ReplayMode::Record => 1,
            ReplayMode::Serve => 2,
        };
        self.mode.store(v, Ordering::Relaxed);
    }

    /// Stores a page answered by the normal path (in `Record` mode only).
    pub fn record(&self, path_and_query: &str, headers: &HeaderMap, body: &Bytes, preference_applied: Option<&HeaderValue>) {
        if self.mode() != ReplayMode::Record {
            return;
        }
        let k = key(path_and_query, headers);
        self.pages.write().entry(k).or_insert_with(|| Recorded { body: body.clone(), preference_applied: preference_applied.cloned() });
    }

    /// The recorded answer for this request (in `Serve` mode only).
    pub fn lookup(&self, path_and_query: &str, headers: &HeaderMap) -> Option<Recorded> {
        if self.mode() != ReplayMode::Serve {
            return None;
        }
        let hit = self.pages.read().get(&key(path_and_query, headers)).cloned();
        if hit.is_some() {
            self.served.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Requests answered from the recording so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Number of recorded pages and their total body bytes.
    pub fn size(&self) -> (usize, usize) {
        let p = self.pages.read();
        (p.len(), p.values().map(|r| r.body.len()).sum())
    }

    /// Every recorded request, sorted by key (for a plain HTTP client to fetch them all).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let p = self.pages.read();
        let mut out: Vec<RecordedRequest> = p
            .iter()
            .map(|(k, r)| {
                let mut parts = k.split('\n');
                let path_and_query = parts.next().unwrap_or_default().to_string();
                RecordedRequest { path_and_query, prefer: parts.map(str::to_string).collect(), body_len: r.body.len() }
            })
            .collect();
        out.sort_by(|a, b| a.path_and_query.cmp(&b.path_and_query));
        out
    }

    /// Forgets every recorded page.
    pub fn clear(&self) {
        self.pages.write().clear();
    }
}
