//! The request log: every Graph request the simulator answered, with who sent it, which mailbox
//! it addressed, when it started and ended, and the status it got — so a test (or an operator
//! running `outlake sim --log-requests`) can trace a request to the worker that sent it and check
//! that no mailbox was served to two workers at the same time.
//!
//! Contract:
//! - One [`RequestRecord`] per request under `/v1.0/` (identity-platform and `/_sim/` requests are
//!   not Graph requests and are not logged), in the order the requests **ended**, each with the
//!   sequence number of its arrival. A request whose client went away before the answer was
//!   written (the handler was dropped) is recorded with status [`CLIENT_CLOSED`] (499, nginx's
//!   "client closed request"), so a killed worker's last requests still show.
//! - `mailbox` is the user id the request addressed: `/users/{id|upn}/…` resolved to the id
//!   (the key as given when no user has it), `/me/…` resolved through the bearer token's
//!   signed-in user; `None` for the `/users` listing and for paths that name no mailbox.
//! - `client_request_id` and `user_agent` are the headers as sent; `run_id` is parsed from a
//!   User-Agent of the form `outlake/<version> (run <run id>)` ([`run_id_of`]).
//! - Instants are microseconds since the simulator started, on the monotonic clock: `start_us`
//!   when the request reached the router, `end_us` when its answer was produced (a streamed body
//!   may still be on the wire after that). A request is in flight on `[start_us, end_us)`.
//! - Memory is bounded: at most `capacity` records are kept ([`DEFAULT_CAPACITY`], about 300
//!   bytes each, so ≈ 30 MB when full); when full, the oldest record is dropped and counted in
//!   [`RequestLog::dropped`]. An analysis of a log that dropped records covers only what it kept;
//!   tests that need the whole history raise the capacity
//!   ([`crate::Simulator::set_request_log_capacity`]) or check `dropped == 0`. Capacity 0 turns
//!   the log off.
//!
//! Served as JSON by `GET /_sim/requests` (a [`RequestLog`]); `POST /_sim/requests/clear`
//! empties it. In process: [`crate::Simulator::request_log`].
//!
//! Analyses, pure functions of a [`RequestLog`]: [`RequestLog::overlapping_workers`] (mailboxes
//! served to two workers at overlapping times — a worker is the run id, or the User-Agent when
//! it names no run) and [`RequestLog::max_in_flight`] (per mailbox, the most requests in flight
//! at once, whoever sent them, throttled ones included: what the wire saw).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::{Request, State as AxState};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::identity::Principal;
use crate::state::Shared;

/// Records kept before the oldest is dropped.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// The status recorded for a request whose client went away before it was answered.
pub const CLIENT_CLOSED: u16 = 499;

/// One Graph request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival order, from 0.
    pub seq: u64,
    /// The user id addressed; `None` for the `/users` listing and paths naming no mailbox.
    pub mailbox: Option<String>,
    pub client_request_id: Option<String>,
    pub user_agent: Option<String>,
    /// Parsed from the User-Agent (`outlake/<version> (run <run id>)`).
    pub run_id: Option<String>,
    /// Microseconds since the simulator started.
    pub start_us: u64,
    pub end_us: u64,
    /// The HTTP status answered ([`CLIENT_CLOSED`] when the client went away first).
    pub status: u16,
}

impl RequestRecord {
    /// Who sent it: the run id, else the User-Agent, else `"(no user agent)"`.
    pub fn worker(&self) -> &str {
        self.run_id.as_deref().or(self.user_agent.as_deref()).unwrap_or("(no user agent)")
    }
}

/// Two workers served the same mailbox at the same time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overlap {
    pub mailbox: String,
    /// The worker whose request was in flight, and the worker whose request started meanwhile.
    pub first: String,
    pub second: String,
    /// When the second worker's request started (µs since the simulator started).
    pub at_us: u64,
}

/// A snapshot of the log (the body of `GET /_sim/requests`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    /// Most records kept.
    pub capacity: usize,
    /// Records dropped because the log was full (the oldest go first).
    pub dropped: u64,
    /// In arrival order (`seq`).
    pub entries: Vec<RequestRecord>,
}

impl RequestLog {
    /// Every run id seen.
    pub fn run_ids(&self) -> BTreeSet<String> {
        self.entries.iter().filter_map(|r| r.run_id.clone()).collect()
    }

