//! The lazily generated bulk folder: [`crate::SimConfig::bulk_messages`] messages in the first
//! mailbox's Inbox that are not stored but generated on demand.
//!
//! Message `k` (0-based) is a pure function of (seed, k): its immutable and regular ids come from
//! a keyed hash and end in `k` (masked), so an id resolves back to its index without any index
//! (and is checked by regenerating it: an id that merely decodes to a valid `k` is not taken);
//! its properties are a template's (below) with per-message values drawn from a generator seeded
//! with (seed, k); `isRead` is drawn from the hash alone so that the folder's `unreadItemCount`
//! can be counted at start without building a million messages.
//!
//! Memory is O(touched messages): `taken` holds the indices that are no longer generated. A bulk
//! message that changes (update, move, delete) is first *materialized*: it enters the regular
//! store ([`crate::model::Mailbox::messages`]) with its generated ids, properties and versions, and
//! from then on the regular code paths apply (a delete leaves a tombstone in the folder as for
//! any stored message). Every bulk message was created at one version, [`Bulk::version`], bumped
//! once when the world was built; the folder's counts include them from the start.
//!
//! The delta engine ([`crate::sync`]) serves the generated messages of a round as runs of
//! indices (`Entry::Lazy`), so a round over a million messages holds a handful of entries.
//! `replay_rate` duplicates only stored items and removals, never generated messages.
//!
//! Cost: properties vary per message where a client would notice (ids, subject, from/sender, the
//! four timestamps, changeKey, internetMessageId, conversationId, isRead); the rest (body,
//! recipients, flags, categories…) comes from one of 256 templates built at start with
//! [`seed::message_props`]. Serving splices the per-message values into the template's
//! serialized form for the request's shape ([`Bulk::message_bytes`], byte for byte what the
//! regular serializer makes of [`Bulk::message`]): a few µs per message instead of the ~25 µs of
//! building and serializing a property map.

use std::collections::BTreeSet;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use rand::prelude::*;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::fmt;
use crate::model::Message;
use crate::seed::{self, Person};
use crate::wire::{self, MessageShape};

/// Prefixes of the two id forms, as [`seed::new_message_ids`] writes them.
const IMMUTABLE_PREFIX: &str = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A";
const REGULAR_PREFIX: &str = "AAMkAGI2TG93AAA";
/// Bytes of an id after its prefix; the last four carry the masked index.
const ID_BYTES: usize = 45;
/// Distinct bodies (and recipients, flags, categories…) the generated messages share.
const TEMPLATES: u32 = 256;
/// The properties a generated message does not take from its template (`sender` = `from`).
const VARYING: [&str; 10] = [
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "receivedDateTime",
    "sentDateTime",
    "subject",
    "from",
    "internetMessageId",
    "conversationId",
    "isRead",
];
/// Request shapes whose splices are kept.
const SHAPES: usize = 8;

/// The bulk folder of one mailbox.
pub struct Bulk {
    /// The folder the bulk messages are in (the Inbox).
    pub folder_id: String,
    /// Number of generated messages, present or not.
    pub count: u32,
    /// Version at which every bulk message was created (and entered the folder).
    pub version: u64,
    /// Indices that are no longer generated: materialized into the regular store (then changed,
    /// moved or deleted).
    pub taken: BTreeSet<u32>,
    key: u64,
    mask: u32,
    anchor: DateTime<Utc>,
    /// Properties built by [`seed::message_props`], one per template.
    templates: Vec<Map<String, Value>>,
    /// Per request shape, per template: its serialized form cut at the per-message values.
    splices: Vec<(MessageShape, Vec<Option<Splice>>)>,
}

/// SplitMix64: a small keyed hash, good enough to make ids and dice look random.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64 as a generator: the per-message dice (cheaper to start than [`StdRng`]).
struct Mix(u64);

impl RngCore for Mix {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// [`fmt::msg_ts`] without chrono's format parser.
fn msg_ts(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second())
}

