//! The delta engine: tracked collections, sync-state generations, rounds and tokens.
//!
//! A tracked collection is a mailbox's folder tree, one folder's messages, or one calendar's
//! calendarView window. A round starts from no token (everything current) or from a deltatoken carrying a
//! version watermark (everything changed since, plus removals of items that were there at the
//! watermark and have left since). The round's item list is snapshotted when it starts, so
//! paging is stable; pages are cut from it with skiptokens naming (generation, offset), and the
//! last page carries a deltaLink whose watermark is the mailbox version at the round's start.
//! Generated bulk messages ([`crate::bulk`]) enter a round as runs of indices after the folder's
//! stored messages: present ones in index order; one that changes while the round is paged is
//! served in its stored (materialized) form, or skipped once it has left the folder.
//! Items are serialized in their state at the time the page is served (Graph folds changes).
//!
//! Generations: every page served advances the collection's generation; only the newest
//! `sync_generations` are kept, and a token from an older generation answers 410
//! `SyncStateNotFound`. The link just served always belongs to the newest generation, so plain
//! sequential paging never invalidates itself, while a nextLink left behind several pages ago,
//! or a deltaLink superseded by newer rounds, goes stale as in Graph. Expiring a mailbox drops
//! all generations of its collections. A token used with a different
//! `Prefer: IdType="ImmutableId"` setting than the one it was created with answers
//! `SyncStateInvalid`. Tokens are opaque: 8 bytes of generation, 4 of collection, 16 random.
//! A token remembers the path its round was addressed by (e.g. `calendarView/delta` or
//! `calendars('id')/calendarView/delta`), and its links keep that path. A token of a folder or
//! calendar that no longer exists answers [`DeltaError::FolderGone`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;

use crate::model::{Mailbox, World};
use crate::wire::{self, MessageShape};