    /// The records of one mailbox (user id).
    pub fn of_mailbox<'a>(&'a self, mailbox: &'a str) -> impl Iterator<Item = &'a RequestRecord> + 'a {
        self.entries.iter().filter(move |r| r.mailbox.as_deref() == Some(mailbox))
    }

    /// Mailboxes that had requests of two different workers ([`RequestRecord::worker`]) in
    /// flight at the same time: one [`Overlap`] per such mailbox (the first found, by start),
    /// sorted by mailbox. Requests that only touch (one ends at the instant the other starts) do
    /// not overlap.
    pub fn overlapping_workers(&self) -> Vec<Overlap> {
        let mut out = Vec::new();
        for (mailbox, mut recs) in self.by_mailbox() {
            recs.sort_by_key(|r| (r.start_us, r.end_us));
            // Latest end so far per worker: a later start before another worker's latest end
            // overlaps it. Workers per mailbox are few, so the scan is cheap.
            let mut latest: HashMap<&str, u64> = HashMap::new();
            'recs: for r in recs {
                let w = r.worker();
                for (&other, &end) in &latest {
                    if other != w && end > r.start_us && r.end_us > r.start_us {
                        out.push(Overlap { mailbox: mailbox.to_string(), first: other.to_string(), second: w.to_string(), at_us: r.start_us });
                        break 'recs;
                    }
                }
                let e = latest.entry(w).or_default();
                *e = (*e).max(r.end_us);
            }
        }
        out
    }

    /// Per mailbox, the most requests in flight at once (all workers together, throttled
    /// requests included).
    pub fn max_in_flight(&self) -> BTreeMap<String, usize> {
        self.by_mailbox()
            .into_iter()
            .map(|(mailbox, recs)| {
                // Ends sort before starts at the same instant: intervals are half-open.
                let mut events: Vec<(u64, i8)> = recs.iter().flat_map(|r| [(r.start_us, 1i8), (r.end_us, -1i8)]).collect();
                events.sort_unstable();
                let (mut now, mut max) = (0i64, 0i64);
                for (_, d) in events {
                    now += d as i64;
                    max = max.max(now);
                }
                (mailbox.to_string(), max as usize)
            })
            .collect()
    }

    fn by_mailbox(&self) -> BTreeMap<&str, Vec<&RequestRecord>> {
        let mut m: BTreeMap<&str, Vec<&RequestRecord>> = BTreeMap::new();
        for r in &self.entries {
            if let Some(mb) = r.mailbox.as_deref() {
                m.entry(mb).or_default().push(r);
            }
        }
        m
    }
}

/// The run id in a User-Agent of the form `outlake/<version> (run <run id>)`: the text after
/// `(run ` up to the next `)`, `;` or space.
pub fn run_id_of(user_agent: &str) -> Option<String> {
    let rest = &user_agent[user_agent.find("(run ")? + 5..];
    let id = rest.split([')', ';', ' ']).next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The live log.
pub struct Recorder {
    t0: Instant,
    echo: AtomicBool,
    inner: Mutex<Inner>,
}

struct Inner {
    capacity: usize,
    dropped: u64,
    next_seq: u64,
    entries: VecDeque<RequestRecord>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            t0: Instant::now(),
            echo: AtomicBool::new(false),
            inner: Mutex::new(Inner { capacity: DEFAULT_CAPACITY, dropped: 0, next_seq: 0, entries: VecDeque::new() }),
        }
    }
}

impl Recorder {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// A copy of what is kept, in arrival order.
    pub fn snapshot(&self) -> RequestLog {
        let inner = self.inner.lock();
        let mut entries: Vec<RequestRecord> = inner.entries.iter().cloned().collect();
        entries.sort_by_key(|r| r.seq);
        RequestLog { capacity: inner.capacity, dropped: inner.dropped, entries }
    }

    /// Forgets every record (sequence numbers go on).
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.entries.clear();
        inner.dropped = 0;
    }

    /// Keeps at most `capacity` records from now on (0: log nothing); drops the oldest beyond it.
    pub fn set_capacity(&self, capacity: usize) {
        let mut inner = self.inner.lock();
        inner.capacity = capacity;
        while inner.entries.len() > capacity {
            inner.entries.pop_front();
            inner.dropped += 1;
        }
    }

    /// Also write each record as an `info` log line (`outlake sim --log-requests`).
    pub fn set_echo(&self, on: bool) {
        self.echo.store(on, Ordering::Relaxed);
    }

    fn begin(&self) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_seq += 1;
        inner.next_seq - 1
    }

    fn push(&self, r: RequestRecord) {
        if self.echo.load(Ordering::Relaxed) {
            tracing::info!(
                seq = r.seq,
                mailbox = r.mailbox.as_deref().unwrap_or("-"),
                status = r.status,
                ms = (r.end_us.saturating_sub(r.start_us)) as f64 / 1000.0,
                run_id = r.run_id.as_deref().unwrap_or("-"),
                client_request_id = r.client_request_id.as_deref().unwrap_or("-"),
                user_agent = r.user_agent.as_deref().unwrap_or("-"),
                "graph request"
            );
        }
        let mut inner = self.inner.lock();
        if inner.capacity == 0 {
            return;
        }
        if inner.entries.len() >= inner.capacity {
            inner.entries.pop_front();
            inner.dropped += 1;
        }
        inner.entries.push_back(r);
    }
}

/// What the logging middleware needs: the server state (to resolve mailboxes) and the log.
#[derive(Clone)]
pub(crate) struct Logged {
    pub shared: Arc<Shared>,
    pub log: Arc<Recorder>,
}

/// Records the request when dropped: after the answer, or when the client went away first.
struct Pending {
    log: Arc<Recorder>,
    record: Option<RequestRecord>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.end_us = self.log.now_us();
            self.log.push(r);
        }
    }
}

