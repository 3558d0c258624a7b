//! A memory budget for responses and pages in flight, shared by every partition of a run.
//!
//! Contract:
//! - A fetch task reserves what its next response is expected to take before the request
//!   ([`PageBudget::reserve`]: its body and the batch made from it, sized from what is known —
//!   the partition's previous page, the folder's item count, the kind of round). Most pages of an
//!   incremental sweep are a few hundred bytes, so a reservation is usually a few KiB and many
//!   requests fit in the budget at once.
//! - While the body streams in, the source grows the lease to what has arrived
//!   ([`PageLease::grow`], e.g. to `Content-Length` before reading, then chunk by chunk), waiting
//!   when the budget is in use. After normalizing, the fetch task keeps only the batch's share
//!   ([`PageLease::resize`], never waits); the lease travels with the page to the write task and
//!   is released when the page has been handed to the Parquet writer.
//! - A write task accounts for the encoded bytes its open file buffers with a lease of its own
//!   ([`PageLease::hold_buffered`]); when it cannot grow, the write task writes its file out to
//!   storage and the lease shrinks.
//! - So responses being read, pages queued and being written, and files being encoded, across
//!   all partitions, hold at most `bytes` of budget whatever the number of partitions and the
//!   size of the backfill. A single response larger than a quarter of the budget (beyond what
//!   its lease held when it started growing) still goes through, the excess unaccounted.
//!
//! # Why it cannot deadlock
//!
//! Let `T` be the budget and `H` what all leases hold. Budget is taken under three rules:
//!
//! | rule | who | takes `n` only when | waits? |
//! |---|---|---|---|
//! | **A** | a write task's buffers; a response growing while there is room | `H + n ≤ T/2` | never |
//! | **B** | a fetch's reservation before its request (`n ≤ T/4`) | `H + n ≤ 3T/4` | yes, holding nothing |
//! | **C** | *the grower*: the one response allowed to wait for more while holding some | `H + n ≤ T`, and it grows by at most `T/4` in total | yes |
//!
//! A response that cannot grow under rule A queues for the grower role (one async mutex) and
//! keeps it until its fetch task resizes the lease to the batch ([`PageLease::resize`]) or drops
//! it. The holders that may be stuck — responses waiting for the grower role — only ever took
//! under rules A and B, each of which leaves `H ≤ 3T/4`, so together they hold at most `3T/4`.
//! Everything else drains without waiting for budget: pages in channels are written, write
//! leases shrink when their files are rolled, and earlier growers' batches are written too. So
//! the grower eventually finds `H` at most `3T/4` plus its own growth, and its growth is capped at
//! `T/4`: it always gets what it waits for. Reservations hold nothing while they wait, so they
//! block no one. Waiters are woken on every release and re-check; there is no FIFO order, so a
//! large reservation may wait while smaller ones pass (it never waits for ever while pages drain).
//!
//! The budget also carries the planner's size hints ([`PageBudget::expect_items`]): a baseline
//! round's first request reserves for the folder's item count instead of a guess.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedMutexGuard};

use crate::model::PartitionKey;

/// Budget unit: KiB.
const UNIT: u64 = 1024;

/// Expected memory of one item of a response: about 2 KB of JSON on the wire (the stored fields
/// of a message) and as much in Arrow.
pub const ITEM_BYTES: u64 = 4096;
/// A page's memory beyond its items: the envelope, links, the batch's empty columns.
pub const PAGE_OVERHEAD_BYTES: u64 = 8 * 1024;

struct Inner {
    /// `T`, in KiB.
    total: u64,
    /// `H`, in KiB.
    held: Mutex<u64>,
    freed: Notify,
    grower: Arc<tokio::sync::Mutex<()>>,
    /// Expected first-response bytes of partitions about to start a round.
    expected: Mutex<HashMap<PartitionKey, u64>>,
}

impl Inner {
    fn half(&self) -> u64 {
        self.total - self.total / 2
    }

    fn three_quarters(&self) -> u64 {
        self.total - self.total / 4
    }

    fn quarter(&self) -> u64 {
        (self.total / 4).max(1)
    }

    /// Take `n` if `H + n ≤ limit`.
    fn try_take(&self, n: u64, limit: u64) -> bool {
        let mut held = self.held.lock();
        if *held + n <= limit {
            *held += n;
            true
        } else {
            false
        }
    }

