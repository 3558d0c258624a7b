//! A compact index of the keys a partition's output holds: per key, its latest `_seq`, whether
//! that row is a delete, and a fingerprint of its change key — about 50 bytes a key, where the
//! ids themselves (Graph ids run to ~150 characters) would take several times that.
//!
//! Used where a run must compare a whole partition with what Graph returns — a rebaseline (skip
//! rows whose change key is unchanged; at the end, delete what was not returned), a park, a
//! retirement — so that a folder of a million messages needs ~50 MB, not ~400 MB.
//!
//! Why a fingerprint collision cannot silently lose a delete in practice: fingerprints are the
//! first 128 bits of SHA-256 over a random 128-bit salt and the id, so nobody can aim for a
//! collision, and for n keys the chance that any two collide is below n² / 2¹²⁹: 1.5 × 10⁻²⁷
//! for a million keys — far below the odds of an undetected storage error. (What a collision
//! would do: a gone key sharing a returned key's fingerprint would keep its row.) The salt is
//! stored with a rebaseline round so that its persisted [`SeenLog`](crate::model::SeenLog)
//! stays comparable after a restart. Change keys are fingerprinted with 64 bits of a per-run
//! SipHash: a changed item is skipped only if its old and new change keys collide, 2⁻⁶⁴ per
//! changed item.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use sha2::{Digest, Sha256};

/// 128 bits standing for a key's id.
pub type Fingerprint = u128;

/// The keyed hash functions of one index; the same instance must fingerprint the index and the
/// ids compared with it.
#[derive(Debug, Clone)]
pub struct Fingerprinter {
    salt: [u8; 16],
    change: RandomState,
}

impl Default for Fingerprinter {
    /// A fresh random salt.
    fn default() -> Self {
        Fingerprinter::salted(rand_salt())
    }
}

fn rand_salt() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

impl Fingerprinter {
    pub fn salted(salt: [u8; 16]) -> Self {
        Fingerprinter { salt, change: RandomState::new() }
    }

    /// From the hex form of [`Fingerprinter::salt_hex`]; `None` when it is not 32 hex digits.
    pub fn from_salt_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.is_ascii() {
            return None;
        }
        let mut salt = [0u8; 16];
        for (i, b) in salt.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Fingerprinter::salted(salt))
    }

    pub fn salt_hex(&self) -> String {
        self.salt.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn id(&self, id: &str) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        u128::from_be_bytes(first)
    }

    pub fn change_key(&self, change_key: &str) -> u64 {
        self.change.hash_one(change_key)
    }
}

/// Fingerprints as the bytes of a seen-log file (16 bytes each, big-endian).
pub fn encode_fingerprints(fps: &[Fingerprint]) -> Vec<u8> {
    fps.iter().flat_map(|f| f.to_be_bytes()).collect()
}

/// The fingerprints of a seen-log file; `None` when its length is not a multiple of 16.
pub fn decode_fingerprints(bytes: &[u8]) -> Option<Vec<Fingerprint>> {
    if !bytes.len().is_multiple_of(16) {
        return None;
    }
    Some(bytes.chunks_exact(16).map(|c| u128::from_be_bytes(c.try_into().expect("16 bytes"))).collect())
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

    /// [`KeyIndex::mark_seen`] by fingerprint (from a persisted seen log).
    pub fn mark_seen_fingerprint(&mut self, fp: Fingerprint) {
        if let Some(e) = self.keys.get_mut(&fp) {
            e.seen = true;
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
        assert_ne!(one.id("x"), two.id("x"), "salted at random");
        let again = Fingerprinter::from_salt_hex(&one.salt_hex()).unwrap();
        assert_eq!(again.id("x"), one.id("x"), "the same salt gives the same fingerprints");
        assert!(Fingerprinter::from_salt_hex("xyz").is_none());
        let fps = vec![one.id("a"), one.id("b")];
        assert_eq!(decode_fingerprints(&encode_fingerprints(&fps)), Some(fps));
        assert_eq!(decode_fingerprints(&[0u8; 17]), None);
        let many: std::collections::HashSet<Fingerprint> = (0..100_000).map(|i| one.id(&format!("AAMkAD{i:08}"))).collect();
        assert_eq!(many.len(), 100_000);
    }
}
