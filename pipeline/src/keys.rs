//! A compact index of the keys a partition's output holds: per key, its latest `_seq`, whether
//! that row is a delete, and a fingerprint of its change key — about 50 bytes a key, where the
//! ids themselves (Graph ids run to ~150 characters) would take several times that.
//!
//! Used where a run must compare a whole partition with what Graph returns — a rebaseline (skip
//! rows whose change key is unchanged; at the end, delete what was not returned), a park, a
//! retirement — so that a folder of a million messages needs ~50 MB, not ~400 MB.
//!
//! Why a fingerprint collision cannot silently lose a delete in practice: fingerprints are 128
//! bits of two SipHash-1-3 functions keyed at random per run (`RandomState`), so nobody can
//! aim for a collision, and for n keys the chance that any two collide is below n² / 2¹²⁹:
//! 1.5 × 10⁻²⁷ for a million keys — far below the odds of an undetected storage error. (What a
//! collision would do: a gone key sharing a returned key's fingerprint would keep its row.)
//! Change keys are fingerprinted with 64 bits: a changed item is skipped only if its old and new
//! change keys collide, 2⁻⁶⁴ per changed item.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// 128 bits standing for a key's id.
pub type Fingerprint = u128;

/// The keyed hash functions of one run; the same instance must fingerprint the index and the
/// ids compared with it.
#[derive(Debug, Clone)]
pub struct Fingerprinter {
    high: RandomState,
    low: RandomState,
    change: RandomState,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter { high: RandomState::new(), low: RandomState::new(), change: RandomState::new() }
    }
}

impl Fingerprinter {
    pub fn id(&self, id: &str) -> Fingerprint {
        let half = |s: &RandomState| {
            let mut h = s.build_hasher();
            h.write(id.as_bytes());
            h.finish()
        };
        (u128::from(half(&self.high)) << 64) | u128::from(half(&self.low))
    }

    pub fn change_key(&self, change_key: &str) -> u64 {
        self.change.hash_one(change_key)
    }
}

/// What the output holds for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    /// `_seq` of the key's latest row.
    pub seq: i64,
    /// The latest row is a delete.
    pub deleted: bool,
    /// Fingerprint of the latest row's change key, when it had one.
    pub change: Option<u64>,
    /// The current round returned this key (rebaselines only).
    pub seen: bool,
}

/// Per key of a partition's output, its latest state (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    fingerprinter: Fingerprinter,
    keys: HashMap<Fingerprint, KeyEntry>,
}

impl KeyIndex {
    pub fn new(fingerprinter: Fingerprinter) -> Self {
        KeyIndex { fingerprinter, keys: HashMap::new() }
    }

    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Fold one committed row in: the row with the larger `_seq` wins.
    pub fn observe(&mut self, id: &str, seq: i64, deleted: bool, change_key: Option<&str>) {
        let fp = self.fingerprinter.id(id);
        let change = change_key.map(|c| self.fingerprinter.change_key(c));
        let entry = KeyEntry { seq, deleted, change, seen: false };
        match self.keys.get_mut(&fp) {
            Some(old) if old.seq >= seq => {}
            Some(old) => *old = entry,
            None => {
                self.keys.insert(fp, entry);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.get(&self.fingerprinter.id(id))
    }

    /// Mark a key as returned by the current round; false when the index does not hold it.
    pub fn mark_seen(&mut self, id: &str) -> bool {
        match self.keys.get_mut(&self.fingerprinter.id(id)) {
            Some(e) => {
                e.seen = true;
                true
            }
            None => false,
        }
    }

    /// Keys the index holds whose latest row is an upsert and that `pick` selects.
    pub fn present_matching(&self, pick: impl Fn(&KeyEntry) -> bool) -> std::collections::HashSet<Fingerprint> {
        self.keys.iter().filter(|(_, e)| !e.deleted && pick(e)).map(|(fp, _)| *fp).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_row_per_key_wins_in_any_order() {
        let mut ix = KeyIndex::new(Fingerprinter::default());
        ix.observe("a", 5, false, Some("ck5"));
        ix.observe("a", 3, true, None);
        ix.observe("b", 1, false, Some("x"));
        ix.observe("b", 2, true, None);
        assert_eq!(ix.len(), 2);
        let a = *ix.get("a").unwrap();
        assert_eq!((a.seq, a.deleted, a.change), (5, false, Some(ix.fingerprinter().change_key("ck5"))));
        assert!(ix.get("b").unwrap().deleted);
        assert!(ix.get("c").is_none());
    }

    #[test]
    fn seen_keys_are_left_out_of_what_is_gone() {
        let mut ix = KeyIndex::new(Fingerprinter::default());
        for (id, seq) in [("a", 1), ("b", 2), ("c", 3)] {
            ix.observe(id, seq, false, None);
        }
        ix.observe("d", 4, true, None);
        assert!(ix.mark_seen("b"));
        assert!(!ix.mark_seen("new"));
        let gone = ix.present_matching(|e| !e.seen);
        let fp = |id: &str| ix.fingerprinter().id(id);
        assert_eq!(gone, [fp("a"), fp("c")].into_iter().collect());
    }

    #[test]
    fn fingerprints_are_per_run_and_distinct() {
        let (one, two) = (Fingerprinter::default(), Fingerprinter::default());
        assert_eq!(one.id("x"), one.id("x"));
        assert_ne!(one.id("x"), two.id("x"), "keyed at random per run");
        let many: std::collections::HashSet<Fingerprint> = (0..100_000).map(|i| one.id(&format!("AAMkAD{i:08}"))).collect();
        assert_eq!(many.len(), 100_000);
    }
}