#[derive(Clone, Debug, PartialEq)]
pub enum CollKind {
    Folders,
    Messages {
        folder: String,
    },
    /// One calendar's instances overlapping `[start, end)`.
    Calendar {
        calendar: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

struct Collection {
    user: usize,
    kind: CollKind,
    highest: u64,
    kept: VecDeque<u64>,
    tokens_by_gen: VecDeque<(u64, Vec<String>)>,
}

enum Entry {
    Seq(u64),
    Folder(String),
    Removed(String),
    /// Bulk messages `start..start + len` by index ([`crate::bulk`]): one entry per run, so a
    /// round over a million generated messages stays small.
    Lazy {
        start: u32,
        len: u32,
    },
}

impl Entry {
    /// Items the entry stands for.
    fn len(&self) -> usize {
        match self {
            Entry::Lazy { len, .. } => *len as usize,
            _ => 1,
        }
    }
}

/// A round's items: its entries laid end to end; offsets (skiptokens, pages) count items.
struct Round {
    entries: Vec<Entry>,
    /// Offset of each entry's first item.
    starts: Vec<usize>,
    /// Items in the round.
    len: usize,
    watermark: u64,
}

impl Round {
    fn new(entries: Vec<Entry>, watermark: u64) -> Round {
        let mut starts = Vec::with_capacity(entries.len());
        let mut len = 0;
        for e in &entries {
            starts.push(len);
            len += e.len();
        }
        Round { entries, starts, len, watermark }
    }

    /// The items `offset..end` as (entry, first, last) with item ranges inside each entry.
    fn slice(&self, offset: usize, end: usize) -> impl Iterator<Item = (&Entry, usize, usize)> + '_ {
        let first = self.starts.partition_point(|s| *s <= offset).saturating_sub(1);
        self.entries[first..]
            .iter()
            .zip(&self.starts[first..])
            .map_while(move |(e, s)| (*s < end).then(|| (e, offset.saturating_sub(*s), (end - s).min(e.len()))))
            .filter(|(_, from, to)| from < to)
    }
}

enum TokState {
    Skip { round: Option<Arc<Round>>, offset: usize, primed: bool },
    Delta { watermark: u64 },
}

struct TokenRec {
    coll: usize,
    gn: u64,
    immutable: bool,
    select: Option<Vec<String>>,
    top: Option<usize>,
    /// Link path after the mailbox prefix, without query.
    path: String,
    state: TokState,
}

/// The token of a request, from `$skiptoken` or `$deltatoken`.
pub struct TokenParam {
    pub value: String,
}

/// One delta page request, already authorized and resolved.
pub struct DeltaRequest {
    pub user: usize,
    /// Absolute link prefix up to the mailbox, e.g. `http://127.0.0.1:1234/v1.0/users/{id}`.
    pub link_prefix: String,
    /// Collection for a request without token.
    pub kind: CollKind,
    /// Link path after `link_prefix` for a request without token; `None` = the collection's
    /// canonical path (`mailFolders/delta`, `mailFolders('id')/messages/delta`,
    /// `calendars('id')/calendarView/delta`).
    pub path: Option<String>,
    pub token: Option<TokenParam>,
    pub immutable: bool,
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub page_size: usize,
    pub zone: Option<String>,
    pub text_body: bool,
}

/// Dice and limits the engine needs from the live config.
pub struct Knobs {
    pub generations: usize,
    pub replay_rate: f64,
    pub empty_page_rate: f64,
    pub calendar_empty_first_page: bool,
}

#[derive(Debug)]
pub enum DeltaError {
    /// 410 SyncStateNotFound.
    Gone { generation: u64, highest: u64, kept: Vec<u64> },
    /// SyncStateInvalid: the ImmutableId preference changed.
    Invalid,
    /// The token was not issued by this simulator, or for another mailbox.
    BadToken,
    /// The tracked folder or calendar no longer exists.
    FolderGone,
}

impl DeltaError {
    pub fn gone_message(generation: u64, highest: u64, kept: &[u64]) -> String {
        let mut s = format!("The sync state generation is not found; generation={generation};[highest={highest}]");
        if !kept.is_empty() {
            s.push_str(&format!("[{highest}]"));
            for k in kept.iter().filter(|k| **k != highest) {
                s.push_str(&format!("[{k}]"));
            }
        }
        s.push('.');
        s
    }
}

/// The served page.
pub struct Page {
    pub body: Bytes,
    pub items: usize,
    pub last: bool,
}

#[derive(Default)]
pub struct Sync {
    colls: Vec<Collection>,
    coll_index: HashMap<String, usize>,
    tokens: HashMap<String, TokenRec>,
}

fn coll_key(user: usize, kind: &CollKind) -> String {
    match kind {
        CollKind::Folders => format!("{user}|F"),
        CollKind::Messages { folder } => format!("{user}|M|{folder}"),
        CollKind::Calendar { calendar, start, end } => format!("{user}|C|{calendar}|{}|{}", start.timestamp(), end.timestamp()),
    }
}

fn token_string(rng: &mut StdRng, gn: u64, coll: usize) -> String {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(&gn.to_be_bytes());
    b.extend_from_slice(&(coll as u32).to_be_bytes());
    let r: [u8; 16] = rng.random();
    b.extend_from_slice(&r);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn token_gen(token: &str) -> Option<(u64, usize)> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    if b.len() != 28 {
        return None;
    }
    Some((u64::from_be_bytes(b[0..8].try_into().ok()?), u32::from_be_bytes(b[8..12].try_into().ok()?) as usize))
}

impl Sync {
    /// Drops every generation of every collection of `user`: all its tokens answer 410.
    pub fn expire_user(&mut self, user: usize) {
        for c in self.colls.iter_mut().filter(|c| c.user == user) {
            c.kept.clear();
            for (_, toks) in c.tokens_by_gen.drain(..) {
                for t in toks {
                    if let Some(rec) = self.tokens.get_mut(&t)
                        && let TokState::Skip { round, .. } = &mut rec.state
                    {
                        *round = None;
                    }
                }
            }
        }
    }

    fn advance(&mut self, coll: usize, generations: usize) -> u64 {
        let c = &mut self.colls[coll];
        c.highest += 1;
        let g = c.highest;
        c.kept.push_back(g);
        c.tokens_by_gen.push_back((g, Vec::new()));
        while c.kept.len() > generations.max(1) {
            c.kept.pop_front();
        }
        while c.tokens_by_gen.len() > generations.max(1) {
            let (_, toks) = c.tokens_by_gen.pop_front().expect("non-empty");
            for t in toks {
                if let Some(rec) = self.tokens.get_mut(&t)
                    && let TokState::Skip { round, .. } = &mut rec.state
                {
                    *round = None;
                }
            }
        }
        g
    }

