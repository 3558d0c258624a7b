//! Mailbox leases: two workers never sync the same mailbox at once.
//!
//! Contract:
//! - A lease is a chain of records in the checkpoint store, one per *generation* of a mailbox
//!   (`LeaseStore::put_lease` is a put-if-absent of generation `g`). Every change — take,
//!   renew, release — writes the next generation. The store decides every race: of two writers
//!   of generation `g + 1`, exactly one succeeds. Only `PutMode::Create` is needed, which every
//!   object_store backend supports (the local filesystem has no `PutMode::Update`).
//! - A worker may take a mailbox when its latest record is released, or held but expired
//!   ([`decide`]). It holds the lease while its latest generation is the mailbox's latest.
//! - While it works, a [`MailboxLease`] renews itself every third of the TTL. Before every
//!   commit the runner calls [`MailboxLease::check`]: it fails with
//!   [`LakeErrorKind::Conflict`] when a newer generation exists (the lease was taken over) or
//!   when the lease is within a sixth of the TTL of expiring without a renewal (storage too slow
//!   to renew: another worker may take it over soon). Together with the commit records'
//!   own put-if-absent positions, a worker that lost its lease never commits afterwards, as long
//!   as the workers' clocks differ by less than a sixth of the TTL.
//! - Releasing writes a `released` record (with whether the sync completed), so another run can
//!   take the mailbox at once, and a worker draining the list with others (`--shard any`) can
//!   tell that a mailbox was already synced during this drain ([`Decision::Done`]).
//! - Records are small JSON documents ([`LeaseRecord`], `format` 1). Generations older than the
//!   previous one are pruned, best effort.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::lake::{LakeError, LakeErrorKind};

/// The lease record format this release writes and reads.
pub const LEASE_FORMAT: u32 = 1;

/// Who holds a lease: the worker (host and process) and the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// `<host>/<pid>`: the pod name in Kubernetes.
    pub worker: String,
    pub run_id: String,
    /// Which process exactly (`<boot id>/<pid namespace>/<pid>/<start ticks>` on Linux), so
    /// that a worker on the same machine can tell that the holder's process is gone
    /// ([`LeaseHolder::is_dead`]) and take the lease over without waiting for it to expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

impl LeaseHolder {
    /// This process, for run `run_id`.
    pub fn this_process(run_id: &str) -> LeaseHolder {
        let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).or_else(read_hostname).unwrap_or_else(|| "localhost".into());
        LeaseHolder { worker: format!("{host}/{}", std::process::id()), run_id: run_id.to_string(), process: process_identity(std::process::id()) }
    }

    /// True when `self` is known to be a process that no longer runs: it ran on this machine's
    /// current boot, in this process's pid namespace, and that pid is now absent or another
    /// process. Anything not known (another machine or container, no `/proc`) is not dead.
    pub fn is_dead(&self) -> bool {
        let Some(theirs) = self.process.as_deref() else { return false };
        let Some(mine) = process_identity(std::process::id()) else { return false };
        let (Some((their_space, their_pid)), Some((my_space, _))) = (split_identity(theirs), split_identity(&mine)) else { return false };
        if their_space != my_space {
            return false;
        }
        let Ok(pid) = their_pid.split('/').next().unwrap_or_default().parse::<u32>() else { return false };
        process_identity(pid).as_deref() != Some(theirs)
    }
}

/// `<boot id>/<pid ns>` and `<pid>/<start ticks>` of an identity.
fn split_identity(id: &str) -> Option<(&str, &str)> {
    let mut cut = id.match_indices('/').map(|(i, _)| i);
    let second = cut.nth(1)?;
    Some((&id[..second], &id[second + 1..]))
}

/// `<boot id>/<pid namespace>/<pid>/<start ticks>` of a process, on Linux.
fn process_identity(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time), counted after the `(comm)` field, which may hold spaces.
    let start = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.to_string();
    Some(format!("{}/{}/{pid}/{start}", boot.trim(), ns.to_string_lossy().replace('/', "_")))
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (run {})", self.worker, self.run_id)
    }
}

fn read_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Whether a lease is held or was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    Held,
    Released,
}

/// One generation of a mailbox's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub format: u32,
    pub mailbox_id: String,
    pub generation: u64,
    pub holder: LeaseHolder,
    pub state: LeaseState,
    /// When this holder took the lease (the first generation of its chain).
    pub acquired_at: DateTime<Utc>,
    /// Until when the lease is held without a renewal (for a released record: when it was
    /// released).
    pub expires_at: DateTime<Utc>,
    /// For a released record: whether the holder finished the mailbox (every partition ok).
    #[serde(default)]
    pub completed: bool,
}

