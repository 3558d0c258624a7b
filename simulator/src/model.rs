//! The simulated tenant: users, mailboxes, folders, messages, calendars and event instances.
//!
//! Every mailbox has a change counter (`version`). Each entity records the version of its
//! creation and of its last change, and every removal leaves a tombstone with the version at
//! which it happened; the delta engine (`sync`) answers "what changed since version W" from
//! these. Every event belongs to one calendar of its mailbox; an event that leaves a calendar
//! (deleted, or moved to another calendar) leaves a tombstone in that calendar, as a message
//! leaving a folder does. Message and event wire properties are kept as JSON maps (everything except the
//! per-request parts: id form, parentFolderId, webLink, start/end rendering), and each entity
//! caches its serialized JSON per request shape until it changes. The bulk folder's messages
//! ([`crate::bulk`]) are not stored until they change ([`Mailbox::materialize`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::bulk::Bulk;

/// The whole tenant.
pub struct World {
    pub users: Vec<User>,
    /// Domain of the tenant, e.g. `contoso.onmicrosoft.com`.
    pub domain: String,
}

pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub mailbox: Option<Mailbox>,
}

impl World {
    /// Index of the user with this id or UPN (case-insensitive UPN).
    pub fn user_index(&self, key: &str) -> Option<usize> {
        self.users.iter().position(|u| u.id == key || u.upn.eq_ignore_ascii_case(key))
    }
}

pub struct Mailbox {
    /// Change counter; bumped by every change in this mailbox.
    pub version: u64,
    pub root_id: String,
    /// Well-known name (lower case) → folder id.
    pub well_known: HashMap<String, String>,
    pub folders: BTreeMap<String, Folder>,
    pub folder_tombstones: Vec<Tombstone>,
    /// Message seq → message; seq gives a stable order.
    pub messages: BTreeMap<u64, Message>,
    /// Immutable id → seq.
    pub message_index: HashMap<String, u64>,
    /// Folder id → messages that left that folder (deleted or moved out).
    pub message_tombstones: HashMap<String, Vec<MessageTombstone>>,
    pub events: BTreeMap<u64, Event>,
    pub event_index: HashMap<String, u64>,
    /// Calendar id → events that left that calendar (deleted or moved out).
    pub event_tombstones: HashMap<String, Vec<EventTombstone>>,
    /// Calendar id → calendar; the listing orders them by creation (`created_version`).
    pub calendars: BTreeMap<String, Calendar>,
    /// Deleted calendars (no Graph route reports them; kept for the record).
    pub calendar_tombstones: Vec<Tombstone>,
    pub next_seq: u64,
    /// The lazily generated bulk folder ([`crate::bulk`]), in the first mailbox when configured.
    pub bulk: Option<Bulk>,
}

impl Mailbox {
    /// Advances the change counter and returns the new version.
    pub fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Resolves a folder id or well-known name to a folder id (folders only, not the root).
    pub fn folder_id(&self, key: &str) -> Option<String> {
        if self.folders.contains_key(key) {
            return Some(key.to_string());
        }
        self.well_known.get(&key.to_ascii_lowercase()).cloned()
    }

    /// Moves a still generated bulk message into the regular store, with its generated ids,
    /// properties and versions, so that it can change; the folder counts already include it.
    /// Returns whether `imm` named such a message.
    pub fn materialize(&mut self, imm: &str) -> bool {
        let Some(bulk) = self.bulk.as_mut() else { return false };
        let Some(k) = bulk.index_of(imm).filter(|k| bulk.is_lazy(*k)) else { return false };
        let mut m = bulk.message(k);
        bulk.taken.insert(k);
        m.seq = self.next_seq;
        self.next_seq += 1;
        self.message_index.insert(m.immutable_id.clone(), m.seq);
        self.messages.insert(m.seq, m);
        true
    }

    /// The (folder id, immutable id) of every message present, stored or generated.
    pub fn message_keys(&self) -> BTreeSet<(String, String)> {
        let mut out: BTreeSet<(String, String)> = self.messages.values().map(|m| (m.folder_id.clone(), m.immutable_id.clone())).collect();
        if let Some(b) = &self.bulk {
            out.extend(b.present_indices().map(|k| (b.folder_id.clone(), b.immutable_id(k))));
        }
        out
    }

