//! Changes to the world: the mutation API used by tests, the demo and `POST /_sim/mutate`.
//!
//! Contract: every mutation names a mailbox (user id or UPN) and items by their **immutable**
//! ids; folders by id or well-known name. Each applied mutation bumps the mailbox's change
//! counter, so the next delta round reports it:
//! - created/updated items come back in full; an update changes `changeKey` and advances
//!   `lastModifiedDateTime`;
//! - a deleted message leaves a removal in its folder's delta; a moved message is a removal in
//!   the source folder plus an add in the destination, with a new regular id (the immutable id
//!   stays);
//! - a deleted folder is a hard delete: the folder and its subfolders disappear with their
//!   messages (no per-message removals; the folder delta reports the folder removals);
//! - folder counts (`totalItemCount`, `unreadItemCount`, `childFolderCount`) follow message and
//!   folder changes, and a count change is a folder change;
//! - `CreateEvent` adds a single instance to the default calendar, or to `calendar` (an id);
//!   `CancelEvent` keeps the instance with `isCancelled: true`; `DeleteEvent` removes it (a
//!   removal in its calendar's delta); `MoveEventOutOfWindow` shifts it ten years ahead, so
//!   windows that held it report a removal; `MoveEventToCalendar` keeps its id and is a removal in
//!   the old calendar's delta plus an add in the new one's;
//! - `CreateCalendar` adds a calendar owned by the user, or, with `shared_from` (a user id or
//!   UPN), one that user shares (read-only, removable); `UpdateCalendar` renames and/or recolours
//!   it (new `changeKey`); `DeleteCalendar` is a hard delete of a removable calendar and its events
//!   (the default calendar cannot be deleted); its calendarView delta then answers 404.
//!
//! Messages of the bulk folder ([`crate::bulk`]) are named by their immutable ids like any other;
//! changing one first materializes it into the regular store.
//!
//! Results are one JSON object per mutation, e.g. `{"id": "<immutable id>"}` for creations
//! (`{"id": "<calendar id>"}` for `CreateCalendar`).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rand::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SimError;
use crate::fmt;
use crate::model::{EventTombstone, Mailbox, Message, MessageTombstone, Tombstone, World};
use crate::seed;

/// One change to apply. Serialized with `"op"` in snake_case, e.g.
/// `{"op":"move_message","mailbox":"…","id":"…","to_folder":"archive"}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    CreateMessage {
        mailbox: String,
        folder: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    UpdateMessage {
        mailbox: String,
        id: String,
    },
    DeleteMessage {
        mailbox: String,
        id: String,
    },
    MoveMessage {
        mailbox: String,
        id: String,
        to_folder: String,
    },
    CreateFolder {
        mailbox: String,
        parent: String,
        display_name: String,
    },
    RenameFolder {
        mailbox: String,
        id: String,
        display_name: String,
    },
    DeleteFolder {
        mailbox: String,
        id: String,
    },
    CreateEvent {
        mailbox: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// Start instant; default: tomorrow 10:00 UTC.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_minutes: Option<i64>,
        #[serde(default)]
        all_day: bool,
        /// Calendar id; default: the default calendar.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        calendar: Option<String>,
    },
    UpdateEvent {
        mailbox: String,
        id: String,
    },
    CancelEvent {
        mailbox: String,
        id: String,
    },
    DeleteEvent {
        mailbox: String,
        id: String,
    },
    MoveEventOutOfWindow {
        mailbox: String,
        id: String,
    },
    MoveEventToCalendar {
        mailbox: String,
        id: String,
        to_calendar: String,
    },
    CreateCalendar {
        mailbox: String,
        name: String,
        /// User id or UPN of the owner who shares it; default: the mailbox's own user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shared_from: Option<String>,
    },
    UpdateCalendar {
        mailbox: String,
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// A Graph colour name (`auto`, `lightBlue`, …); sets `hexColor` to match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
    },
    DeleteCalendar {
        mailbox: String,
        id: String,
    },
}

