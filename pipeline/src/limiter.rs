//! Per-mailbox request limiter: a token bucket, a pause switch, two in-flight caps, and an
//! optional global request rate.
//!
//! Contract (Graph-agnostic: the connector decides what the numbers are):
//! - **Window guarantee.** Each mailbox has a token bucket ([`WindowBucket`]) sized so that no
//!   interval of length `window` — whatever its alignment — ever admits more than `limit`
//!   requests: with burst `b` and one token every `τ`, a closed interval of length `T` admits at
//!   most `b + ⌊T/τ⌋`; we choose `b = max(1, limit/20)` and `τ = ⌈T/(limit − b)⌉` (or `T + 1ns`
//!   when `limit = b`), so `b + ⌊T/τ⌋ ≤ limit`. A server that counts over any sliding window of
//!   length `T` therefore never sees more than `limit` from us.
//! - **Concurrency.** Each mailbox has a semaphore of `max_concurrent_per_mailbox` shared by all
//!   of its streams and folders, and the whole limiter has a semaphore of `max_in_flight_total`.
//!   A [`Permit`] holds one of each until dropped.
//! - **Global rate** (off unless `max_requests_per_sec` is set). One more [`WindowBucket`] over
//!   all mailboxes with `limit = max_requests_per_sec` and `window = 1 s`: no interval of one
//!   second admits more than that many requests, so no interval of `k` seconds admits more than
//!   `k × max_requests_per_sec` (for tenants whose app registration is shared with other tools,
//!   under Graph's app-wide limit).
//! - **Pause.** [`Limiter::pause`] stops one mailbox until an instant (a server's Retry-After):
//!   every later `acquire` for that mailbox waits, other mailboxes go on.
//! - **Accounting.** Time spent waiting in `acquire` is recorded per mailbox ([`Limiter::waited`]);
//!   requests in flight and requests admitted so far are counted over all mailboxes
//!   ([`Limiter::in_flight`], [`Limiter::admitted`]) for progress.
//!
//! Order inside `acquire`: pause → mailbox semaphore → bucket → pause again → global semaphore →
//! global rate. A request never holds a global slot while it waits for its own mailbox's budget,
//! so a slow mailbox cannot starve the others; it takes the global rate's token last, right
//! before it is sent, so the rate holds for the requests as sent.
//!
//! The bucket is generic over governor's [`Clock`] so the guarantee is tested on a
//! [`governor::clock::FakeRelativeClock`]; the [`Limiter`] uses [`TokioClock`], tokio's clock,
//! so the bucket, the pauses and the sleeps in `acquire` all read one time, and tests on paused
//! tokio time (`tokio::time::pause`) drive all three deterministically.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits applied per mailbox and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Requests allowed in any interval of length `window`, per mailbox (Graph: 10,000).
    pub requests_per_window: u32,
    /// The server's counting window (Graph: 10 minutes).
    pub window: Duration,
    /// Requests in flight per mailbox (Graph: 4).
    pub max_concurrent_per_mailbox: u32,
    /// Requests in flight over all mailboxes.
    pub max_in_flight_total: u32,
    /// Requests admitted per second over all mailboxes; `None`: no global rate.
    pub max_requests_per_sec: Option<NonZeroU32>,
}

/// Burst and replenish interval that keep every window of `window` at or under `limit`.
pub fn window_quota(limit: u32, window: Duration) -> (NonZeroU32, Duration) {
    let limit = limit.max(1);
    let burst = (limit / 20).max(1);
    let refills = u128::from(limit - burst);
    let window_ns = window.as_nanos().max(1);
    let period_ns = if refills == 0 { window_ns + 1 } else { window_ns.div_ceil(refills) };
    let period = Duration::from_nanos(u64::try_from(period_ns).unwrap_or(u64::MAX).max(1));
    (NonZeroU32::new(burst).expect("burst is at least 1"), period)
}

/// governor's [`Clock`] on tokio's time: time elapsed since the clock was made. Outside tests it
/// reads the same monotonic time as governor's default clock; under `tokio::time::pause` it
/// stands still until the test (or the runtime's auto-advance) moves it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock { origin: Instant::now() }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A token bucket that never admits more than `limit` requests in any interval of `window`.
pub struct WindowBucket<C: Clock = TokioClock> {
    inner: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock + Clone> WindowBucket<C> {
    pub fn with_clock(limit: u32, window: Duration, clock: C) -> Self {
        let (burst, period) = window_quota(limit, window);
        let quota = Quota::with_period(period).expect("period is non-zero").allow_burst(burst);
        WindowBucket { inner: RateLimiter::direct_with_clock(quota, clock.clone()), clock }
    }

    /// Take a token now, or say how long until one is available.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.inner.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl WindowBucket<TokioClock> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_clock(limit, window, TokioClock::default())
    }