/// What differs between generated messages that share a template.
struct Varying {
    template: usize,
    change_key: String,
    created: String,
    modified: String,
    received: String,
    sent: String,
    subject: String,
    from: Person,
    internet_message_id: String,
    conversation_id: String,
    read: bool,
}

/// A per-message value in a splice: the letter names it.
#[derive(Clone, Copy)]
enum Slot {
    /// Inside a JSON string.
    Str(u8),
    /// Inside a JSON string, URL-encoded (the id in `webLink`).
    Url,
    /// A whole JSON boolean.
    Bool,
}

/// A template serialized for one shape with placeholders, cut into literal parts and slots.
struct Splice {
    buf: Vec<u8>,
    parts: Vec<(std::ops::Range<usize>, Option<Slot>)>,
}

/// `\u{1}X\u{1}`: the placeholder of slot `X` (serialized as `\u0001X\u0001`).
fn placeholder(c: char) -> String {
    format!("\u{1}{c}\u{1}")
}

impl Splice {
    fn cut(buf: Vec<u8>) -> Splice {
        const ESC: &[u8] = b"\\u0001";
        let mut parts = Vec::new();
        let (mut lit, mut i) = (0, 0);
        while i < buf.len() {
            if buf[i..].starts_with(ESC) && buf[i + 7..].starts_with(ESC) {
                let c = buf[i + 6];
                let (from, to, slot) = if c == b'B' { (i - 1, i + 14, Slot::Bool) } else { (i, i + 13, Slot::Str(c)) };
                parts.push((lit..from, Some(slot)));
                (lit, i) = (to, to);
            } else if buf[i..].starts_with(b"%01") && buf[i + 4..].starts_with(b"%01") {
                parts.push((lit..i, Some(Slot::Url)));
                (lit, i) = (i + 7, i + 7);
            } else {
                i += 1;
            }
        }
        parts.push((lit..buf.len(), None));
        Splice { buf, parts }
    }
}

/// Appends `s` as the inside of a JSON string.
fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let q = serde_json::to_vec(s).expect("json");
        out.extend_from_slice(&q[1..q.len() - 1]);
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

impl Bulk {
    /// `count` messages in `folder_id`, created at `version`, owned by `owner` and received in the
    /// year before `anchor`.
    pub fn new(seed: u64, count: usize, folder_id: String, version: u64, owner: Person, anchor: DateTime<Utc>) -> Bulk {
        let count = u32::try_from(count).expect("bulk_messages fits in u32");
        let key = mix(seed ^ 0xb01c_f01d_e000_0000);
        let templates = (0..TEMPLATES.min(count))
            .map(|t| {
                let mut rng = StdRng::seed_from_u64(key ^ 0x4444 ^ u64::from(t).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                seed::message_props(&mut rng, &owner, Some("inbox"), anchor, None)
            })
            .collect();
        Bulk { folder_id, count, version, taken: BTreeSet::new(), key, mask: mix(key) as u32, anchor, templates, splices: Vec::new() }
    }

    /// Whether message `k` is still generated (not taken).
    pub fn is_lazy(&self, k: u32) -> bool {
        k < self.count && !self.taken.contains(&k)
    }

    /// Number of generated messages still present.
    pub fn present(&self) -> usize {
        self.count as usize - self.taken.len()
    }

    /// The present indices as maximal runs `(start, len)`, in index order.
    pub fn runs(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(self.taken.len() + 1);
        let mut start = 0u32;
        for &t in &self.taken {
            if t > start {
                out.push((start, t - start));
            }
            start = t + 1;
        }
        if self.count > start {
            out.push((start, self.count - start));
        }
        out
    }

    /// The present indices in order.
    pub fn present_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs().into_iter().flat_map(|(s, n)| s..s + n)
    }