impl Mutation {
    pub fn mailbox(&self) -> &str {
        match self {
            Mutation::CreateMessage { mailbox, .. }
            | Mutation::UpdateMessage { mailbox, .. }
            | Mutation::DeleteMessage { mailbox, .. }
            | Mutation::MoveMessage { mailbox, .. }
            | Mutation::CreateFolder { mailbox, .. }
            | Mutation::RenameFolder { mailbox, .. }
            | Mutation::DeleteFolder { mailbox, .. }
            | Mutation::CreateEvent { mailbox, .. }
            | Mutation::UpdateEvent { mailbox, .. }
            | Mutation::CancelEvent { mailbox, .. }
            | Mutation::DeleteEvent { mailbox, .. }
            | Mutation::MoveEventOutOfWindow { mailbox, .. }
            | Mutation::MoveEventToCalendar { mailbox, .. }
            | Mutation::CreateCalendar { mailbox, .. }
            | Mutation::UpdateCalendar { mailbox, .. }
            | Mutation::DeleteCalendar { mailbox, .. } => mailbox,
        }
    }
}

/// The next modification time: now, but always after the previous one.
fn next_time(prev: Option<&Value>, parse_fmt: bool) -> DateTime<Utc> {
    let now = Utc::now();
    let prev = prev.and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc));
    let step = if parse_fmt { Duration::seconds(1) } else { Duration::milliseconds(1) };
    match prev {
        Some(p) if p + step > now => p + step,
        _ => now,
    }
}

fn touch_folder(mb: &mut Mailbox, id: &str, v: u64) {
    if let Some(f) = mb.folders.get_mut(id) {
        f.version = v;
    }
}

fn adjust_counts(mb: &mut Mailbox, folder: &str, total: i64, unread: i64, v: u64) {
    if let Some(f) = mb.folders.get_mut(folder) {
        f.total += total;
        f.unread += unread;
        if unread != 0 || total != 0 {
            f.version = v;
        }
    }
}

fn touch_message(m: &mut Message, rng: &mut StdRng, v: u64) {
    let t = next_time(m.props.get("lastModifiedDateTime"), true);
    m.props.insert("lastModifiedDateTime".into(), json!(fmt::msg_ts(t)));
    m.props.insert("changeKey".into(), json!(seed::change_key(rng)));
    m.version = v;
    m.cache.clear();
}

fn touch_event(e: &mut crate::model::Event, rng: &mut StdRng, v: u64) {
    let t = next_time(e.props.get("lastModifiedDateTime"), false);
    e.props.insert("lastModifiedDateTime".into(), json!(fmt::evt_ts(t)));
    e.props.insert("changeKey".into(), json!(seed::change_key(rng)));
    e.version = v;
    e.cache.clear();
}