impl LeaseRecord {
    /// Held by someone and not expired at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.state == LeaseState::Held && self.expires_at > now
    }
}

/// Where leases are stored (the checkpoint store). Implemented by the sinks' lake.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// The latest generation's record of a mailbox's lease, if any.
    async fn latest_lease(&self, mailbox_id: &str) -> Result<Option<LeaseRecord>, LakeError>;
    /// Create `record` as generation `record.generation`, only if no record of that generation
    /// exists. `Ok(false)` when another writer created it first.
    async fn put_lease(&self, record: &LeaseRecord) -> Result<bool, LakeError>;
    /// Whether generation `generation` of a mailbox's lease exists.
    async fn lease_exists(&self, mailbox_id: &str, generation: u64) -> Result<bool, LakeError>;
    /// Remove generations below `below` (best effort; missing ones are not an error).
    async fn prune_leases(&self, mailbox_id: &str, below: u64) -> Result<(), LakeError>;
    /// The latest record of every mailbox that has a lease record.
    async fn list_leases(&self) -> Result<Vec<LeaseRecord>, LakeError>;
}

/// What a worker may do with a mailbox, given its latest lease record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take it: write this generation.
    Take { generation: u64 },
    /// Someone else holds it (the latest record).
    Busy(LeaseRecord),
    /// Draining: another worker already synced it since the drain began.
    Done(LeaseRecord),
}

/// The pure rule. `drained_since`: when draining with other workers, a mailbox whose lease was
/// released as completed at or after this instant is [`Decision::Done`].
pub fn decide(latest: Option<&LeaseRecord>, now: DateTime<Utc>, me: &LeaseHolder, drained_since: Option<DateTime<Utc>>) -> Decision {
    let Some(rec) = latest else { return Decision::Take { generation: 1 } };
    let next = Decision::Take { generation: rec.generation + 1 };
    match rec.state {
        // A live lease is busy — unless its holder is a process of this machine that is gone
        // (a crashed run restarted here). Our own live lease is not taken twice.
        LeaseState::Held if rec.is_live(now) && (rec.holder == *me || !rec.holder.is_dead()) => Decision::Busy(rec.clone()),
        LeaseState::Held => next,
        LeaseState::Released => {
            let done = drained_since.is_some_and(|since| rec.completed && rec.expires_at >= since && rec.holder != *me);
            if done { Decision::Done(rec.clone()) } else { next }
        }
    }
}

/// What [`Leases::acquire`] got.
pub enum Acquired {
    Held(Arc<MailboxLease>),
    Busy(LeaseRecord),
    Done(LeaseRecord),
}

/// Takes mailbox leases for one worker.
#[derive(Clone)]
pub struct Leases {
    store: Arc<dyn LeaseStore>,
    holder: LeaseHolder,
    ttl: Duration,
}

/// Attempts to take a lease when other workers keep winning the same generation.
const ACQUIRE_ATTEMPTS: usize = 4;

impl Leases {
    pub fn new(store: Arc<dyn LeaseStore>, holder: LeaseHolder, ttl: Duration) -> Leases {
        Leases { store, holder, ttl: ttl.max(Duration::from_secs(1)) }
    }