    /// Wait (on tokio's timer) until a token is taken.
    pub async fn take(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait.max(Duration::from_micros(50))).await;
        }
    }
}

struct MailboxState {
    bucket: WindowBucket,
    in_flight: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
    waited_ns: AtomicU64,
}

/// The limiter shared by every stream of every mailbox.
pub struct Limiter {
    config: LimiterConfig,
    global: Arc<Semaphore>,
    rate: Option<WindowBucket>,
    admitted: AtomicU64,
    mailboxes: Mutex<HashMap<String, Arc<MailboxState>>>,
}

/// Held while a request is in flight; releases both slots on drop.
#[derive(Debug)]
pub struct Permit {
    _mailbox: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
    /// How long `acquire` waited for this permit.
    pub waited: Duration,
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Self {
        let total = config.max_in_flight_total.max(1) as usize;
        let rate = config.max_requests_per_sec.map(|n| WindowBucket::new(n.get(), Duration::from_secs(1)));
        Limiter { config, global: Arc::new(Semaphore::new(total)), rate, admitted: AtomicU64::new(0), mailboxes: Mutex::new(HashMap::new()) }
    }

    /// Requests holding a permit now, over all mailboxes.
    pub fn in_flight(&self) -> u32 {
        (self.config.max_in_flight_total.max(1) as usize).saturating_sub(self.global.available_permits()) as u32
    }

    /// Permits handed out so far, over all mailboxes.
    pub fn admitted(&self) -> u64 {
        self.admitted.load(Ordering::Relaxed)
    }

    pub fn config(&self) -> LimiterConfig {
        self.config
    }

    fn state(&self, mailbox_id: &str) -> Arc<MailboxState> {
        let mut map = self.mailboxes.lock();
        if let Some(s) = map.get(mailbox_id) {
            return s.clone();
        }
        let s = Arc::new(MailboxState {
            bucket: WindowBucket::new(self.config.requests_per_window, self.config.window),
            in_flight: Arc::new(Semaphore::new(self.config.max_concurrent_per_mailbox.max(1) as usize)),
            paused_until: Mutex::new(None),
            waited_ns: AtomicU64::new(0),
        });
        map.insert(mailbox_id.to_string(), s.clone());
        s
    }