/// Applies one mutation.
pub fn apply(world: &mut World, rng: &mut StdRng, m: Mutation) -> Result<Value, SimError> {
    let key = m.mailbox().to_string();
    let ui = world.user_index(&key).ok_or_else(|| SimError::UnknownMailbox(key.clone()))?;
    let owner = seed::person_of(&world.users[ui]);
    // The owner of a shared calendar to create, resolved before the mailbox is borrowed.
    let sharer = match &m {
        Mutation::CreateCalendar { shared_from: Some(k), .. } => {
            let oi = world.user_index(k).ok_or_else(|| SimError::Invalid(format!("shared_from {k:?} is not a user of the tenant")))?;
            Some(seed::person_of(&world.users[oi]))
        }
        _ => None,
    };
    let mb = world.users[ui].mailbox.as_mut().ok_or_else(|| SimError::UnknownMailbox(key.clone()))?;
    let calendar_of = |mb: &Mailbox, c: &str| {
        mb.calendars.contains_key(c).then(|| c.to_string()).ok_or_else(|| SimError::UnknownCalendar { mailbox: key.clone(), calendar: c.to_string() })
    };
    let folder_of = |mb: &Mailbox, f: &str| {
        mb.folder_id(f).filter(|id| *id != mb.root_id).ok_or_else(|| SimError::UnknownFolder { mailbox: key.clone(), folder: f.to_string() })
    };
    let no_msg = |id: &str| SimError::UnknownMessage { mailbox: key.clone(), id: id.to_string() };
    let no_evt = |id: &str| SimError::UnknownEvent { mailbox: key.clone(), id: id.to_string() };
    match m {
        Mutation::CreateMessage { folder, subject, .. } => {
            let fid = folder_of(mb, &folder)?;
            let wk = mb.folders[&fid].well_known.clone();
            let now = Utc::now();
            let props = seed::message_props(rng, &owner, wk.as_deref(), now, subject);
            let (imm, reg) = seed::new_message_ids(rng);
            let v = mb.bump();
            seed::insert_message(
                mb,
                Message {
                    seq: 0,
                    immutable_id: imm.clone(),
                    regular_id: reg.clone(),
                    folder_id: fid.clone(),
                    created_version: v,
                    entered_version: v,
                    version: v,
                    props,
                    cache: Vec::new(),
                },
            );
            touch_folder(mb, &fid, v);
            Ok(json!({"id": imm, "regular_id": reg, "folder": fid}))
        }
        Mutation::UpdateMessage { id, .. } => {
            mb.materialize(&id);
            let v = mb.bump();
            let msg = mb.message_mut(&id).ok_or_else(|| no_msg(&id))?;
            let was_read = msg.is_read();
            msg.props.insert("isRead".into(), json!(!was_read));
            let flag = match msg.props.get("flag").and_then(|f| f.get("flagStatus")).and_then(Value::as_str) {
                Some("flagged") => "complete",
                Some("complete") => "notFlagged",
                _ => "flagged",
            };
            msg.props.insert("flag".into(), json!({"flagStatus": flag}));
            let cats =
                if msg.props.get("categories").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) { json!([]) } else { json!(["Purple category"]) };
            msg.props.insert("categories".into(), cats);
            touch_message(msg, rng, v);
            let fid = msg.folder_id.clone();
            adjust_counts(mb, &fid, 0, if was_read { 1 } else { -1 }, v);
            Ok(json!({"id": id}))
        }
        Mutation::DeleteMessage { id, .. } => {
            mb.materialize(&id);
            let seq = *mb.message_index.get(&id).ok_or_else(|| no_msg(&id))?;
            let v = mb.bump();
            let msg = mb.messages.remove(&seq).expect("indexed");
            mb.message_index.remove(&id);
            mb.message_tombstones.entry(msg.folder_id.clone()).or_default().push(MessageTombstone {
                immutable_id: msg.immutable_id.clone(),
                regular_id: msg.regular_id.clone(),
                entered: msg.entered_version,
                left: v,
            });
            adjust_counts(mb, &msg.folder_id, -1, if msg.is_read() { 0 } else { -1 }, v);
            Ok(json!({"id": id}))
        }
        Mutation::MoveMessage { id, to_folder, .. } => {
            let to = folder_of(mb, &to_folder)?;
            mb.materialize(&id);
            let v = mb.bump();
            let new_reg = seed::new_message_ids(rng).1;
            let msg = mb.message_mut(&id).ok_or_else(|| no_msg(&id))?;
            if msg.folder_id == to {
                return Ok(json!({"id": id, "regular_id": msg.regular_id}));
            }
            let from = std::mem::replace(&mut msg.folder_id, to.clone());
            let tomb = MessageTombstone {
                immutable_id: msg.immutable_id.clone(),
                regular_id: std::mem::replace(&mut msg.regular_id, new_reg.clone()),
                entered: msg.entered_version,
                left: v,
            };
            msg.entered_version = v;
            touch_message(msg, rng, v);
            let unread = if msg.is_read() { 0 } else { 1 };
            mb.message_tombstones.entry(from.clone()).or_default().push(tomb);
            adjust_counts(mb, &from, -1, -unread, v);
            adjust_counts(mb, &to, 1, unread, v);
            Ok(json!({"id": id, "regular_id": new_reg}))
        }
        Mutation::CreateFolder { parent, display_name, .. } => {
            let p = if parent.eq_ignore_ascii_case("msgfolderroot") || parent == mb.root_id { mb.root_id.clone() } else { folder_of(mb, &parent)? };
            let id = seed::new_folder(rng, mb, &p, &display_name, None);
            let v = mb.version;
            touch_folder(mb, &p, v);
            Ok(json!({"id": id}))
        }
        Mutation::RenameFolder { id, display_name, .. } => {
            let fid = folder_of(mb, &id)?;
            let v = mb.bump();
            let f = mb.folders.get_mut(&fid).expect("resolved");
            f.display_name = display_name;
            f.version = v;
            Ok(json!({"id": fid}))
        }
        Mutation::DeleteFolder { id, .. } => {
            let fid = folder_of(mb, &id)?;
            if mb.folders[&fid].well_known.is_some() {
                return Err(SimError::Invalid(format!("folder {id:?} is a well-known folder and cannot be deleted")));
            }
            let v = mb.bump();
            let mut doomed = vec![fid.clone()];
            let mut i = 0;
            while i < doomed.len() {
                let kids: Vec<String> = mb.folders.values().filter(|f| f.parent_id == doomed[i]).map(|f| f.id.clone()).collect();
                doomed.extend(kids);
                i += 1;
            }
            let parent = mb.folders[&fid].parent_id.clone();
            for d in &doomed {
                let f = mb.folders.remove(d).expect("listed");
                mb.folder_tombstones.push(Tombstone { id: f.id, created_version: f.created_version, version: v });
                mb.message_tombstones.remove(d);
            }
            let gone: Vec<(u64, String)> = mb.messages.values().filter(|m| doomed.contains(&m.folder_id)).map(|m| (m.seq, m.immutable_id.clone())).collect();
            for (seq, imm) in gone {
                mb.messages.remove(&seq);
                mb.message_index.remove(&imm);
            }
            touch_folder(mb, &parent, v);
            Ok(json!({"id": fid, "deleted_folders": doomed}))
        }
        Mutation::CreateEvent { subject, start, duration_minutes, all_day, calendar, .. } => {
            let calendar = match calendar {
                Some(c) => calendar_of(mb, &c)?,
                None => mb.default_calendar_id().to_string(),
            };
            let start = start.unwrap_or_else(|| {
                let d = (Utc::now() + Duration::days(1)).date_naive().and_hms_opt(10, 0, 0).unwrap();
                d.and_utc()
            });
            let (s, e): (NaiveDateTime, NaiveDateTime) = if all_day {
                let d = start.date_naive().and_hms_opt(0, 0, 0).unwrap();
                (d, d + Duration::days(1))
            } else {
                (start.naive_utc(), start.naive_utc() + Duration::minutes(duration_minutes.unwrap_or(30)))
            };
            let spec = seed::EventSpec {
                start_local: s,
                end_local: e,
                zone: "UTC".into(),
                all_day,
                kind: "singleInstance",
                series_master_id: None,
                original_start: None,
                cancelled: false,
                subject,
            };
            let id = seed::new_event_id(rng);
            let ev = seed::event(rng, &owner, id.clone(), spec, Utc::now());
            seed::push_event(mb, &calendar, ev);
            Ok(json!({"id": id}))
        }
        Mutation::UpdateEvent { id, .. } => {
            let v = mb.bump();
            let e = mb.event_mut(&id).ok_or_else(|| no_evt(&id))?;
            let subj = e.props.get("subject").and_then(Value::as_str).unwrap_or_default().to_string();
            e.props.insert("subject".into(), json!(format!("{subj} (updated)")));
            if e.props.get("type").and_then(Value::as_str) == Some("occurrence") {
                e.props.insert("type".into(), json!("exception"));
            }
            touch_event(e, rng, v);
            Ok(json!({"id": id}))
        }
        Mutation::CancelEvent { id, .. } => {
            let v = mb.bump();
            let e = mb.event_mut(&id).ok_or_else(|| no_evt(&id))?;
            if e.props.get("isCancelled") != Some(&json!(true)) {
                let subj = e.props.get("subject").and_then(Value::as_str).unwrap_or_default().to_string();
                e.props.insert("subject".into(), json!(format!("Canceled: {subj}")));
            }
            e.props.insert("isCancelled".into(), json!(true));
            e.props.insert("isReminderOn".into(), json!(false));
            touch_event(e, rng, v);
            Ok(json!({"id": id}))
        }
        Mutation::DeleteEvent { id, .. } => {
            let seq = *mb.event_index.get(&id).ok_or_else(|| no_evt(&id))?;
            let v = mb.bump();
            let e = mb.events.remove(&seq).expect("indexed");
            mb.event_index.remove(&id);
            mb.event_tombstones.entry(e.calendar_id).or_default().push(EventTombstone { id: e.id, entered: e.entered_version, left: v });
            Ok(json!({"id": id}))
        }
        Mutation::MoveEventOutOfWindow { id, .. } => {
            let v = mb.bump();
            let e = mb.event_mut(&id).ok_or_else(|| no_evt(&id))?;
            let shift = Duration::days(3650);
            e.start += shift;
            e.end += shift;
            e.local_start += shift;
            e.local_end += shift;
            touch_event(e, rng, v);
            Ok(json!({"id": id}))
        }
        Mutation::MoveEventToCalendar { id, to_calendar, .. } => {
            let to = calendar_of(mb, &to_calendar)?;
            let seq = *mb.event_index.get(&id).ok_or_else(|| no_evt(&id))?;
            if mb.events[&seq].calendar_id == to {
                return Ok(json!({"id": id, "calendar": to}));
            }
            let v = mb.bump();
            let e = mb.events.get_mut(&seq).expect("indexed");
            let from = std::mem::replace(&mut e.calendar_id, to.clone());
            let tomb = EventTombstone { id: e.id.clone(), entered: e.entered_version, left: v };
            e.entered_version = v;
            touch_event(e, rng, v);
            mb.event_tombstones.entry(from).or_default().push(tomb);
            Ok(json!({"id": id, "calendar": to}))
        }
        Mutation::CreateCalendar { name, .. } => {
            let n = mb.calendars.len();
            let color = seed::CALENDAR_COLORS[n % seed::CALENDAR_COLORS.len()].0;
            let id = match sharer {
                Some(o) => seed::new_calendar(rng, mb, &name, "auto", &o, seed::CalendarKind::Shared),
                None => seed::new_calendar(rng, mb, &name, color, &owner, seed::CalendarKind::Own),
            };
            Ok(json!({"id": id}))
        }
        Mutation::UpdateCalendar { id, name, color, .. } => {
            let cid = calendar_of(mb, &id)?;
            let v = mb.bump();
            let c = mb.calendars.get_mut(&cid).expect("resolved");
            if let Some(n) = name {
                c.name = n;
            }
            if let Some(col) = color {
                c.hex_color = seed::hex_color(&col);
                c.color = col;
            }
            c.change_key = fmt::exchange_id(rng, "DwAAABYAAA", 15);
            c.version = v;
            Ok(json!({"id": cid}))
        }
        Mutation::DeleteCalendar { id, .. } => {
            let cid = calendar_of(mb, &id)?;
            if !mb.calendars[&cid].is_removable {
                return Err(SimError::Invalid(format!("calendar {id:?} is the default calendar and cannot be deleted")));
            }
            let v = mb.bump();
            let c = mb.calendars.remove(&cid).expect("resolved");
            mb.calendar_tombstones.push(Tombstone { id: c.id, created_version: c.created_version, version: v });
            mb.event_tombstones.remove(&cid);
            let gone: Vec<(u64, String)> = mb.events.values().filter(|e| e.calendar_id == cid).map(|e| (e.seq, e.id.clone())).collect();
            for (seq, eid) in &gone {
                mb.events.remove(seq);
                mb.event_index.remove(eid);
            }
            Ok(json!({"id": cid, "deleted_events": gone.len()}))
        }
    }
}