    pub fn holder(&self) -> &LeaseHolder {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Try to take a mailbox's lease. A lost race re-reads and decides again.
    pub async fn acquire(&self, mailbox_id: &str, drained_since: Option<DateTime<Utc>>) -> Result<Acquired, LakeError> {
        self.acquire_at(mailbox_id, drained_since, None).await
    }

    /// [`Leases::acquire`] as if the time were `now` (`None`: the clock), for tests of expiry.
    pub async fn acquire_at(&self, mailbox_id: &str, drained_since: Option<DateTime<Utc>>, now: Option<DateTime<Utc>>) -> Result<Acquired, LakeError> {
        let mut latest = self.store.latest_lease(mailbox_id).await?;
        for _ in 0..ACQUIRE_ATTEMPTS {
            let now = now.unwrap_or_else(Utc::now);
            let generation = match decide(latest.as_ref(), now, &self.holder, drained_since) {
                Decision::Take { generation } => generation,
                Decision::Busy(r) => return Ok(Acquired::Busy(r)),
                Decision::Done(r) => return Ok(Acquired::Done(r)),
            };
            let record = LeaseRecord {
                format: LEASE_FORMAT,
                mailbox_id: mailbox_id.to_string(),
                generation,
                holder: self.holder.clone(),
                state: LeaseState::Held,
                acquired_at: now,
                expires_at: now + chrono_ttl(self.ttl),
                completed: false,
            };
            if self.store.put_lease(&record).await? {
                if generation > 2 {
                    self.prune(mailbox_id, generation - 1).await;
                }
                tracing::debug!(mailbox = mailbox_id, generation, "lease taken");
                return Ok(Acquired::Held(Arc::new(MailboxLease {
                    store: self.store.clone(),
                    ttl: self.ttl,
                    state: tokio::sync::Mutex::new(record),
                    lost: AtomicBool::new(false),
                    stop_renewing: Notify::new(),
                })));
            }
            latest = self.store.latest_lease(mailbox_id).await?;
        }
        // Every attempt lost a race: someone else is taking it right now.
        match latest {
            Some(r) => Ok(Acquired::Busy(r)),
            None => Err(LakeError::new(
                LakeErrorKind::Storage,
                None,
                format!("could not take the lease of mailbox {mailbox_id}: the checkpoint store answered that its lease exists but lists none"),
            )),
        }
    }

    async fn prune(&self, mailbox_id: &str, below: u64) {
        if let Err(e) = self.store.prune_leases(mailbox_id, below).await {
            tracing::debug!(mailbox = mailbox_id, error = %e, "could not prune old lease records; they are harmless");
        }
    }
}

fn chrono_ttl(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// A lease this worker holds on one mailbox.
pub struct MailboxLease {
    store: Arc<dyn LeaseStore>,
    ttl: Duration,
    /// The latest generation this worker wrote. Locked across the store calls of `check`,
    /// `renew` and `release`, so that our own renewal is never mistaken for a takeover.
    state: tokio::sync::Mutex<LeaseRecord>,
    lost: AtomicBool,
    stop_renewing: Notify,
}

impl std::fmt::Debug for MailboxLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxLease").field("ttl", &self.ttl).field("lost", &self.lost).finish_non_exhaustive()
    }
}

impl MailboxLease {
    /// Whether the lease was lost (taken over, or expired without a renewal).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn lost_error(&self, mailbox_id: &str, why: String) -> LakeError {
        self.lost.store(true, Ordering::SeqCst);
        LakeError::new(LakeErrorKind::Conflict, None, format!("lost the lease of mailbox {mailbox_id}: {why}; this worker stops committing it"))
    }

    /// Before a commit: still ours, and not about to expire.
    pub async fn check(&self) -> Result<(), LakeError> {
        let rec = self.state.lock().await;
        if self.is_lost() {
            return Err(LakeError::new(
                LakeErrorKind::Conflict,
                None,
                format!("lost the lease of mailbox {}; this worker stops committing it", rec.mailbox_id),
            ));
        }
        let margin = chrono_ttl(self.ttl / 6);
        if Utc::now() + margin > rec.expires_at {
            return Err(self.lost_error(&rec.mailbox_id, format!("it was not renewed in time (it expires at {})", rec.expires_at.to_rfc3339())));
        }
        if self.store.lease_exists(&rec.mailbox_id, rec.generation + 1).await? {
            let by = self.store.latest_lease(&rec.mailbox_id).await?.map(|r| r.holder.to_string()).unwrap_or_else(|| "another worker".into());
            return Err(self.lost_error(&rec.mailbox_id, format!("{by} took it over")));
        }
        Ok(())
    }

    /// Write the next generation, held until now + TTL.
    pub async fn renew(&self) -> Result<(), LakeError> {
        let mut rec = self.state.lock().await;
        if self.is_lost() {
            return Err(LakeError::new(LakeErrorKind::Conflict, None, format!("lost the lease of mailbox {}", rec.mailbox_id)));
        }
        let mut next = rec.clone();
        next.generation += 1;
        next.expires_at = Utc::now() + chrono_ttl(self.ttl);
        if !self.store.put_lease(&next).await? {
            return Err(self.lost_error(&rec.mailbox_id, "another worker took it over".into()));
        }
        *rec = next;
        if rec.generation > 2
            && let Err(e) = self.store.prune_leases(&rec.mailbox_id, rec.generation - 1).await
        {
            tracing::debug!(mailbox = %rec.mailbox_id, error = %e, "could not prune old lease records; they are harmless");
        }
        Ok(())
    }

    /// Renew every third of the TTL until [`MailboxLease::release`]. A failed renewal is
    /// retried at the next tick; a lost lease ends the loop (commits then fail in `check`).
    pub async fn keep_alive(self: Arc<Self>) {
        let every = self.ttl / 3;
        loop {
            tokio::select! {
                _ = self.stop_renewing.notified() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.renew().await {
                Ok(()) => {}
                Err(e) if e.kind == LakeErrorKind::Conflict => {
                    tracing::warn!(error = %e, "mailbox lease lost");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "could not renew a mailbox lease; retrying at the next renewal"),
            }
        }
    }

    /// Stop renewing and give the lease back, saying whether the mailbox was finished. A lost
    /// lease is not given back (it is someone else's now).
    pub async fn release(&self, completed: bool) -> Result<(), LakeError> {
        self.stop_renewing.notify_one();
        let mut rec = self.state.lock().await;
        if self.is_lost() {
            return Ok(());
        }
        let mut next = rec.clone();
        next.generation += 1;
        next.state = LeaseState::Released;
        next.completed = completed;
        next.expires_at = Utc::now();
        if !self.store.put_lease(&next).await? {
            self.lost.store(true, Ordering::SeqCst);
            return Ok(());
        }
        *rec = next;
        Ok(())
    }

    pub async fn record(&self) -> LeaseRecord {
        self.state.lock().await.clone()
    }
}