    fn issue(&mut self, rng: &mut StdRng, rec: TokenRec) -> String {
        let t = token_string(rng, rec.gn, rec.coll);
        if let Some((_, v)) = self.colls[rec.coll].tokens_by_gen.back_mut() {
            v.push(t.clone());
        }
        self.tokens.insert(t.clone(), rec);
        t
    }

    /// Serves one delta page, advancing the collection's generation.
    pub fn serve(&mut self, world: &mut World, req: DeltaRequest, knobs: &Knobs, rng: &mut StdRng) -> Result<Page, DeltaError> {
        // Resolve where the round stands.
        let (coll, select, top, round, offset, primed, path) = match &req.token {
            None => {
                let key = coll_key(req.user, &req.kind);
                let coll = match self.coll_index.get(&key) {
                    Some(c) => *c,
                    None => {
                        self.colls.push(Collection {
                            user: req.user,
                            kind: req.kind.clone(),
                            highest: 0,
                            kept: VecDeque::new(),
                            tokens_by_gen: VecDeque::new(),
                        });
                        self.coll_index.insert(key, self.colls.len() - 1);
                        self.colls.len() - 1
                    }
                };
                let mb = world.users[req.user].mailbox.as_ref().ok_or(DeltaError::FolderGone)?;
                if !collection_exists(mb, &req.kind) {
                    return Err(DeltaError::FolderGone);
                }
                let round = build_round(mb, &req.kind, 0, req.immutable, req.top, knobs.replay_rate, rng);
                let path = req.path.clone().unwrap_or_else(|| canonical_path(&req.kind));
                (coll, req.select.clone(), req.top, Arc::new(round), 0, false, path)
            }
            Some(tp) => {
                let Some(rec) = self.tokens.get(&tp.value) else {
                    return match token_gen(&tp.value) {
                        Some((g, c)) if c < self.colls.len() && self.colls[c].user == req.user => {
                            let col = &self.colls[c];
                            Err(DeltaError::Gone { generation: g, highest: col.highest, kept: col.kept.iter().copied().collect() })
                        }
                        _ => Err(DeltaError::BadToken),
                    };
                };
                let col = &self.colls[rec.coll];
                if col.user != req.user {
                    return Err(DeltaError::BadToken);
                }
                if !col.kept.contains(&rec.gn) {
                    return Err(DeltaError::Gone { generation: rec.gn, highest: col.highest, kept: col.kept.iter().copied().collect() });
                }
                if rec.immutable != req.immutable {
                    return Err(DeltaError::Invalid);
                }
                let mb = world.users[req.user].mailbox.as_ref().ok_or(DeltaError::FolderGone)?;
                if !collection_exists(mb, &col.kind) {
                    return Err(DeltaError::FolderGone);
                }
                match &rec.state {
                    TokState::Skip { round, offset, primed } => {
                        let Some(round) = round.clone() else {
                            return Err(DeltaError::Gone { generation: rec.gn, highest: col.highest, kept: col.kept.iter().copied().collect() });
                        };
                        (rec.coll, rec.select.clone(), rec.top, round, *offset, *primed, rec.path.clone())
                    }
                    TokState::Delta { watermark } => {
                        let round = build_round(mb, &col.kind, *watermark, rec.immutable, rec.top, knobs.replay_rate, rng);
                        (rec.coll, rec.select.clone(), rec.top, Arc::new(round), 0, false, rec.path.clone())
                    }
                }
            }
        };
        let kind = self.colls[coll].kind.clone();
        let gn = self.advance(coll, knobs.generations);

        // Empty pages that still carry a nextLink.
        let remaining = round.len.saturating_sub(offset);
        let empty = (matches!(kind, CollKind::Calendar { .. }) && offset == 0 && !primed && knobs.calendar_empty_first_page)
            || (remaining > 0 && knobs.empty_page_rate > 0.0 && rng.random::<f64>() < knobs.empty_page_rate);
        let page_size = req.page_size.max(1);
        let end = if empty { offset } else { (offset + page_size).min(round.len) };
        let last = end >= round.len && !empty;

        let mb = world.users[req.user].mailbox.as_mut().ok_or(DeltaError::FolderGone)?;
        let shape = MessageShape { immutable: req.immutable, select: select.clone(), text_body: req.text_body };
        let context = match &kind {
            CollKind::Folders => "Collection(mailFolder)",
            CollKind::Messages { .. } => "Collection(message)",
            CollKind::Calendar { .. } => "Collection(event)",
        };
        let mut body = BytesMut::with_capacity(256 + (end - offset) * 2048);
        let base = req.link_prefix.split("/v1.0").next().unwrap_or_default();
        body.put_slice(format!("{{\"@odata.context\":\"{base}/v1.0/$metadata#{context}\",").as_bytes());
        let link = if last {
            let t = self.issue(
                rng,
                TokenRec {
                    coll,
                    gn,
                    immutable: req.immutable,
                    select: select.clone(),
                    top,
                    path: path.clone(),
                    state: TokState::Delta { watermark: round.watermark },
                },
            );
            format!("\"@odata.deltaLink\":\"{}/{path}?$deltatoken={t}\",", req.link_prefix)
        } else {
            let t = self.issue(
                rng,
                TokenRec {
                    coll,
                    gn,
                    immutable: req.immutable,
                    select: select.clone(),
                    top,
                    path: path.clone(),
                    state: TokState::Skip { round: Some(round.clone()), offset: end, primed: true },
                },
            );
            format!("\"@odata.nextLink\":\"{}/{path}?$skiptoken={t}\",", req.link_prefix)
        };
        body.put_slice(link.as_bytes());
        body.put_slice(b"\"value\":[");
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            if n > 0 {
                body.put_u8(b',');
            }
            body.put_slice(bytes);
            n += 1;
        };
        for (e, from, to) in round.slice(offset, end) {
            let bytes = match (e, &kind) {
                (Entry::Lazy { start, .. }, CollKind::Messages { folder }) => {
                    for k in *start + from as u32..*start + to as u32 {
                        let Some(bulk) = mb.bulk.as_mut() else { break };
                        if bulk.is_lazy(k) {
                            put(&bulk.message_bytes(k, &shape));
                            continue;
                        }
                        // Changed since the round started: served as stored now, if still here.
                        let seq = mb.message_index.get(&bulk.immutable_id(k)).copied();
                        if let Some(m) = seq.and_then(|s| mb.messages.get_mut(&s)).filter(|m| m.folder_id == *folder) {
                            put(&wire::message_bytes(m, &shape));
                        }
                    }
                    continue;
                }
                (Entry::Lazy { .. }, _) => continue,
                (Entry::Removed(id), CollKind::Folders) => wire::removal("#microsoft.graph.mailFolder", id),
                (Entry::Removed(id), CollKind::Messages { .. }) => wire::removal("#microsoft.graph.message", id),
                (Entry::Removed(id), CollKind::Calendar { .. }) => wire::removal("#microsoft.graph.event", id),
                (Entry::Folder(id), _) => {
                    let Some(f) = mb.folders.get(id) else { continue };
                    let kids = mb.folders.values().filter(|c| c.parent_id == *id).count();
                    Bytes::from(serde_json::to_vec(&wire::folder_value(f, kids)).expect("json"))
                }
                (Entry::Seq(seq), CollKind::Messages { folder }) => {
                    let Some(m) = mb.messages.get_mut(seq) else { continue };
                    if m.folder_id != *folder {
                        continue;
                    }
                    wire::message_bytes(m, &shape)
                }
                (Entry::Seq(seq), CollKind::Calendar { calendar, .. }) => {
                    let Some(ev) = mb.events.get_mut(seq) else { continue };
                    if ev.calendar_id != *calendar {
                        continue;
                    }
                    wire::event_bytes(ev, req.zone.as_deref())
                }
                (Entry::Seq(_), CollKind::Folders) => continue,
            };
            put(&bytes);
        }
        body.put_slice(b"]}");
        Ok(Page { body: body.freeze(), items: n, last })
    }
}

