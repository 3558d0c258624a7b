//! A memory budget for pages in flight, shared by every partition of a run.
//!
//! Contract:
//! - A fetch task reserves its page's expected size before the request ([`PageBudget::reserve`]
//!   waits while other pages hold the budget) and resizes the lease to the normalized batch's
//!   real size after it ([`PageLease::resize`] never waits: a page larger than expected may
//!   overdraw, so no task can deadlock holding half a reservation).
//! - The lease travels with the page to the write task and is released when the page has been
//!   handed to the Parquet writer.
//! - A write task accounts for the encoded bytes its open file buffers with a lease of its own
//!   ([`PageLease::hold_buffered`]), which may only grow while half of the budget stays free; when
//!   it cannot grow, the write task writes its file out to storage and the lease shrinks. Write
//!   leases thus never hold more than half the budget, and a fetch (capped at half the budget)
//!   always gets its reservation once pages in flight are written: no deadlock.
//! - So the pages fetched, queued and being written, and the files being encoded, across all partitions, use about `bytes`
//!   of memory whatever the number of partitions and the size of the backfill; a single page
//!   larger than the whole budget still goes through (alone).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Budget unit: permits are KiB.
const UNIT: u64 = 1024;

#[derive(Debug, Clone)]
pub struct PageBudget {
    sem: Arc<Semaphore>,
    total: u32,
}

/// Part of the budget held by one page.
#[derive(Debug)]
pub struct PageLease {
    sem: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    total: u32,
}

impl PageBudget {
    pub fn new(bytes: u64) -> Self {
        let total = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64 / 2) as u32;
        PageBudget { sem: Arc::new(Semaphore::new(total as usize)), total }
    }

    /// Wait until `bytes` (capped at half the budget) are free and hold them.
    pub async fn reserve(&self, bytes: u64) -> PageLease {
        let n = units(bytes).min((self.total / 2).max(1));
        let permit = self.sem.clone().acquire_many_owned(n).await.ok();
        PageLease { sem: self.sem.clone(), permit, total: self.total }
    }

    /// A lease holding nothing yet (a write task's, see [`PageLease::hold_buffered`]).
    pub fn empty_lease(&self) -> PageLease {
        PageLease { sem: self.sem.clone(), permit: None, total: self.total }
    }

    /// KiB free right now (tests, progress).
    pub fn available_kib(&self) -> usize {
        self.sem.available_permits()
    }
}

impl PageLease {
    /// Hold `bytes` instead of the reservation: give back the surplus, or take what more is
    /// free without waiting.
    pub fn resize(&mut self, bytes: u64) {
        let want = units(bytes).min(self.total);
        let Some(permit) = self.permit.as_mut() else { return };
        let held = permit.num_permits() as u32;
        if want < held {
            drop(permit.split((held - want) as usize));
        } else if want > held {
            let extra = (want - held).min(self.sem.available_permits() as u32);
            if extra > 0
                && let Ok(more) = self.sem.clone().try_acquire_many_owned(extra)
            {
                permit.merge(more);
            }
        }
    }

    /// Account for `bytes` buffered by a write task. Grows only while at least half the budget
    /// stays free; returns false when the lease cannot cover `bytes` (flush to storage, then
    /// call again with what is still buffered).
    pub fn hold_buffered(&mut self, bytes: u64) -> bool {
        let want = if bytes == 0 { 0 } else { units(bytes) };
        let held = self.held_kib() as u32;
        if want <= held {
            if want < held
                && let Some(p) = self.permit.as_mut()
            {
                if want == 0 {
                    self.permit = None;
                } else {
                    drop(p.split((held - want) as usize));
                }
            }
            return true;
        }
        let free = self.sem.available_permits() as u32;
        let spare = free.saturating_sub(self.total - self.total / 2);
        let extra = want - held;
        if extra > spare {
            return false;
        }
        match self.sem.clone().try_acquire_many_owned(extra) {
            Ok(more) => {
                match self.permit.as_mut() {
                    Some(p) => p.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// KiB held.
    pub fn held_kib(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

fn units(bytes: u64) -> u32 {
    bytes.div_ceil(UNIT).clamp(1, u32::MAX as u64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sleeping this long on paused time (`start_paused`) returns only once every other task is
    /// blocked: a task still unfinished then is waiting, not merely not yet scheduled.
    const UNTIL_IDLE: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn reservations_wait_for_released_pages_and_resize_without_waiting() {
        let budget = PageBudget::new(100 * 1024);
        let mut a = budget.reserve(40 * 1024).await;
        assert_eq!(budget.available_kib(), 60);
        // Shrinks to the real size.
        a.resize(30 * 1024);
        assert_eq!((a.held_kib(), budget.available_kib()), (30, 70));
        let b = budget.reserve(50 * 1024).await;
        assert_eq!(budget.available_kib(), 20);
        // Growing takes only what is free, never waits.
        a.resize(80 * 1024);
        assert_eq!((a.held_kib(), budget.available_kib()), (50, 0));
        // A reservation waits until a page is released.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(20 * 1024).await }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!waiting.is_finished(), "20 KiB are not free until a page is released");
        assert_eq!(budget.available_kib(), 0);
        drop(b);
        let c = waiting.await.unwrap();
        assert_eq!((c.held_kib(), budget.available_kib()), (20, 30));
        // A page larger than the whole budget is capped at half of it, not stuck.
        drop((a, c));
        let huge = budget.reserve(10 << 30).await;
        assert_eq!(huge.held_kib(), 50);
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
        // A fetch still gets half the budget.
        let page = budget.reserve(80 * 1024).await;
        assert_eq!(page.held_kib(), 50);
        // Flushing shrinks a write lease.
        assert!(w1.hold_buffered(0));
        assert_eq!((w1.held_kib(), budget.available_kib()), (0, 30));
    }
}