    /// Wait until `H + n ≤ limit`, then take `n`.
    async fn take(&self, n: u64, limit: u64) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait wakes us.
            freed.as_mut().enable();
            if self.try_take(n, limit) {
                return;
            }
            freed.await;
        }
    }

    fn give(&self, n: u64) {
        if n == 0 {
            return;
        }
        {
            let mut held = self.held.lock();
            *held = held.saturating_sub(n);
        }
        self.freed.notify_waiters();
    }
}

/// The run's memory budget; clones share it.
#[derive(Clone)]
pub struct PageBudget {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PageBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBudget").field("total_kib", &self.inner.total).field("held_kib", &*self.inner.held.lock()).finish()
    }
}

/// Part of the budget held by one response, page or write task. Released on drop.
pub struct PageLease {
    inner: Arc<Inner>,
    /// KiB held.
    held: AtomicU64,
    /// Set while this lease holds the grower role (rule C).
    growth: Mutex<Option<Growth>>,
}

struct Growth {
    _role: OwnedMutexGuard<()>,
    /// KiB held when the role was taken: rule C grows the lease to at most `base + T/4`.
    base: u64,
}

impl std::fmt::Debug for PageLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageLease").field("held_kib", &self.held_kib()).field("grower", &self.growth.lock().is_some()).finish()
    }
}