/// A round of every kind of change for every mailbox (see [`crate::Simulator::random_changes`]).
pub fn random_changes(world: &World, seed_: u64, n: usize) -> Vec<Mutation> {
    let mut rng = StdRng::seed_from_u64(seed_);
    let mut out = Vec::new();
    for u in &world.users {
        let Some(mb) = &u.mailbox else { continue };
        let mailbox = u.id.clone();
        // A leaf user folder to delete (never a well-known one), if any.
        let doomed = mb
            .folders
            .values()
            .filter(|f| f.well_known.is_none() && !mb.folders.values().any(|c| c.parent_id == f.id))
            .map(|f| f.id.clone())
            .collect::<Vec<_>>()
            .choose(&mut rng)
            .cloned();
        let live: Vec<String> = mb.folders.keys().filter(|f| Some(*f) != doomed.as_ref()).cloned().collect();
        let mut msgs: Vec<(String, &String)> =
            mb.messages.values().filter(|m| Some(&m.folder_id) != doomed.as_ref()).map(|m| (m.immutable_id.clone(), &m.folder_id)).collect();
        // Generated bulk messages: a sample of up to three per change, drawn by index.
        if let Some(b) = &mb.bulk {
            let want = (3 * n).min(b.present());
            let mut picked = std::collections::BTreeSet::new();
            while picked.len() < want {
                let k = rng.random_range(0..b.count);
                if b.is_lazy(k) {
                    picked.insert(k);
                }
            }
            msgs.extend(picked.into_iter().map(|k| (b.immutable_id(k), &b.folder_id)));
        }
        msgs.shuffle(&mut rng);
        let mut msgs = msgs.into_iter();
        for _ in 0..n {
            out.push(Mutation::CreateMessage { mailbox: mailbox.clone(), folder: live.choose(&mut rng).unwrap().clone(), subject: None });
        }
        for _ in 0..n {
            if let Some((id, _)) = msgs.next() {
                out.push(Mutation::UpdateMessage { mailbox: mailbox.clone(), id });
            }
        }
        for _ in 0..n {
            if let Some((id, _)) = msgs.next() {
                out.push(Mutation::DeleteMessage { mailbox: mailbox.clone(), id });
            }
        }
        for _ in 0..n {
            if let Some((id, folder)) = msgs.next() {
                let to = live.iter().filter(|f| *f != folder).cloned().collect::<Vec<_>>();
                if let Some(to) = to.choose(&mut rng) {
                    out.push(Mutation::MoveMessage { mailbox: mailbox.clone(), id, to_folder: to.clone() });
                }
            }
        }
        out.push(Mutation::CreateFolder { mailbox: mailbox.clone(), parent: "inbox".into(), display_name: format!("Folder {}", rng.random_range(1000..9999)) });
        if let Some(f) = live.iter().find(|f| mb.folders[*f].well_known.is_none()) {
            out.push(Mutation::RenameFolder { mailbox: mailbox.clone(), id: f.clone(), display_name: format!("Renamed {}", rng.random_range(1000..9999)) });
        }
        if let Some(d) = doomed {
            out.push(Mutation::DeleteFolder { mailbox: mailbox.clone(), id: d });
        }
        let mut evts: Vec<&crate::model::Event> = mb.events.values().collect();
        evts.shuffle(&mut rng);
        let mut evts = evts.into_iter();
        for _ in 0..n {
            out.push(Mutation::CreateEvent { mailbox: mailbox.clone(), subject: None, start: None, duration_minutes: None, all_day: false, calendar: None });
        }
        // Another calendar than the default: one event created in it, one moved into it.
        let other_calendar = mb.calendars_listed().into_iter().find(|c| !c.is_default).map(|c| c.id.clone());
        if let Some(c) = &other_calendar {
            out.push(Mutation::CreateEvent {
                mailbox: mailbox.clone(),
                subject: None,
                start: None,
                duration_minutes: None,
                all_day: false,
                calendar: Some(c.clone()),
            });
        }
        for _ in 0..n {
            if let Some(e) = evts.next() {
                out.push(Mutation::UpdateEvent { mailbox: mailbox.clone(), id: e.id.clone() });
            }
        }
        for _ in 0..n {
            if let Some(e) = evts.next() {
                out.push(Mutation::CancelEvent { mailbox: mailbox.clone(), id: e.id.clone() });
            }
        }
        for _ in 0..n {
            if let Some(e) = evts.next() {
                out.push(Mutation::DeleteEvent { mailbox: mailbox.clone(), id: e.id.clone() });
            }
        }
        if let Some(e) = evts.next() {
            out.push(Mutation::MoveEventOutOfWindow { mailbox: mailbox.clone(), id: e.id.clone() });
        }
        if let (Some(c), Some(e)) = (&other_calendar, evts.find(|e| other_calendar.as_ref() != Some(&e.calendar_id))) {
            out.push(Mutation::MoveEventToCalendar { mailbox: mailbox.clone(), id: e.id.clone(), to_calendar: c.clone() });
        }
    }
    out
}