    pub fn message_mut(&mut self, imm: &str) -> Option<&mut Message> {
        let seq = *self.message_index.get(imm)?;
        self.messages.get_mut(&seq)
    }

    pub fn event_mut(&mut self, id: &str) -> Option<&mut Event> {
        let seq = *self.event_index.get(id)?;
        self.events.get_mut(&seq)
    }

    /// Id of the default calendar ("Calendar"); every mailbox has one.
    pub fn default_calendar_id(&self) -> &str {
        self.calendars.values().find(|c| c.is_default).map(|c| c.id.as_str()).unwrap_or_default()
    }

    /// The calendars in listing order (creation order; the default calendar first).
    pub fn calendars_listed(&self) -> Vec<&Calendar> {
        let mut v: Vec<&Calendar> = self.calendars.values().collect();
        v.sort_by_key(|c| (!c.is_default, c.created_version));
        v
    }
}

/// A calendar of a mailbox: the default one, one the user created, or one another user shares.
pub struct Calendar {
    pub id: String,
    pub name: String,
    /// Graph's `calendarColor`: `auto`, `lightBlue`, `lightGreen`, …
    pub color: String,
    /// `""` or `#rrggbb`.
    pub hex_color: String,
    pub is_default: bool,
    pub can_edit: bool,
    pub can_share: bool,
    pub can_view_private_items: bool,
    pub is_removable: bool,
    pub owner_name: String,
    pub owner_address: String,
    pub change_key: String,
    pub created_version: u64,
    pub version: u64,
}

/// An event that left a calendar: it was there from `entered` until `left`.
pub struct EventTombstone {
    pub id: String,
    pub entered: u64,
    pub left: u64,
}

pub struct Folder {
    pub id: String,
    pub display_name: String,
    pub parent_id: String,
    pub well_known: Option<String>,
    pub created_version: u64,
    pub version: u64,
    pub total: i64,
    pub unread: i64,
}

/// A removed folder or calendar.
pub struct Tombstone {
    pub id: String,
    pub created_version: u64,
    pub version: u64,
}

/// A message that left a folder: it was there from `entered` until `left`.
pub struct MessageTombstone {
    pub immutable_id: String,
    pub regular_id: String,
    pub entered: u64,
    pub left: u64,
}

pub struct Message {
    pub seq: u64,
    pub immutable_id: String,
    /// Regular id; changes on every move.
    pub regular_id: String,
    pub folder_id: String,
    pub created_version: u64,
    /// Version at which the message entered its current folder.
    pub entered_version: u64,
    pub version: u64,
    /// Wire properties except `id`, `parentFolderId`, `webLink` and the odata annotations.
    pub props: Map<String, Value>,
    pub cache: Vec<(String, Bytes)>,
}

impl Message {
    pub fn id(&self, immutable: bool) -> &str {
        if immutable { &self.immutable_id } else { &self.regular_id }
    }
    pub fn is_read(&self) -> bool {
        self.props.get("isRead").and_then(Value::as_bool).unwrap_or(false)
    }
}

/// One event instance as calendarView shows it (never a series master).
pub struct Event {
    pub seq: u64,
    pub id: String,
    /// The calendar the instance is in.
    pub calendar_id: String,
    pub created_version: u64,
    /// Version at which the event entered its current calendar.
    pub entered_version: u64,
    pub version: u64,
    /// Start and end instants (for all-day events: midnight in `original_tz`).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    /// Wall-clock start/end in `original_tz` (used for all-day events).
    pub local_start: NaiveDateTime,
    pub local_end: NaiveDateTime,
    pub original_tz: String,
    /// Wire properties except `id`, `start`, `end` and the odata annotations.
    pub props: Map<String, Value>,
    pub cache: Vec<(String, Bytes)>,
}

impl Event {
    /// Whether the instance overlaps `[start, end)`.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start < end && self.end > start
    }
}