    /// Wait for the mailbox's pause, its bucket and both in-flight caps.
    pub async fn acquire(&self, mailbox_id: &str) -> Permit {
        let state = self.state(mailbox_id);
        let start = Instant::now();
        wait_pause(&state).await;
        let mailbox = state.in_flight.clone().acquire_owned().await.expect("limiter semaphores are never closed");
        state.bucket.take().await;
        // A 429 seen by another request while we waited pauses us too.
        wait_pause(&state).await;
        let global = self.global.clone().acquire_owned().await.expect("limiter semaphores are never closed");
        if let Some(rate) = &self.rate {
            rate.take().await;
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let waited = start.elapsed();
        state.waited_ns.fetch_add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        Permit { _mailbox: Some(mailbox), _global: global, waited }
    }

    /// For a request that reads no mailbox (the directory: `/users`, `/users/{x}`, `/me`): the
    /// pause of `key` and the global caps only. Graph limits the directory per tenant and app,
    /// not per mailbox, so a listing or the resolution of a long mailbox list may use every
    /// global slot.
    pub async fn acquire_unkeyed(&self, key: &str) -> Permit {
        let state = self.state(key);
        let start = Instant::now();
        wait_pause(&state).await;
        let global = self.global.clone().acquire_owned().await.expect("limiter semaphores are never closed");
        if let Some(rate) = &self.rate {
            rate.take().await;
        }
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let waited = start.elapsed();
        state.waited_ns.fetch_add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        Permit { _mailbox: None, _global: global, waited }
    }

    /// Stop issuing requests for this mailbox until `until` (only this mailbox). A later pause
    /// extends an earlier one; an earlier one never shortens it.
    pub fn pause(&self, mailbox_id: &str, until: Instant) {
        let state = self.state(mailbox_id);
        let mut p = state.paused_until.lock();
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }

    /// When the mailbox's current pause ends, if it is paused.
    pub fn paused_until(&self, mailbox_id: &str) -> Option<Instant> {
        let state = self.state(mailbox_id);
        let p = *state.paused_until.lock();
        p.filter(|u| *u > Instant::now())
    }

    /// Total time `acquire` has waited for this mailbox.
    pub fn waited(&self, mailbox_id: &str) -> Duration {
        let map = self.mailboxes.lock();
        map.get(mailbox_id).map(|s| Duration::from_nanos(s.waited_ns.load(Ordering::Relaxed))).unwrap_or_default()
    }
}

async fn wait_pause(state: &MailboxState) {
    loop {
        let until = *state.paused_until.lock();
        match until {
            Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    /// Drive a bucket greedily (take every token as soon as it is available, checking every
    /// `step`) for `horizon`, starting after an idle `offset`, and return admission times.
    fn admissions(limit: u32, window: Duration, offset: Duration, step: Duration, horizon: Duration) -> Vec<Duration> {
        let clock = FakeRelativeClock::default();
        let bucket = WindowBucket::with_clock(limit, window, clock.clone());
        clock.advance(offset);
        let mut now = offset;
        let mut out = Vec::new();
        while now < offset + horizon {
            while bucket.try_take().is_ok() {
                out.push(now);
            }
            clock.advance(step);
            now += step;
        }
        out
    }

    /// Largest number of admissions in any closed interval of length `window`. The maximum over
    /// all alignments is reached by an interval that starts at an admission.
    fn max_in_any_window(times: &[Duration], window: Duration) -> usize {
        let mut best = 0;
        let mut j = 0;
        for i in 0..times.len() {
            if j < i {
                j = i;
            }
            while j < times.len() && times[j] <= times[i] + window {
                j += 1;
            }
            best = best.max(j - i);
        }
        best
    }

    #[test]
    fn no_window_of_any_alignment_exceeds_the_limit() {
        let window = Duration::from_secs(10);
        for limit in [1u32, 2, 7, 20, 100, 10_000] {
            let (burst, period) = window_quota(limit, window);
            for offset_ms in [0u64, 1, 333, 4_999, 9_999] {
                let step = (period / 3).max(Duration::from_micros(10));
                let horizon = window * 4;
                let t = admissions(limit, window, Duration::from_millis(offset_ms), step, horizon);
                let max = max_in_any_window(&t, window);
                assert!(max <= limit as usize, "limit {limit} burst {burst} offset {offset_ms}ms: {max} in one window");
                // And the bucket is not uselessly strict: over 4 windows it admits most of the budget.
                let refills = u64::from(limit - burst.get());
                assert!(t.len() as u64 + 1 >= 3 * refills, "limit {limit}: only {} admitted", t.len());
            }
        }
    }

    #[test]
    fn graph_defaults_give_a_burst_of_500() {
        let (burst, period) = window_quota(10_000, Duration::from_secs(600));
        assert_eq!(burst.get(), 500);
        // 9,500 refills over 600 s.
        assert_eq!(period, Duration::from_nanos(600_000_000_000u64.div_ceil(9_500)));
    }

    fn config(limit: u32, window: Duration, per_mailbox: u32, total: u32) -> LimiterConfig {
        LimiterConfig { requests_per_window: limit, window, max_concurrent_per_mailbox: per_mailbox, max_in_flight_total: total, max_requests_per_sec: None }
    }

    /// Long enough that, on paused time, the runtime only gets there once every other task is
    /// blocked: whatever can still run has run.
    const UNTIL_IDLE: Duration = Duration::from_secs(3600);

    // All tests below run on paused tokio time: the clock moves only when every task is blocked
    // (to the next timer), so the times asserted are exact, not thresholds.

    #[tokio::test(start_paused = true)]
    async fn pause_blocks_only_that_mailbox_until_the_instant() {
        let limiter = Arc::new(Limiter::new(config(1000, Duration::from_secs(600), 4, 16)));
        let start = Instant::now();
        let pause = Duration::from_millis(300);
        limiter.pause("a", start + pause);
        // A shorter pause never shortens a longer one.
        limiter.pause("a", start + Duration::from_millis(10));
        assert_eq!(limiter.paused_until("a"), Some(start + pause));
        assert_eq!(limiter.paused_until("b"), None);

        let a = tokio::spawn({
            let limiter = limiter.clone();
            async move { (limiter.acquire("a").await.waited, Instant::now()) }
        });
        tokio::task::yield_now().await;
        // While "a" is paused, "b" goes through at once.
        let b = limiter.acquire("b").await;
        assert_eq!((b.waited, Instant::now()), (Duration::ZERO, start));
        assert!(!a.is_finished());

        let (a_waited, a_at) = a.await.unwrap();
        assert_eq!(a_at, start + pause, "\"a\" is let go exactly when its pause ends");
        assert_eq!(a_waited, pause);
        assert_eq!(limiter.waited("a"), pause);
        assert_eq!(limiter.waited("b"), Duration::ZERO);
        assert_eq!(limiter.paused_until("a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_spaces_requests_by_the_bucket_period_on_tokio_time() {
        // limit 21 per 10 s: burst 1, then one token every 10 s / 20 = 500 ms.
        let window = Duration::from_secs(10);
        assert_eq!(window_quota(21, window), (NonZeroU32::new(1).unwrap(), Duration::from_millis(500)));
        let limiter = Limiter::new(config(21, window, 4, 16));
        let start = Instant::now();
        let mut admitted = Vec::new();
        for _ in 0..4 {
            let permit = limiter.acquire("a").await;
            admitted.push((Instant::now() - start, permit.waited));
        }
        let ms = Duration::from_millis;
        assert_eq!(admitted, vec![(ms(0), ms(0)), (ms(500), ms(500)), (ms(1000), ms(500)), (ms(1500), ms(500))]);
        assert_eq!(limiter.waited("a"), ms(1500));
        // Another mailbox has its own bucket: its burst token is there at once.
        assert_eq!(limiter.acquire("b").await.waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_set_while_waiting_for_the_bucket_holds_the_request() {
        let ms = Duration::from_millis;
        let limiter = Arc::new(Limiter::new(config(21, Duration::from_secs(10), 4, 16)));
        let start = Instant::now();
        drop(limiter.acquire("a").await); // the burst token; the next one comes at 500 ms
        let next = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire("a").await.waited }
        });
        tokio::time::sleep(ms(100)).await;
        // A 429 on another request at 100 ms pauses the mailbox until 2 s.
        limiter.pause("a", start + ms(2000));
        assert_eq!(next.await.unwrap(), ms(2000));
        assert_eq!(Instant::now(), start + ms(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn mailbox_semaphore_caps_in_flight() {
        let limiter = Arc::new(Limiter::new(config(1000, Duration::from_secs(600), 2, 16)));
        let start = Instant::now();
        let p1 = limiter.acquire("a").await;
        let _p2 = limiter.acquire("a").await;
        let third = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire("a").await.waited }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!third.is_finished(), "a third request to the same mailbox must wait");
        // Another mailbox is not blocked.
        assert_eq!(limiter.acquire("b").await.waited, Duration::ZERO);
        drop(p1);
        assert_eq!(third.await.unwrap(), UNTIL_IDLE, "the third goes as soon as a slot frees");
        assert_eq!(Instant::now(), start + UNTIL_IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn global_semaphore_caps_in_flight_over_all_mailboxes() {
        let limiter = Arc::new(Limiter::new(config(1000, Duration::from_secs(600), 4, 2)));
        let a = limiter.acquire("a").await;
        let _b = limiter.acquire("b").await;
        let c = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire("c").await.waited }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!c.is_finished(), "a third request in flight must wait for the global cap of 2");
        drop(a);
        assert_eq!(c.await.unwrap(), UNTIL_IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_rate_holds_over_all_mailboxes_and_counts_in_flight() {
        // 21 per second over all mailboxes: burst 1, then one every 50 ms, whichever mailbox asks.
        let mut cfg = config(10_000, Duration::from_secs(600), 4, 64);
        cfg.max_requests_per_sec = NonZeroU32::new(21);
        let limiter = Arc::new(Limiter::new(cfg));
        let start = Instant::now();
        let mut held = Vec::new();
        let mut at = Vec::new();
        for i in 0..6 {
            let mailbox = ["a", "b", "c"][i % 3];
            held.push(limiter.acquire(mailbox).await);
            at.push((Instant::now() - start).as_millis());
        }
        assert_eq!(at, vec![0, 50, 100, 150, 200, 250]);
        assert_eq!((limiter.in_flight(), limiter.admitted()), (6, 6));
        held.truncate(2);
        assert_eq!((limiter.in_flight(), limiter.admitted()), (2, 6));
        // Without a rate, the same six go at once.
        let free = Limiter::new(config(10_000, Duration::from_secs(600), 4, 64));
        for mailbox in ["a", "b", "c", "a", "b", "c"] {
            assert_eq!(free.acquire(mailbox).await.waited, Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unkeyed_requests_use_only_the_global_cap_and_the_pause() {
        let limiter = Arc::new(Limiter::new(config(1000, Duration::from_secs(600), 2, 3)));
        // Beyond the per-key cap of 2: directory requests are not a mailbox's.
        let held = [limiter.acquire_unkeyed("dir").await, limiter.acquire_unkeyed("dir").await, limiter.acquire_unkeyed("dir").await];
        assert_eq!(limiter.in_flight(), 3);
        let fourth = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire_unkeyed("dir").await.waited }
        });
        tokio::time::sleep(UNTIL_IDLE).await;
        assert!(!fourth.is_finished(), "the global cap of 3 holds");
        drop(held);
        assert_eq!(fourth.await.unwrap(), UNTIL_IDLE);
        // A Retry-After on the directory pauses its requests.
        let start = Instant::now();
        limiter.pause("dir", start + Duration::from_secs(2));
        assert_eq!(limiter.acquire_unkeyed("dir").await.waited, Duration::from_secs(2));
    }
}