impl PageBudget {
    /// A budget of `bytes` (at least 4 KiB, so that every rule can take a unit).
    pub fn new(bytes: u64) -> Self {
        let total = (bytes / UNIT).max(4);
        PageBudget {
            inner: Arc::new(Inner {
                total,
                held: Mutex::new(0),
                freed: Notify::new(),
                grower: Arc::new(tokio::sync::Mutex::new(())),
                expected: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Wait until `bytes` (capped at a quarter of the budget) can be held under rule B, and
    /// hold them.
    pub async fn reserve(&self, bytes: u64) -> PageLease {
        let n = units(bytes).min(self.inner.quarter());
        self.inner.take(n, self.inner.three_quarters()).await;
        PageLease { inner: self.inner.clone(), held: AtomicU64::new(n), growth: Mutex::new(None) }
    }

    /// A lease holding nothing yet (a write task's, see [`PageLease::hold_buffered`]).
    pub fn empty_lease(&self) -> PageLease {
        PageLease { inner: self.inner.clone(), held: AtomicU64::new(0), growth: Mutex::new(None) }
    }

    /// KiB free right now (tests, progress).
    pub fn available_kib(&self) -> usize {
        (self.inner.total - (*self.inner.held.lock()).min(self.inner.total)) as usize
    }

    /// The budget, in KiB.
    pub fn total_kib(&self) -> usize {
        self.inner.total as usize
    }

    /// The planner's hint: the next round of `partition` starts on a collection of `items`
    /// items (a folder's `totalItemCount`), so its first response takes about
    /// `items × ITEM_BYTES` (capped by the fetch at a full page).
    pub fn expect_items(&self, partition: &PartitionKey, items: u64) {
        let bytes = items.saturating_mul(ITEM_BYTES).saturating_add(PAGE_OVERHEAD_BYTES);
        self.inner.expected.lock().insert(partition.clone(), bytes);
    }

    /// The hint left for `partition`, once.
    pub fn take_expected(&self, partition: &PartitionKey) -> Option<u64> {
        self.inner.expected.lock().remove(partition)
    }
}

impl PageLease {
    /// Hold at least `bytes` for a response whose body is arriving: under rule A when there is
    /// room, otherwise as the grower (rule C), waiting for pages in flight to be written. Growth
    /// as the grower stops at a quarter of the budget over what the lease held when it took the
    /// role; beyond that the response goes on unaccounted. Never shrinks the lease.
    pub async fn grow(&self, bytes: u64) {
        let want = units(bytes);
        let held = self.held_kib() as u64;
        if want <= held {
            return;
        }
        if self.growth.lock().is_none() {
            if self.inner.try_take(want - held, self.inner.half()) {
                self.held.fetch_add(want - held, Ordering::Relaxed);
                return;
            }
            let role = self.inner.grower.clone().lock_owned().await;
            *self.growth.lock() = Some(Growth { _role: role, base: held });
        }
        let cap = self.growth.lock().as_ref().map_or(want, |g| g.base + self.inner.quarter());
        let target = want.min(cap);
        if target > held {
            self.inner.take(target - held, self.inner.total).await;
            self.held.fetch_add(target - held, Ordering::Relaxed);
        }
    }

    /// The response is done: hold `bytes` (the batch made from it) instead, giving back the
    /// surplus, or taking more only where rule A allows it (never waits). Gives up the grower
    /// role.
    pub fn resize(&mut self, bytes: u64) {
        *self.growth.lock() = None;
        let want = units(bytes);
        let held = self.held_kib() as u64;
        if want < held {
            self.held.store(want, Ordering::Relaxed);
            self.inner.give(held - want);
        } else if want > held {
            // As much as fits under rule A.
            let room = {
                let mut h = self.inner.held.lock();
                let room = self.inner.half().saturating_sub(*h).min(want - held);
                *h += room;
                room
            };
            self.held.fetch_add(room, Ordering::Relaxed);
        }
    }

    /// Account for `bytes` buffered by a write task (rule A: grows only while at least half the
    /// budget stays free); returns false when the lease cannot cover `bytes` (flush to storage,
    /// then call again with what is still buffered).
    pub fn hold_buffered(&mut self, bytes: u64) -> bool {
        let want = if bytes == 0 { 0 } else { units(bytes) };
        let held = self.held_kib() as u64;
        if want <= held {
            self.held.store(want, Ordering::Relaxed);
            self.inner.give(held - want);
            return true;
        }
        if self.inner.try_take(want - held, self.inner.half()) {
            self.held.store(want, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// KiB held.
    pub fn held_kib(&self) -> usize {
        self.held.load(Ordering::Relaxed) as usize
    }
}

impl Drop for PageLease {
    fn drop(&mut self) {
        self.inner.give(*self.held.get_mut());
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sleeping this long on paused time (`start_paused`) returns only once every other task is
    /// blocked: a task still unfinished then is waiting, not merely not yet scheduled.
    const UNTIL_IDLE: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn reservations_wait_under_three_quarters_and_resize_without_waiting() {
        let budget = PageBudget::new(100 * 1024);
        let mut a = budget.reserve(20 * 1024).await;
        assert_eq!(budget.available_kib(), 80);
        // Capped at a quarter of the budget.
        let b = budget.reserve(40 * 1024).await;
        assert_eq!((b.held_kib(), budget.available_kib()), (25, 55));
        // Shrinks to the real size.
        a.resize(10 * 1024);
        assert_eq!((a.held_kib(), budget.available_kib()), (10, 65));
        let c = budget.reserve(25 * 1024).await;
        assert_eq!(budget.available_kib(), 40);
        // 60 KiB held: another 20 would pass the three-quarter line, so the reservation waits.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(20 * 1024).await }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!waiting.is_finished(), "60 + 20 > 75: the reservation waits for a release");
        // Growing by resize takes only what rule A allows (up to half), never waits: none now.
        a.resize(30 * 1024);
        assert_eq!(a.held_kib(), 10);
        drop(c);
        let d = waiting.await.unwrap();
        assert_eq!((d.held_kib(), budget.available_kib()), (20, 45));
    }

    #[tokio::test]
    async fn write_leases_keep_half_the_budget_free() {
        let budget = PageBudget::new(100 * 1024);
        let mut w1 = budget.empty_lease();
        let mut w2 = budget.empty_lease();
        assert!(w1.hold_buffered(30 * 1024));
        assert!(!w2.hold_buffered(30 * 1024), "only 20 KiB may go to writers now");
        assert!(w2.hold_buffered(20 * 1024));
        assert_eq!(budget.available_kib(), 50);
        // A fetch still gets its reservation (up to the three-quarter line).
        let page = budget.reserve(25 * 1024).await;
        assert_eq!(page.held_kib(), 25);
        // Flushing shrinks a write lease.
        assert!(w1.hold_buffered(0));
        assert_eq!((w1.held_kib(), budget.available_kib()), (0, 55));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_grows_under_half_then_as_the_one_grower() {
        let budget = PageBudget::new(100 * 1024);
        let mut a = budget.reserve(4 * 1024).await;
        // Room under half: grows at once (rule A).
        a.grow(40 * 1024).await;
        assert_eq!((a.held_kib(), budget.available_kib()), (40, 60));
        let c = Arc::new(budget.reserve(1024).await);
        let b = budget.reserve(25 * 1024).await;
        assert_eq!(budget.available_kib(), 34);
        // No room under half: a takes the grower role (rule C), and its growth stops at a quarter
        // of the budget over what it held then (40 + 25); the rest would go unaccounted.
        a.grow(90 * 1024).await;
        assert_eq!((a.held_kib(), budget.available_kib()), (65, 9));
        // Another response that cannot grow under half waits for the grower role.
        let c_grows = tokio::spawn({
            let c = c.clone();
            async move { c.grow(20 * 1024).await }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!c_grows.is_finished(), "a holds the grower role");
        assert_eq!(c.held_kib(), 1);
        // a's page is normalized: it keeps its batch and gives up the role. c is the grower now,
        // and waits for pages to be written: 86 + 19 > 100.
        a.resize(60 * 1024);
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!c_grows.is_finished(), "c waits until b's page is written");
        assert_eq!(budget.available_kib(), 14);
        drop(b);
        c_grows.await.unwrap();
        assert_eq!((c.held_kib(), budget.available_kib()), (20, 20));
    }

    #[tokio::test(start_paused = true)]
    async fn hints_are_taken_once() {
        let budget = PageBudget::new(1 << 20);
        let part = PartitionKey::new("m", crate::model::Stream::Messages, Some("f".into()));
        budget.expect_items(&part, 3);
        assert_eq!(budget.take_expected(&part), Some(3 * ITEM_BYTES + PAGE_OVERHEAD_BYTES));
        assert_eq!(budget.take_expected(&part), None);
    }

    /// Many fetch tasks with small reservations and responses that turn out large, and write
    /// tasks that hold buffers: every response completes (no deadlock, whatever the order the
    /// runtime picks), and the budget never holds more than its total.
    #[tokio::test(start_paused = true)]
    async fn growing_responses_never_deadlock_and_never_exceed_the_budget() {
        let total_kib = 256u64;
        let budget = PageBudget::new(total_kib * 1024);
        let peak = Arc::new(AtomicU64::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PageLease>(4);
        // The write task: holds each page a while, buffers some of it, rolls when refused.
        let writer = tokio::spawn({
            let budget = budget.clone();
            async move {
                let mut buffers = budget.empty_lease();
                let mut pages = 0u32;
                while let Some(page) = rx.recv().await {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    let want = (buffers.held_kib() as u64 + page.held_kib() as u64 / 2) * 1024;
                    if !buffers.hold_buffered(want) {
                        assert!(buffers.hold_buffered(0));
                    }
                    drop(page);
                    pages += 1;
                }
                pages
            }
        });
        let mut fetchers = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for task in 0..24u64 {
            let (budget, tx, peak) = (budget.clone(), tx.clone(), peak.clone());
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mut rng = seed ^ task;
            fetchers.push(tokio::spawn(async move {
                for _ in 0..20 {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Reserve 1–8 KiB, then the body turns out 1–120 KiB, arriving in 4 chunks.
                    let mut lease = budget.reserve(((rng >> 33) % 8 + 1) * 1024).await;
                    let body = ((rng >> 40) % 120 + 1) * 1024;
                    for chunk in 1..=4 {
                        lease.grow(body * chunk / 4).await;
                        peak.fetch_max((budget.total_kib() - budget.available_kib()) as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis((rng >> 50) % 3)).await;
                    }
                    lease.resize(body / 2);
                    if tx.send(lease).await.is_err() {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        for f in fetchers {
            f.await.unwrap();
        }
        assert_eq!(writer.await.unwrap(), 24 * 20, "every page was written");
        assert_eq!(budget.available_kib() as u64, total_kib, "everything was released");
        let peak = peak.load(Ordering::Relaxed);
        assert!(peak <= total_kib, "held {peak} KiB of {total_kib}");
        assert!(peak > total_kib / 2, "the test did push the budget (peak {peak} KiB)");
    }
}