/// The middleware in front of every route: logs the requests under `/v1.0/`.
pub(crate) async fn middleware(AxState(l): AxState<Logged>, req: Request, next: Next) -> Response {
    let Some(record) = begin(&l, &req) else { return next.run(req).await };
    let mut pending = Pending { log: l.log.clone(), record: Some(record) };
    let resp = next.run(req).await;
    if let Some(r) = pending.record.as_mut() {
        r.status = resp.status().as_u16();
    }
    drop(pending);
    resp
}

/// The record of a Graph request that starts now (its status until answered: [`CLIENT_CLOSED`]);
/// `None` for other requests, or when the log is off.
fn begin(l: &Logged, req: &Request) -> Option<RequestRecord> {
    let path = req.uri().path();
    let graph = path.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("/v1.0/")) || path.eq_ignore_ascii_case("/v1.0");
    if !graph || l.log.inner.lock().capacity == 0 {
        return None;
    }
    let start_us = l.log.now_us();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let user_agent = header(header::USER_AGENT.as_str());
    Some(RequestRecord {
        seq: l.log.begin(),
        mailbox: mailbox_of(&l.shared, path, req.headers()),
        client_request_id: header("client-request-id"),
        run_id: user_agent.as_deref().and_then(run_id_of),
        user_agent,
        start_us,
        end_us: start_us,
        status: CLIENT_CLOSED,
    })
}

/// The user id a Graph path addresses (see the module contract).
fn mailbox_of(sh: &Shared, path: &str, headers: &axum::http::HeaderMap) -> Option<String> {
    let segs = crate::graph::segments(path);
    let st = sh.state.lock();
    match segs.get(1).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("users") => {
            let key = segs.get(2)?;
            Some(st.world.user_index(key).map(|ui| st.world.users[ui].id.clone()).unwrap_or_else(|| key.clone()))
        }
        Some("me") => {
            let bearer = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let token = bearer.get(7..)?.trim();
            match &st.auth.access.get(token)?.principal {
                Principal::User { user, .. } => st.world.users.get(*user).map(|u| u.id.clone()),
                Principal::App { .. } => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, mailbox: &str, run: &str, start_us: u64, end_us: u64) -> RequestRecord {
        RequestRecord {
            seq,
            mailbox: Some(mailbox.into()),
            client_request_id: None,
            user_agent: Some(format!("outlake/0.1.0 (run {run})")),
            run_id: Some(run.into()),
            start_us,
            end_us,
            status: 200,
        }
    }

    fn log(entries: Vec<RequestRecord>) -> RequestLog {
        RequestLog { capacity: 10, dropped: 0, entries }
    }

    #[test]
    fn run_id_is_read_from_the_user_agent() {
        assert_eq!(run_id_of("outlake/0.4.0 (run 20260101T000000Z-0a1b2c3d)").as_deref(), Some("20260101T000000Z-0a1b2c3d"));
        assert_eq!(run_id_of("outlake/0.4.0 (run r1; shard 0/4)").as_deref(), Some("r1"));
        assert_eq!(run_id_of("outlake/0.4.0"), None);
        assert_eq!(run_id_of("curl/8.0 (run )"), None);
    }

    #[test]
    fn overlaps_are_between_workers_not_within_one() {
        // One worker's requests overlap each other: that is concurrency, not a collision.
        let same = log(vec![rec(0, "m", "a", 0, 100), rec(1, "m", "a", 50, 150)]);
        assert_eq!(same.overlapping_workers(), vec![]);
        assert_eq!(same.max_in_flight()["m"], 2);
        // Two workers one after the other, touching at 100: no overlap.
        let touching = log(vec![rec(0, "m", "a", 0, 100), rec(1, "m", "b", 100, 200)]);
        assert_eq!(touching.overlapping_workers(), vec![]);
        assert_eq!(touching.max_in_flight()["m"], 1);
        // b starts while a's long request is still in flight, after a's later short one began.
        let crossing = log(vec![rec(0, "m", "a", 0, 500), rec(1, "m", "a", 10, 20), rec(2, "m", "b", 300, 310), rec(3, "n", "b", 0, 1000)]);
        assert_eq!(crossing.overlapping_workers(), vec![Overlap { mailbox: "m".into(), first: "a".into(), second: "b".into(), at_us: 300 }]);
        assert_eq!(crossing.max_in_flight(), BTreeMap::from([("m".to_string(), 2), ("n".to_string(), 1)]));
    }

    #[test]
    fn the_log_keeps_the_newest_records_up_to_its_capacity() {
        let r = Recorder::default();
        r.set_capacity(2);
        for i in 0..5 {
            r.push(rec(i, "m", "a", i, i + 1));
        }
        let snap = r.snapshot();
        assert_eq!(snap.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(snap.dropped, 3);
        r.set_capacity(0);
        r.push(rec(9, "m", "a", 9, 10));
        assert_eq!(r.snapshot().entries.len(), 0);
    }
}
