//! A compact index of the keys a partition's output holds: per key, its latest `_seq`, whether
//! that row is a delete, and a fingerprint of its change key — 32 bytes a key in one sorted
//! vector, where the ids themselves (Graph ids run to ~150 characters) in a hash map would take
//! five times that.
//!
//! Used where a run must compare a whole partition with what Graph returns — a rebaseline (skip
//! rows whose change key is unchanged; at the end, delete what was not returned), a park, a
//! retirement — so that a folder of a million messages needs ~32 MB, not ~400 MB.
//!
//! Why a fingerprint collision cannot silently lose a delete in practice: fingerprints are the
//! first 128 bits of SHA-256 over a random 128-bit salt and the id, so nobody can aim for a
//! collision, and for n keys the chance that any two collide is below n² / 2¹²⁹: 1.5 × 10⁻²⁷
//! for a million keys — far below the odds of an undetected storage error. (What a collision
//! would do: a gone key sharing a returned key's fingerprint would keep its row.) The salt is
//! stored with a rebaseline round so that its persisted [`SeenLog`](crate::model::SeenLog)
//! stays comparable after a restart. Change keys are fingerprinted with 61 bits of a per-run
//! SipHash: a changed item is skipped only if its old and new change keys collide, 2⁻⁶¹ per
//! changed item.

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

    /// 61 bits of a per-run SipHash of the change key (the low 3 bits are zero: a slot keeps its
    /// flags there).
    pub fn change_key(&self, change_key: &str) -> u64 {
        self.change.hash_one(change_key) & !FLAG_BITS
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

const DELETED: u64 = 1;
const HAS_CHANGE: u64 = 2;
const SEEN: u64 = 4;
/// The bits of a slot's change word that hold its flags.
const FLAG_BITS: u64 = 7;

/// One key in 32 bytes: the fingerprint as two words (so the slot needs no 16-byte alignment),
/// the `_seq`, and one word holding the change-key fingerprint (61 bits) and the flags (3 bits).
#[derive(Debug, Clone, Copy)]
struct Slot {
    fp: [u64; 2],
    seq: i64,
    change_and_flags: u64,
}

impl Slot {
    fn fingerprint(&self) -> Fingerprint {
        (u128::from(self.fp[0]) << 64) | u128::from(self.fp[1])
    }
    fn flag(&self, f: u64) -> bool {
        self.change_and_flags & f != 0
    }
    fn entry(&self) -> KeyEntry {
        KeyEntry {
            seq: self.seq,
            deleted: self.flag(DELETED),
            change: self.flag(HAS_CHANGE).then_some(self.change_and_flags & !FLAG_BITS),
            seen: self.flag(SEEN),
        }
    }
}

fn split(fp: Fingerprint) -> [u64; 2] {
    [(fp >> 64) as u64, fp as u64]
}

/// Per key of a partition's output, its latest state (see the module docs).
///
/// Built in two steps: [`KeyIndex::observe`] every committed row (any order, a key may come
/// several times), then [`KeyIndex::seal`]: the rows are sorted by fingerprint and only each
/// key's latest kept, in one flat vector of 32-byte slots — no hash table, so a million keys
/// take 32 MB (plus the rows of keys written more than once until `seal`). Lookups are binary
/// searches. Using an index before `seal` is a bug and panics.
#[derive(Debug, Clone, Default)]
pub struct KeyIndex {
    fingerprinter: Fingerprinter,
    slots: Vec<Slot>,
    sealed: bool,
}

impl KeyIndex {
    pub fn new(fingerprinter: Fingerprinter) -> Self {
        KeyIndex { fingerprinter, slots: Vec::new(), sealed: false }
    }

    /// [`KeyIndex::new`] with room for `rows` observed rows (e.g. the partition's committed row
    /// count), so that building it never holds two copies of the vector while it grows.
    pub fn with_capacity(fingerprinter: Fingerprinter, rows: usize) -> Self {
        KeyIndex { fingerprinter, slots: Vec::with_capacity(rows), sealed: false }
    }

    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Fold one committed row in; after [`KeyIndex::seal`], the row with the larger `_seq` wins.
    pub fn observe(&mut self, id: &str, seq: i64, deleted: bool, change_key: Option<&str>) {
        assert!(!self.sealed, "KeyIndex::observe after seal");
        let fp = self.fingerprinter.id(id);
        let change = change_key.map(|c| self.fingerprinter.change_key(c));
        let flags = if deleted { DELETED } else { 0 } | if change.is_some() { HAS_CHANGE } else { 0 };
        self.slots.push(Slot { fp: split(fp), seq, change_and_flags: change.unwrap_or(0) | flags });
    }

    /// Sort the observed rows and keep each key's latest. Lookups need it; observing after it
    /// is a bug.
    pub fn seal(mut self) -> Self {
        // Per fingerprint, the largest `_seq` first; then keep the first of each run.
        self.slots.sort_unstable_by(|a, b| a.fp.cmp(&b.fp).then(b.seq.cmp(&a.seq)));
        self.slots.dedup_by(|later, first| later.fp == first.fp);
        self.sealed = true;
        self
    }

    fn position(&self, fp: Fingerprint) -> Option<usize> {
        assert!(self.sealed, "KeyIndex used before seal");
        let key = split(fp);
        self.slots.binary_search_by(|s| s.fp.cmp(&key)).ok()
    }

    pub fn get(&self, id: &str) -> Option<KeyEntry> {
        self.position(self.fingerprinter.id(id)).map(|i| self.slots[i].entry())
    }

    /// Mark a key as returned by the current round; false when the index does not hold it.
    pub fn mark_seen(&mut self, id: &str) -> bool {
        let fp = self.fingerprinter.id(id);
        self.mark_seen_fingerprint(fp)
    }

    /// [`KeyIndex::mark_seen`] by fingerprint (from a persisted seen log).
    pub fn mark_seen_fingerprint(&mut self, fp: Fingerprint) -> bool {
        match self.position(fp) {
            Some(i) => {
                self.slots[i].change_and_flags |= SEEN;
                true
            }
            None => false,
        }
    }

    /// Keys the index holds whose latest row is an upsert and that `pick` selects.
    pub fn present_matching(&self, pick: impl Fn(&KeyEntry) -> bool) -> FingerprintSet {
        assert!(self.sealed, "KeyIndex used before seal");
        // Slots are sorted by fingerprint, so the set comes out sorted.
        FingerprintSet(self.slots.iter().filter(|s| !s.flag(DELETED) && pick(&s.entry())).map(Slot::fingerprint).collect())
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A sorted set of fingerprints in 16 bytes each (the keys a removal or a rebaseline deletes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FingerprintSet(Vec<Fingerprint>);

impl FingerprintSet {
    /// The place of `fp` in the set, if it is a member (stable: `0..len`).
    pub fn position(&self, fp: Fingerprint) -> Option<usize> {
        self.0.binary_search(&fp).ok()
    }

    pub fn contains(&self, fp: Fingerprint) -> bool {
        self.position(fp).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Fingerprint> for FingerprintSet {
    fn from_iter<I: IntoIterator<Item = Fingerprint>>(iter: I) -> Self {
        let mut v: Vec<Fingerprint> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        FingerprintSet(v)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_latest_row_per_key_wins_in_any_order() {
        let mut ix = KeyIndex::new(Fingerprinter::default());
        ix.observe("a", 5, false, Some("ck5"));
        ix.observe("a", 3, true, None);
        ix.observe("b", 1, false, Some("x"));
        ix.observe("b", 2, true, None);
        let ix = ix.seal();
        assert_eq!(ix.len(), 2);
        let a = ix.get("a").unwrap();
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
        let mut ix = ix.seal();
        assert!(ix.mark_seen("b"));
        assert!(!ix.mark_seen("new"));
        let gone = ix.present_matching(|e| !e.seen);
        let fp = |id: &str| ix.fingerprinter().id(id);
        assert_eq!(gone, [fp("a"), fp("c")].into_iter().collect());
        assert!(gone.contains(fp("a")) && !gone.contains(fp("b")));
    }

    #[test]
    fn a_slot_is_32_bytes_and_the_index_agrees_with_a_map() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        let mut ix = KeyIndex::with_capacity(Fingerprinter::default(), 30_000);
        let mut model: HashMap<String, (i64, bool)> = HashMap::new();
        // Rows in scrambled order: key k gets rows with _seq k, k + 10_000 (for every third key).
        for i in 0..30_000i64 {
            let k = (i * 7_919) % 10_000;
            let seq = k + if i % 3 == 0 { 10_000 * (i / 10_000) } else { 0 };
            let deleted = i % 5 == 0;
            ix.observe(&format!("id-{k}"), seq, deleted, None);
            let e = model.entry(format!("id-{k}")).or_insert((seq, deleted));
            if seq > e.0 {
                *e = (seq, deleted);
            }
        }
        let ix = ix.seal();
        assert_eq!(ix.len(), model.len());
        for (id, (seq, deleted)) in &model {
            let e = ix.get(id).unwrap();
            assert_eq!((e.seq, e.deleted), (*seq, *deleted), "{id}");
        }
        assert!(ix.get("id-x").is_none());
        let present = ix.present_matching(|_| true);
        assert_eq!(present.len(), model.values().filter(|(_, d)| !d).count());
    }

    #[test]
    #[should_panic(expected = "before seal")]
    fn an_unsealed_index_refuses_lookups() {
        let mut ix = KeyIndex::new(Fingerprinter::default());
        ix.observe("a", 1, false, None);
        ix.get("a");
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
