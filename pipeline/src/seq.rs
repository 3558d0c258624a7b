//! `_seq`: a number that orders every row ever written for a key.
//!
//! Contract: of two rows with the same key, the one observed later has the larger `_seq`,
//! within a run and across runs. Values are nanoseconds since the Unix epoch, made strictly
//! increasing within the process, and never below a floor read from the last commit (so a clock
//! that steps back between runs still cannot reorder rows).

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug)]
pub struct SeqGen {
    last: AtomicI64,
}

impl SeqGen {
    /// Start at the wall clock, or just above `floor` if the clock is behind it.
    pub fn new(floor: i64) -> Self {
        let now = now_nanos();
        SeqGen { last: AtomicI64::new(now.max(floor)) }
    }

    /// The next value: greater than every value handed out before, and ≥ the wall clock.
    pub fn next(&self) -> i64 {
        let now = now_nanos();
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = if now > cur { now } else { cur + 1 };
            match self.last.compare_exchange_weak(cur, candidate, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return candidate,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reserve `n` consecutive values and return the first (one atomic operation per page).
    pub fn next_block(&self, n: usize) -> i64 {
        if n == 0 {
            return self.last.load(Ordering::Relaxed) + 1;
        }
        let now = now_nanos();
        let n = n as i64;
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let first = if now > cur { now } else { cur + 1 };
            match self.last.compare_exchange_weak(cur, first + n - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return first,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The largest value handed out so far.
    pub fn high_water(&self) -> i64 {
        self.last.load(Ordering::Relaxed)
    }
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX / 2)
}
