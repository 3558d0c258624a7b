//! `--shard` / `OUTLAKE_SHARD`: which of a tenant's mailboxes one worker takes.
//!
//! Three forms:
//! - `I/N` (`0 ≤ I < N`): the mailboxes whose stable hash of the mailbox id falls in shard `I`
//!   of `N` ([`shard_of`]). Adding or removing a user moves no other mailbox between shards.
//! - `index/N`: the same, with `I` read from `JOB_COMPLETION_INDEX` (what a Kubernetes Indexed
//!   Job sets in each pod).
//! - `any`: every mailbox; workers drain the list together through the mailbox leases, each
//!   starting at a different place (from `JOB_COMPLETION_INDEX` when set).
//!
//! Without `--shard` a worker takes every mailbox, starting at the first (`all`).

use std::fmt;

/// The environment variable a Kubernetes Indexed Job sets to the pod's index.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shard {
    /// Every mailbox (no `--shard`).
    #[default]
    All,
    /// Shard `index` of `count` by stable hash.
    Hashed { index: u32, count: u32 },
    /// Every mailbox, drained together with other workers through the leases; `start` is this
    /// worker's place in the list (a fraction of it: `start / 2^32`).
    Any { start: u32 },
}

impl Shard {
    /// Parse a `--shard` value. `job_index` is the value of `JOB_COMPLETION_INDEX`, if set.
    pub fn parse(spec: &str, job_index: Option<&str>) -> Result<Shard, String> {
        let spec = spec.trim();
        let index_value = || -> Result<Option<u32>, String> {
            match job_index {
                None => Ok(None),
                Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| format!("{JOB_COMPLETION_INDEX} is `{v}`, not a whole number")),
            }
        };
        if spec.eq_ignore_ascii_case("any") {
            // Spread the starting places: the golden ratio visits the list evenly for any count.
            let start = match index_value()? {
                Some(i) => i.wrapping_mul(0x9E37_79B9),
                None => rand_start(),
            };
            return Ok(Shard::Any { start });
        }
        if spec.eq_ignore_ascii_case("all") {
            return Ok(Shard::All);
        }
        let usage = "expected `I/N` (e.g. `0/4`), `index/N` (I from JOB_COMPLETION_INDEX) or `any`";
        let Some((i, n)) = spec.split_once('/') else { return Err(format!("`{spec}`: {usage}")) };
        let count: u32 = n.trim().parse().map_err(|_| format!("`{spec}`: the shard count `{n}` is not a whole number; {usage}"))?;
        if count == 0 {
            return Err(format!("`{spec}`: the shard count must be at least 1"));
        }
        let index: u32 = if i.trim().eq_ignore_ascii_case("index") {
            index_value()?.ok_or_else(|| {
                format!("`{spec}` reads the shard index from {JOB_COMPLETION_INDEX}, which is not set (it is set in the pods of a Kubernetes Indexed Job)")
            })?
        } else {
            i.trim().parse().map_err(|_| format!("`{spec}`: the shard index `{i}` is not a whole number; {usage}"))?
        };
        if index >= count {
            return Err(format!("`{spec}`: the shard index must be below the shard count (0 … {})", count - 1));
        }
        Ok(Shard::Hashed { index, count })
    }

    /// Whether this worker takes `mailbox_id` (for [`Shard::Any`] and [`Shard::All`]: every one).
    pub fn takes(&self, mailbox_id: &str) -> bool {
        match *self {
            Shard::Hashed { index, count } => shard_of(mailbox_id, count) == index,
            Shard::All | Shard::Any { .. } => true,
        }
    }

    /// Whether mailboxes are drained together with other workers.
    pub fn is_any(&self) -> bool {
        matches!(self, Shard::Any { .. })
    }

    /// Where in a list of `len` mailboxes this worker starts.
    pub fn start_of(&self, len: usize) -> usize {
        match *self {
            Shard::Any { start } if len > 0 => ((start as u64 * len as u64) >> 32) as usize,
            _ => 0,
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shard::All => write!(f, "all"),
            Shard::Hashed { index, count } => write!(f, "{index}/{count}"),
            Shard::Any { .. } => write!(f, "any"),
        }
    }
}

/// The shard (of `count`) a mailbox id belongs to: FNV-1a 64 of the id's bytes, mod `count`.
/// Stable across releases, platforms and runs: changing it would move every mailbox.
pub fn shard_of(mailbox_id: &str, count: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in mailbox_id.to_ascii_lowercase().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % count.max(1) as u64) as u32
}

fn rand_start() -> u32 {
    // Good enough to spread workers that have no index: the clock's nanoseconds and the pid.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos.wrapping_mul(0x9E37_79B9) ^ std::process::id().wrapping_mul(0x85EB_CA6B)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(Shard::parse("1/4", None), Ok(Shard::Hashed { index: 1, count: 4 }));
        assert_eq!(Shard::parse("index/4", Some("3")), Ok(Shard::Hashed { index: 3, count: 4 }));
        assert_eq!(Shard::parse("all", None), Ok(Shard::All));
        assert_eq!(Shard::parse("any", Some("0")), Ok(Shard::Any { start: 0 }));
        assert!(Shard::parse("any", None).unwrap().is_any());
        assert!(Shard::parse("4/4", None).unwrap_err().contains("below the shard count"));
        assert!(Shard::parse("0/0", None).unwrap_err().contains("at least 1"));
        assert!(Shard::parse("index/4", None).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        assert!(Shard::parse("index/4", Some("x")).unwrap_err().contains("not a whole number"));
        assert!(Shard::parse("two", None).unwrap_err().contains("expected `I/N`"));
    }

    #[test]
    fn shards_partition_the_mailboxes_and_are_stable() {
        let ids: Vec<String> = (0..1000).map(|i| format!("{i:08x}-0000-4000-8000-000000000000")).collect();
        let mut counts = [0usize; 4];
        for id in &ids {
            let taken: Vec<u32> = (0..4).filter(|&i| Shard::Hashed { index: i, count: 4 }.takes(id)).collect();
            assert_eq!(taken.len(), 1, "{id} is in exactly one shard");
            counts[taken[0] as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 200), "shards are roughly even: {counts:?}");
        // The hash is part of the on-disk contract (which worker owns which mailbox): pin it.
        assert_eq!(shard_of("adele@contoso.com", 1_000_003), shard_of("ADELE@contoso.com", 1_000_003));
        assert_eq!(shard_of("", u32::MAX), (0xcbf2_9ce4_8422_2325u64 % u32::MAX as u64) as u32);
    }

    #[test]
    fn any_workers_start_at_different_places() {
        let starts: Vec<usize> = (0..4).map(|i| Shard::parse("any", Some(&i.to_string())).unwrap().start_of(100)).collect();
        let mut distinct = starts.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{starts:?}");
        assert!(starts.iter().all(|&s| s < 100));
    }
}