    fn id(&self, k: u32, prefix: &str, salt: u64) -> String {
        let mut b = [0u8; ID_BYTES];
        let mut z = self.key ^ salt ^ u64::from(k).wrapping_mul(0xd6e8_feb8_6659_fd93);
        for chunk in b[..ID_BYTES - 4].chunks_mut(8) {
            z = mix(z);
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        b[ID_BYTES - 4..].copy_from_slice(&(k ^ self.mask).to_be_bytes());
        let mut s = String::with_capacity(prefix.len() + ID_BYTES / 3 * 4);
        s.push_str(prefix);
        base64::engine::general_purpose::URL_SAFE.encode_string(b, &mut s);
        s
    }

    /// Immutable id of message `k` (whether or not it is still present).
    pub fn immutable_id(&self, k: u32) -> String {
        self.id(k, IMMUTABLE_PREFIX, 0x1111)
    }

    /// Regular id of message `k` as generated (a moved message gets a new one).
    pub fn regular_id(&self, k: u32) -> String {
        self.id(k, REGULAR_PREFIX, 0x2222)
    }

    /// The index of a bulk immutable id, whether or not the message is still generated.
    pub fn index_of(&self, immutable_id: &str) -> Option<u32> {
        let tail = immutable_id.strip_prefix(IMMUTABLE_PREFIX)?;
        let b = base64::engine::general_purpose::URL_SAFE.decode(tail).ok()?;
        let k = u32::from_be_bytes(b.get(ID_BYTES - 4..ID_BYTES)?.try_into().ok()?) ^ self.mask;
        (b.len() == ID_BYTES && k < self.count && self.immutable_id(k) == immutable_id).then_some(k)
    }

    /// Whether message `k` is read (drawn from the hash, 70 % read, as seeded Inbox mail).
    pub fn is_read(&self, k: u32) -> bool {
        mix(self.key ^ 0x3333 ^ u64::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 10 < 7
    }

    /// Unread generated messages still present.
    pub fn unread(&self) -> i64 {
        (0..self.count).filter(|k| !self.is_read(*k)).count() as i64 - self.taken.iter().filter(|k| !self.is_read(**k)).count() as i64
    }

    /// The values of message `k` that are not its template's, drawn as [`seed::message_props`]
    /// draws them.
    fn varying(&self, k: u32) -> Varying {
        let mut rng = Mix(self.key ^ 0x5555 ^ u64::from(k).wrapping_mul(0xd6e8_feb8_6659_fd93));
        let template = (rng.next_u64() % self.templates.len() as u64) as usize;
        let received = self.anchor - Duration::seconds(rng.random_range(3600..365 * 86400));
        let mut subject = seed::words(&mut rng, 2..8);
        if rng.random_bool(0.2) {
            subject = format!("RE: {subject}");
        }
        let imid = fmt::exchange_id(&mut rng, "PH0PR04MB", 12).replace(['=', '-', '_'], "A");
        Varying {
            template,
            change_key: fmt::exchange_id(&mut rng, "CQAAABYAAA", 15),
            created: msg_ts(received),
            modified: msg_ts(received + Duration::seconds(rng.random_range(0..5))),
            sent: msg_ts(received - Duration::seconds(rng.random_range(1..120))),
            received: msg_ts(received),
            subject,
            from: seed::external_person(&mut rng),
            internet_message_id: format!("<{imid}@PH0PR04MB7654.namprd04.prod.outlook.com>"),
            conversation_id: fmt::exchange_id(&mut rng, "AAQkAGI2", 30),
            read: self.is_read(k),
        }
    }

    /// `props` with the varying values (or their placeholders) in place, in [`VARYING`] order.
    fn fill(props: &mut Map<String, Value>, values: [Value; 10]) {
        for (name, v) in VARYING.iter().zip(values) {
            if *name == "from" {
                props.insert("sender".into(), v.clone());
            }
            props.insert((*name).into(), v);
        }
    }

    /// Message `k` as the regular store would hold it (seq 0: the caller numbers it).
    pub fn message(&self, k: u32) -> Message {
        let v = self.varying(k);
        let mut props = self.templates[v.template].clone();
        Self::fill(
            &mut props,
            [
                json!(v.change_key),
                json!(v.created),
                json!(v.modified),
                json!(v.received),
                json!(v.sent),
                json!(v.subject),
                seed::recipient(&v.from),
                json!(v.internet_message_id),
                json!(v.conversation_id),
                json!(v.read),
            ],
        );
        Message {
            seq: 0,
            immutable_id: self.immutable_id(k),
            regular_id: self.regular_id(k),
            folder_id: self.folder_id.clone(),
            created_version: self.version,
            entered_version: self.version,
            version: self.version,
            props,
            cache: Vec::new(),
        }
    }

    /// Template `t` serialized for `shape` with placeholders.
    fn splice(&self, t: usize, shape: &MessageShape) -> Splice {
        let mut props = self.templates[t].clone();
        let p = |c| json!(placeholder(c));
        Self::fill(
            &mut props,
            [p('C'), p('A'), p('M'), p('R'), p('S'), p('J'), seed::recipient(&(placeholder('N'), placeholder('E'))), p('X'), p('V'), p('B')],
        );
        let m = Message {
            seq: 0,
            immutable_id: placeholder('I'),
            regular_id: placeholder('I'),
            folder_id: self.folder_id.clone(),
            created_version: 0,
            entered_version: 0,
            version: 0,
            props,
            cache: Vec::new(),
        };
        Splice::cut(serde_json::to_vec(&wire::message_value(&m, shape)).expect("json"))
    }

    /// Message `k` serialized for `shape`: byte for byte what [`wire::message_bytes`] makes of
    /// [`Bulk::message`], spliced from its template's serialized form.
    pub fn message_bytes(&mut self, k: u32, shape: &MessageShape) -> Bytes {
        let v = self.varying(k);
        let si = match self.splices.iter().position(|(s, _)| s == shape) {
            Some(i) => i,
            None => {
                if self.splices.len() >= SHAPES {
                    self.splices.remove(0);
                }
                self.splices.push((shape.clone(), (0..self.templates.len()).map(|_| None).collect()));
                self.splices.len() - 1
            }
        };
        if self.splices[si].1[v.template].is_none() {
            let sp = self.splice(v.template, shape);
            self.splices[si].1[v.template] = Some(sp);
        }
        let id = if shape.immutable { self.immutable_id(k) } else { self.regular_id(k) };
        let sp = self.splices[si].1[v.template].as_ref().expect("just made");
        let mut out = Vec::with_capacity(sp.buf.len() + 256);
        for (lit, slot) in &sp.parts {
            out.extend_from_slice(&sp.buf[lit.clone()]);
            match slot {
                None => {}
                Some(Slot::Bool) => out.extend_from_slice(if v.read { b"true" } else { b"false" }),
                Some(Slot::Url) => out.extend(url::form_urlencoded::byte_serialize(id.as_bytes()).flat_map(str::bytes)),
                Some(Slot::Str(c)) => put_str(
                    &mut out,
                    match c {
                        b'I' => &id,
                        b'C' => &v.change_key,
                        b'A' => &v.created,
                        b'M' => &v.modified,
                        b'R' => &v.received,
                        b'S' => &v.sent,
                        b'J' => &v.subject,
                        b'N' => &v.from.0,
                        b'E' => &v.from.1,
                        b'X' => &v.internet_message_id,
                        b'V' => &v.conversation_id,
                        _ => unreachable!("unknown slot"),
                    },
                ),
            }
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(n: usize) -> Bulk {
        let anchor = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z").unwrap().with_timezone(&Utc);
        Bulk::new(42, n, "folder".into(), 7, ("Adele Vance".into(), "adele.vance@contoso.onmicrosoft.com".into()), anchor)
    }

    fn shapes() -> Vec<MessageShape> {
        let sel = |s: &[&str]| Some(s.iter().map(|p| p.to_string()).collect());
        vec![
            MessageShape { immutable: true, select: None, text_body: false },
            MessageShape { immutable: false, select: None, text_body: true },
            MessageShape { immutable: true, select: sel(&["subject", "isRead", "webLink", "from", "sender", "receivedDateTime"]), text_body: false },
            MessageShape { immutable: false, select: sel(&["id", "changeKey"]), text_body: false },
        ]
    }

    #[test]
    fn ids_have_the_seeded_shape_and_resolve_back() {
        let b = bulk(5000);
        let mut rng = StdRng::seed_from_u64(1);
        let (imm, reg) = seed::new_message_ids(&mut rng);
        for k in [0, 1, 2, 4999] {
            let (i, r) = (b.immutable_id(k), b.regular_id(k));
            assert_eq!((i.len(), r.len()), (imm.len(), reg.len()));
            assert_eq!(b.index_of(&i), Some(k));
            assert_eq!(b.index_of(&r), None);
        }
        assert_eq!(b.index_of(&imm), None);
        assert_eq!(bulk(10).index_of(&b.immutable_id(4999)), None, "an index beyond the count is not a bulk id");
        let other = Bulk { key: 1, ..bulk(5000) };
        assert_eq!(other.index_of(&b.immutable_id(3)), None, "ids of another seed do not resolve");
        let all: BTreeSet<String> = (0..5000).map(|k| b.immutable_id(k)).collect();
        assert_eq!(all.len(), 5000);
    }

    #[test]
    fn runs_skip_taken_indices() {
        let mut b = bulk(10);
        assert_eq!(b.runs(), vec![(0, 10)]);
        b.taken.extend([0, 3, 4, 9]);
        assert_eq!(b.runs(), vec![(1, 2), (5, 4)]);
        assert_eq!(b.present_indices().collect::<Vec<_>>(), vec![1, 2, 5, 6, 7, 8]);
        assert_eq!(b.present(), 6);
    }

    #[test]
    fn spliced_bytes_equal_the_serialized_message() {
        let mut b = bulk(2000);
        let t = DateTime::parse_from_rfc3339("2024-02-29T07:08:09Z").unwrap().with_timezone(&Utc);
        assert_eq!(msg_ts(t), fmt::msg_ts(t));
        for shape in shapes() {
            for k in (0..2000).step_by(7) {
                let mut m = b.message(k);
                assert_eq!(b.message_bytes(k, &shape), wire::message_bytes(&mut m, &shape), "message {k}, {shape:?}");
            }
        }
        let m = b.message(5);
        assert_eq!(m.props.keys().collect::<Vec<_>>(), b.templates[0].keys().collect::<Vec<_>>());
        assert_eq!(m.props["sender"], m.props["from"]);
        assert_eq!(m.is_read(), b.is_read(5));
    }

    #[test]
    fn generation_is_deterministic() {
        let (mut a, mut b) = (bulk(100), bulk(100));
        for k in [0, 17, 99] {
            for shape in shapes() {
                assert_eq!(a.message_bytes(k, &shape), b.message_bytes(k, &shape));
            }
        }
        assert_ne!(a.message(1).props["subject"], a.message(2).props["subject"]);
    }

    /// `cargo test -p outlake-simulator --release --lib bulk::tests::generation_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn generation_cost() {
        let mut b = bulk(1_000_000);
        for (i, shape) in shapes().iter().enumerate() {
            let n = 200_000;
            // Warm: the splices of every template.
            (0..1000).for_each(|k| drop(b.message_bytes(k, shape)));
            let t = std::time::Instant::now();
            let bytes: usize = (0..n).map(|k| b.message_bytes(k, shape).len()).sum();
            println!("shape {i}: {:?} per message, {} bytes on average", t.elapsed() / n, bytes / n as usize);
        }
        let n = 20_000;
        let t = std::time::Instant::now();
        (0..n).for_each(|k| drop(b.message(k)));
        println!("{:?} per materialized message", t.elapsed() / n);
        let t = std::time::Instant::now();
        (0..n).for_each(|k| drop(b.immutable_id(k)));
        println!("{:?} per immutable id", t.elapsed() / n);
    }
}