/// An in-memory [`LeaseStore`] for tests of the lease rules.
#[derive(Debug, Default)]
pub struct MemoryLeaseStore {
    records: parking_lot::Mutex<std::collections::BTreeMap<(String, u64), LeaseRecord>>,
}

#[async_trait]
impl LeaseStore for MemoryLeaseStore {
    async fn latest_lease(&self, mailbox_id: &str) -> Result<Option<LeaseRecord>, LakeError> {
        Ok(self.records.lock().iter().filter(|((m, _), _)| m == mailbox_id).map(|(_, r)| r.clone()).next_back())
    }
    async fn put_lease(&self, record: &LeaseRecord) -> Result<bool, LakeError> {
        let mut records = self.records.lock();
        let key = (record.mailbox_id.clone(), record.generation);
        if records.contains_key(&key) {
            return Ok(false);
        }
        records.insert(key, record.clone());
        Ok(true)
    }
    async fn lease_exists(&self, mailbox_id: &str, generation: u64) -> Result<bool, LakeError> {
        Ok(self.records.lock().contains_key(&(mailbox_id.to_string(), generation)))
    }
    async fn prune_leases(&self, mailbox_id: &str, below: u64) -> Result<(), LakeError> {
        self.records.lock().retain(|(m, g), _| m != mailbox_id || *g >= below);
        Ok(())
    }
    async fn list_leases(&self) -> Result<Vec<LeaseRecord>, LakeError> {
        let records = self.records.lock();
        let mut latest: std::collections::BTreeMap<&str, &LeaseRecord> = Default::default();
        for ((m, _), r) in records.iter() {
            latest.insert(m, r);
        }
        Ok(latest.into_values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(w: &str) -> LeaseHolder {
        LeaseHolder { worker: w.into(), run_id: format!("run-{w}"), process: None }
    }

    fn rec(generation: u64, who: &str, state: LeaseState, expires_at: DateTime<Utc>, completed: bool) -> LeaseRecord {
        LeaseRecord { format: 1, mailbox_id: "m".into(), generation, holder: holder(who), state, acquired_at: expires_at, expires_at, completed }
    }

    #[test]
    fn the_rule() {
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(60);
        let earlier = now - chrono::Duration::seconds(60);
        let me = holder("me");
        assert_eq!(decide(None, now, &me, None), Decision::Take { generation: 1 });
        let live = rec(4, "other", LeaseState::Held, later, false);
        assert_eq!(decide(Some(&live), now, &me, None), Decision::Busy(live.clone()));
        let expired = rec(4, "other", LeaseState::Held, earlier, false);
        assert_eq!(decide(Some(&expired), now, &me, None), Decision::Take { generation: 5 });
        let released = rec(7, "other", LeaseState::Released, earlier, true);
        assert_eq!(decide(Some(&released), now, &me, None), Decision::Take { generation: 8 });
        // Draining: released as completed since the drain began → done; before it → take.
        assert_eq!(decide(Some(&released), now, &me, Some(earlier)), Decision::Done(released.clone()));
        assert_eq!(decide(Some(&released), now, &me, Some(now)), Decision::Take { generation: 8 });
        // A release that did not complete the mailbox leaves it to be taken.
        let failed = rec(7, "other", LeaseState::Released, now, false);
        assert_eq!(decide(Some(&failed), now, &me, Some(earlier)), Decision::Take { generation: 8 });
        // Our own completed release is not "done by another worker".
        let mine = rec(7, "me", LeaseState::Released, now, true);
        assert_eq!(decide(Some(&mine), now, &me, Some(earlier)), Decision::Take { generation: 8 });
    }

    #[test]
    fn a_dead_process_of_this_machine_loses_its_live_lease() {
        let me = LeaseHolder::this_process("run-me");
        let Some(identity) = me.process.clone() else { return }; // no /proc: nothing to tell
        assert!(!me.is_dead(), "this process runs: {identity}");
        // The same process identity with another start time: that process is gone.
        let (space, pid_start) = split_identity(&identity).unwrap();
        let pid = pid_start.split('/').next().unwrap();
        let gone = LeaseHolder { worker: "here/1".into(), run_id: "old".into(), process: Some(format!("{space}/{pid}/1")) };
        assert!(gone.is_dead());
        let elsewhere = LeaseHolder { process: Some(format!("another-boot/pid:[1]/{pid}/1")), ..gone.clone() };
        assert!(!elsewhere.is_dead(), "a process of another machine is never judged");
        let now = Utc::now();
        let live = |h: &LeaseHolder| LeaseRecord { holder: h.clone(), ..rec(3, "x", LeaseState::Held, now + chrono::Duration::seconds(60), false) };
        assert_eq!(decide(Some(&live(&gone)), now, &me, None), Decision::Take { generation: 4 });
        assert!(matches!(decide(Some(&live(&elsewhere)), now, &me, None), Decision::Busy(_)));
        assert!(matches!(decide(Some(&live(&me)), now, &me, None), Decision::Busy(_)));
    }

    #[tokio::test]
    async fn one_winner_per_generation_and_takeover_after_expiry() {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::default());
        let a = Leases::new(store.clone(), holder("a"), Duration::from_secs(60));
        let b = Leases::new(store.clone(), holder("b"), Duration::from_secs(60));
        let Acquired::Held(lease) = a.acquire("m", None).await.unwrap() else { panic!("a takes a free mailbox") };
        let Acquired::Busy(by) = b.acquire("m", None).await.unwrap() else { panic!("b finds it busy") };
        assert_eq!(by.holder, holder("a"));
        lease.check().await.unwrap();
        lease.renew().await.unwrap();
        lease.check().await.unwrap();
        assert_eq!(lease.record().await.generation, 2);
        // Someone writes generation 3 (a takeover): a's next check fails as a conflict.
        let mut taken = lease.record().await;
        taken.generation = 3;
        taken.holder = holder("b");
        assert!(store.put_lease(&taken).await.unwrap());
        let err = lease.check().await.unwrap_err();
        assert_eq!(err.kind, LakeErrorKind::Conflict);
        assert!(err.message.contains("b (run run-b) took it over"), "{err}");
        assert!(lease.is_lost());
        // A lost lease is not given back: generation 3 stays b's.
        lease.release(true).await.unwrap();
        assert_eq!(store.latest_lease("m").await.unwrap().unwrap().holder, holder("b"));
    }

    #[tokio::test]
    async fn release_hands_the_mailbox_on_and_marks_it_done_for_a_drain() {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::default());
        let drain_began = Utc::now() - chrono::Duration::seconds(1);
        let a = Leases::new(store.clone(), holder("a"), Duration::from_secs(60));
        let b = Leases::new(store.clone(), holder("b"), Duration::from_secs(60));
        let Acquired::Held(lease) = a.acquire("m", Some(drain_began)).await.unwrap() else { panic!() };
        lease.release(true).await.unwrap();
        assert!(matches!(b.acquire("m", Some(drain_began)).await.unwrap(), Acquired::Done(r) if r.holder == holder("a")));
        // Outside a drain the next run takes it.
        let Acquired::Held(next) = b.acquire("m", None).await.unwrap() else { panic!("b takes a released mailbox") };
        assert_eq!(next.record().await.generation, 3);
        next.release(false).await.unwrap();
    }

    #[tokio::test]
    async fn an_expired_lease_fails_the_check_before_anyone_takes_it() {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::default());
        let a = Leases::new(store.clone(), holder("a"), Duration::from_secs(60));
        let Acquired::Held(lease) = a.acquire("m", None).await.unwrap() else { panic!() };
        lease.state.lock().await.expires_at = Utc::now() + chrono::Duration::seconds(5);
        let err = lease.check().await.unwrap_err();
        assert!(err.message.contains("not renewed in time"), "{err}");
        assert_eq!(err.kind, LakeErrorKind::Conflict);
    }

    #[tokio::test]
    async fn contenders_race_for_one_generation() {
        let store: Arc<dyn LeaseStore> = Arc::new(MemoryLeaseStore::default());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let leases = Leases::new(store.clone(), holder(&format!("w{i}")), Duration::from_secs(60));
                tokio::spawn(async move { matches!(leases.acquire("m", None).await.unwrap(), Acquired::Held(_)) })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
}