/// Whether the folder or calendar a collection tracks still exists.
fn collection_exists(mb: &Mailbox, kind: &CollKind) -> bool {
    match kind {
        CollKind::Folders => true,
        CollKind::Messages { folder } => mb.folders.contains_key(folder),
        CollKind::Calendar { calendar, .. } => mb.calendars.contains_key(calendar),
    }
}

/// The link path of a collection when the request did not name one.
fn canonical_path(kind: &CollKind) -> String {
    match kind {
        CollKind::Folders => "mailFolders/delta".to_string(),
        CollKind::Messages { folder } => format!("mailFolders('{folder}')/messages/delta"),
        CollKind::Calendar { calendar, .. } => format!("calendars('{calendar}')/calendarView/delta"),
    }
}

fn build_round(mb: &Mailbox, kind: &CollKind, w: u64, immutable: bool, top: Option<usize>, replay_rate: f64, rng: &mut StdRng) -> Round {
    let mut entries = Vec::new();
    match kind {
        CollKind::Folders => {
            for f in mb.folders.values().filter(|f| f.version > w) {
                entries.push(Entry::Folder(f.id.clone()));
            }
            if w > 0 {
                for t in mb.folder_tombstones.iter().filter(|t| t.version > w && t.created_version <= w) {
                    entries.push(Entry::Removed(t.id.clone()));
                }
            }
        }
        CollKind::Messages { folder } => {
            for m in mb.messages.values().filter(|m| m.folder_id == *folder && m.version > w) {
                entries.push(Entry::Seq(m.seq));
            }
            if let Some(b) = mb.bulk.as_ref().filter(|b| b.folder_id == *folder && b.version > w) {
                entries.extend(b.runs().into_iter().map(|(start, len)| Entry::Lazy { start, len }));
            }
            if w > 0
                && let Some(ts) = mb.message_tombstones.get(folder)
            {
                for t in ts.iter().filter(|t| t.entered <= w && t.left > w) {
                    let id = if immutable { &t.immutable_id } else { &t.regular_id };
                    // Moved away and back again: the item is reported present, not removed.
                    let back = immutable && mb.message_index.get(id).and_then(|s| mb.messages.get(s)).is_some_and(|m| m.folder_id == *folder);
                    if !back {
                        entries.push(Entry::Removed(id.clone()));
                    }
                }
            }
            if let Some(top) = top {
                truncate_items(&mut entries, top);
            }
        }
        CollKind::Calendar { calendar, start, end } => {
            for e in mb.events.values().filter(|e| e.calendar_id == *calendar && e.version > w) {
                if e.overlaps(*start, *end) {
                    entries.push(Entry::Seq(e.seq));
                } else if w > 0 {
                    // Graph reports changes outside the window as removals.
                    entries.push(Entry::Removed(e.id.clone()));
                }
            }
            if w > 0
                && let Some(ts) = mb.event_tombstones.get(calendar)
            {
                for t in ts.iter().filter(|t| t.entered <= w && t.left > w) {
                    // Moved away and back again: reported by the loop above, not removed.
                    let back = mb.event_index.get(&t.id).and_then(|s| mb.events.get(s)).is_some_and(|e| e.calendar_id == *calendar);
                    if !back {
                        entries.push(Entry::Removed(t.id.clone()));
                    }
                }
            }
        }
    }
    if replay_rate > 0.0 {
        let n = entries.len();
        for i in 0..n {
            if rng.random::<f64>() < replay_rate {
                let dup = match &entries[i] {
                    Entry::Seq(s) => Entry::Seq(*s),
                    Entry::Folder(f) => Entry::Folder(f.clone()),
                    Entry::Removed(r) => Entry::Removed(r.clone()),
                    // Generated messages are not replayed.
                    Entry::Lazy { .. } => continue,
                };
                let at = rng.random_range(i + 1..=entries.len());
                entries.insert(at, dup);
            }
        }
    }
    Round::new(entries, mb.version)
}

/// Keeps the first `top` items.
fn truncate_items(entries: &mut Vec<Entry>, top: usize) {
    let mut left = top;
    let mut keep = 0;
    for e in entries.iter_mut() {
        if left == 0 {
            break;
        }
        if let Entry::Lazy { len, .. } = e {
            *len = (*len).min(left as u32);
        }
        left -= e.len();
        keep += 1;
    }
    entries.truncate(keep);
}
