//! Deterministic generation of the world from a seed, and builders shared with mutations.
//!
//! Users are `Given Surname <given.surname@contoso.onmicrosoft.com>`; the last user (when there
//! are at least two) has no mailbox. Each mailbox gets the well-known folders (Inbox, Drafts,
//! Sent Items, Deleted Items, Junk Email, Archive, Outbox) plus user folders with children, a
//! size mix of messages (mostly small HTML bodies, some medium, a few large), and calendar
//! instances: single events, all-day events in a Windows zone, cancelled meetings, and weekly
//! series expanded into occurrences with one exception. Most instances lie between 30 days before
//! and 90 days after the anchor day; a share of the single events (`distant_event_share`, 20 %)
//! lies anywhere from three years before to three years after it.
//!
//! Calendars: every mailbox has its default calendar "Calendar" (not removable, owned by the
//! user), `calendars_per_mailbox` calendars the user created ("Team", "Projects", "Holidays", …),
//! and, with `shared_calendars` and at least two mailboxes in the tenant, one calendar shared by
//! the next user with a mailbox ("<Owner's display name>'s calendar", read-only, removable). Most
//! events are in the default calendar; every other calendar gets a share of the single events (at
//! least two when there are enough), and the first created calendar one whole series when the
//! mailbox has two or more.
//!
//! With `bulk_messages`, the first mailbox's Inbox also holds that many generated messages
//! ([`crate::bulk`]), added last.
//!
//! Everything calendar-specific (calendar ids, which events are distant, which calendar an event is
//! in) is drawn from a second generator per user, so users, folders, messages and the events'
//! ids and properties are the same as in a world without calendars.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use rand::prelude::*;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use crate::config::SimConfig;
use crate::fmt;
use crate::model::{Calendar, Event, Folder, Mailbox, Message, User, World};
use crate::tz;

const GIVEN: &[&str] =
    &["Adele", "Alex", "Diego", "Grady", "Henrietta", "Isaiah", "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep"];
const SURNAME: &[&str] = &[
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Mueller",
    "Langer",
    "Lorenz",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Graham",
    "Wilke",
    "Fernandez",
    "Gupta",
];
const WORDS: &[&str] = &[
    "quarterly",
    "review",
    "budget",
    "meeting",
    "project",
    "launch",
    "customer",
    "feedback",
    "schedule",
    "update",
    "design",
    "report",
    "invoice",
    "travel",
    "contract",
    "draft",
    "agenda",
    "roadmap",
    "release",
    "planning",
    "hiring",
    "onboarding",
    "security",
    "incident",
    "metrics",
    "forecast",
    "partner",
    "workshop",
    "training",
    "survey",
    "the",
    "and",
    "for",
    "with",
    "about",
    "please",
    "next",
    "week",
    "team",
    "notes",
    "follow",
    "up",
    "on",
    "our",
    "new",
    "Zürich",
    "café",
];
const CATEGORIES: &[&str] = &["Red category", "Blue category", "Green category", "Yellow category"];

pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("archive", "Archive"),
    ("outbox", "Outbox"),
];

/// A person as `(name, address)`.
pub type Person = (String, String);

pub fn recipient(p: &Person) -> Value {
    json!({"emailAddress": {"name": p.0, "address": p.1}})
}

pub(crate) fn words(rng: &mut impl Rng, n: std::ops::Range<usize>) -> String {
    let n = rng.random_range(n);
    (0..n).map(|_| *WORDS.choose(rng).unwrap()).collect::<Vec<_>>().join(" ")
}

pub fn change_key(rng: &mut StdRng) -> String {
    fmt::exchange_id(rng, "CQAAABYAAA", 15)
}

pub(crate) fn external_person(rng: &mut impl Rng) -> Person {
    let g = GIVEN.choose(rng).unwrap();
    let s = SURNAME.choose(rng).unwrap();
    (format!("{g} {s}"), format!("{}.{}@fabrikam.example", g.to_lowercase(), s.to_lowercase()))
}

/// HTML body with a realistic size mix; returns (html, plain text).
fn body(rng: &mut StdRng) -> (String, String) {
    let r: f64 = rng.random();
    let target = if r < 0.75 {
        rng.random_range(150..1200)
    } else if r < 0.97 {
        rng.random_range(2_000..6_000)
    } else {
        rng.random_range(15_000..40_000)
    };
    let mut text = String::new();
    let mut html = String::from("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>");
    while html.len() < target {
        let para = words(rng, 8..40);
        html.push_str("<p>");
        html.push_str(&para);
        html.push_str("</p>");
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&para);
    }
    html.push_str("</body></html>");
    (html, text)
}

/// Full message properties (without id, parentFolderId, webLink).
pub fn message_props(rng: &mut StdRng, owner: &Person, folder_kind: Option<&str>, received: DateTime<Utc>, subject: Option<String>) -> Map<String, Value> {
    let is_sent = matches!(folder_kind, Some("sentitems") | Some("outbox"));
    let is_draft = folder_kind == Some("drafts");
    let other = external_person(rng);
    let (from, to): (Person, Vec<Person>) = if is_sent || is_draft {
        (owner.clone(), (0..rng.random_range(1..4)).map(|_| external_person(rng)).collect())
    } else {
        let mut to = vec![owner.clone()];
        for _ in 0..rng.random_range(0..3) {
            to.push(external_person(rng));
        }
        (other, to)
    };
    let cc: Vec<Person> = (0..rng.random_range(0..3).min(rng.random_range(0..3))).map(|_| external_person(rng)).collect();
    let (html, text) = body(rng);
    let preview: String = text.chars().take(255).collect();
    let subject = subject.unwrap_or_else(|| {
        let mut s = words(rng, 2..8);
        if rng.random_bool(0.2) {
            s = format!("RE: {s}");
        }
        s
    });
    let sent = received - Duration::seconds(rng.random_range(1..120));
    let importance = *["normal", "normal", "normal", "normal", "high", "low"].choose(rng).unwrap();
    let flag = *["notFlagged", "notFlagged", "notFlagged", "flagged", "complete"].choose(rng).unwrap();
    let cats: Vec<&str> = if rng.random_bool(0.2) { vec![*CATEGORIES.choose(rng).unwrap()] } else { vec![] };
    let conv = fmt::exchange_id(rng, "AAQkAGI2", 30);
    let mut conv_index = [0u8; 22];
    rng.fill_bytes(&mut conv_index);
    use base64::Engine;
    let imid = format!("<{}@{}.prod.outlook.com>", fmt::exchange_id(rng, "PH0PR04MB", 12).replace(['=', '-', '_'], "A"), "PH0PR04MB7654.namprd04");
    let mut p = Map::new();
    p.insert("createdDateTime".into(), json!(fmt::msg_ts(received)));
    p.insert("lastModifiedDateTime".into(), json!(fmt::msg_ts(received + Duration::seconds(rng.random_range(0..5)))));
    p.insert("changeKey".into(), json!(change_key(rng)));
    p.insert("categories".into(), json!(cats));
    p.insert("receivedDateTime".into(), json!(fmt::msg_ts(received)));
    p.insert("sentDateTime".into(), json!(fmt::msg_ts(sent)));
    p.insert("hasAttachments".into(), json!(rng.random_bool(0.15)));
    p.insert("internetMessageId".into(), json!(imid));
    p.insert("subject".into(), json!(subject));
    p.insert("bodyPreview".into(), json!(preview));
    p.insert("importance".into(), json!(importance));
    p.insert("conversationId".into(), json!(conv));
    p.insert("conversationIndex".into(), json!(base64::engine::general_purpose::STANDARD.encode(conv_index)));
    p.insert("isDeliveryReceiptRequested".into(), if rng.random_bool(0.5) { Value::Null } else { json!(false) });
    p.insert("isReadReceiptRequested".into(), json!(rng.random_bool(0.05)));
    p.insert("isRead".into(), json!(is_sent || is_draft || rng.random_bool(0.7)));
    p.insert("isDraft".into(), json!(is_draft));
    p.insert("inferenceClassification".into(), json!(if rng.random_bool(0.8) { "focused" } else { "other" }));
    p.insert("body".into(), json!({"contentType": "html", "content": html}));
    p.insert("sender".into(), recipient(&from));
    p.insert("from".into(), recipient(&from));
    p.insert("toRecipients".into(), Value::Array(to.iter().map(recipient).collect()));
    p.insert("ccRecipients".into(), Value::Array(cc.iter().map(recipient).collect()));
    p.insert("bccRecipients".into(), json!([]));
    p.insert("replyTo".into(), json!([]));
    p.insert("flag".into(), json!({"flagStatus": flag}));
    p
}

/// What kind of calendar instance to build.
pub struct EventSpec {
    pub start_local: NaiveDateTime,
    pub end_local: NaiveDateTime,
    pub zone: String,
    pub all_day: bool,
    pub kind: &'static str,
    pub series_master_id: Option<String>,
    pub original_start: Option<DateTime<Utc>>,
    pub cancelled: bool,
    pub subject: Option<String>,
}

/// Builds an event instance (everything but seq/versions, filled by the caller).
pub fn event(rng: &mut StdRng, owner: &Person, id: String, spec: EventSpec, created: DateTime<Utc>) -> Event {
    let start = tz::to_utc(spec.start_local, &spec.zone);
    let end = tz::to_utc(spec.end_local, &spec.zone);
    let organizer_is_owner = rng.random_bool(0.6);
    let organizer = if organizer_is_owner { owner.clone() } else { external_person(rng) };
    let mut attendees = Vec::new();
    for i in 0..rng.random_range(0..5) {
        let p = if i == 0 && !organizer_is_owner { owner.clone() } else { external_person(rng) };
        let resp = *["none", "accepted", "tentativelyAccepted", "declined", "notResponded"].choose(rng).unwrap();
        let time = if resp == "none" || resp == "notResponded" { "0001-01-01T00:00:00Z".to_string() } else { fmt::msg_ts(created + Duration::hours(1)) };
        attendees.push(json!({
            "type": if rng.random_bool(0.8) { "required" } else { "optional" },
            "status": {"response": resp, "time": time},
            "emailAddress": {"name": p.0, "address": p.1},
        }));
    }
    let online = !spec.all_day && rng.random_bool(0.4);
    let (html, text) = if rng.random_bool(0.3) { (String::new(), String::new()) } else { body(rng) };
    let subject = spec.subject.unwrap_or_else(|| words(rng, 2..6));
    let location = if rng.random_bool(0.5) { format!("Room {}", rng.random_range(100..500)) } else { String::new() };
    let mut p = Map::new();
    p.insert("createdDateTime".into(), json!(fmt::evt_ts(created)));
    p.insert("lastModifiedDateTime".into(), json!(fmt::evt_ts(created + Duration::milliseconds(rng.random_range(0..90_000)))));
    p.insert("changeKey".into(), json!(change_key(rng)));
    p.insert("categories".into(), json!(if rng.random_bool(0.2) { vec![*CATEGORIES.choose(rng).unwrap()] } else { vec![] }));
    p.insert("transactionId".into(), Value::Null);
    p.insert("originalStartTimeZone".into(), json!(spec.zone));
    p.insert("originalEndTimeZone".into(), json!(spec.zone));
    p.insert("iCalUId".into(), json!(fmt::exchange_id(rng, "040000008200E00074C5B7101A82E008", 24).replace(['=', '-', '_'], "0")));
    p.insert("reminderMinutesBeforeStart".into(), json!(if spec.all_day { 1080 } else { 15 }));
    p.insert("isReminderOn".into(), json!(!spec.cancelled));
    p.insert("hasAttachments".into(), json!(false));
    p.insert("subject".into(), json!(if spec.cancelled { format!("Canceled: {subject}") } else { subject }));
    p.insert("bodyPreview".into(), json!(text.chars().take(255).collect::<String>()));
    p.insert("importance".into(), json!(*["normal", "normal", "high", "low"].choose(rng).unwrap()));
    p.insert("sensitivity".into(), json!(*["normal", "normal", "normal", "private", "personal"].choose(rng).unwrap()));
    p.insert("isAllDay".into(), json!(spec.all_day));
    p.insert("isCancelled".into(), json!(spec.cancelled));
    p.insert("isOrganizer".into(), json!(organizer_is_owner));
    p.insert("responseRequested".into(), json!(true));
    p.insert("seriesMasterId".into(), json!(spec.series_master_id));
    p.insert("showAs".into(), json!(if spec.all_day { "free" } else { *["busy", "busy", "tentative", "oof", "workingElsewhere"].choose(rng).unwrap() }));
    p.insert("type".into(), json!(spec.kind));
    p.insert(
        "webLink".into(),
        json!(format!(
            "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        )),
    );
    p.insert("onlineMeetingUrl".into(), Value::Null);
    p.insert("isOnlineMeeting".into(), json!(online));
    p.insert("onlineMeetingProvider".into(), json!(if online { "teamsForBusiness" } else { "unknown" }));
    p.insert("allowNewTimeProposals".into(), json!(true));
    p.insert("isDraft".into(), json!(false));
    p.insert("hideAttendees".into(), json!(false));
    p.insert("responseStatus".into(), json!({"response": if organizer_is_owner { "organizer" } else { "accepted" }, "time": "0001-01-01T00:00:00Z"}));
    p.insert("body".into(), json!({"contentType": "html", "content": html}));
    p.insert("location".into(), json!({"displayName": location, "locationType": "default", "uniqueIdType": if location.is_empty() { "unknown" } else { "private" }, "address": {}, "coordinates": {}}));
    p.insert(
        "locations".into(),
        if location.is_empty() { json!([]) } else { json!([{"displayName": location, "locationType": "default", "uniqueIdType": "private"}]) },
    );
    p.insert("recurrence".into(), Value::Null);
    p.insert("attendees".into(), Value::Array(attendees));
    p.insert("organizer".into(), recipient(&organizer));
    p.insert(
        "onlineMeeting".into(),
        if online {
            json!({"joinUrl": format!("https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0", fmt::opaque_token(18))})
        } else {
            Value::Null
        },
    );
    if let Some(os) = spec.original_start {
        p.insert("originalStart".into(), json!(fmt::msg_ts(os)));
    }
    Event {
        seq: 0,
        id,
        calendar_id: String::new(),
        created_version: 0,
        entered_version: 0,
        version: 0,
        start,
        end,
        all_day: spec.all_day,
        local_start: spec.start_local,
        local_end: spec.end_local,
        original_tz: spec.zone,
        props: p,
        cache: Vec::new(),
    }
}

/// The anchor day (midnight UTC) calendars are centred on.
pub fn anchor(cfg: &SimConfig) -> DateTime<Utc> {
    let a = cfg.anchor.unwrap_or_else(Utc::now);
    Utc.from_utc_datetime(&a.date_naive().and_hms_opt(0, 0, 0).unwrap())
}

pub fn insert_message(mb: &mut Mailbox, mut m: Message) {
    let seq = mb.next_seq;
    mb.next_seq += 1;
    m.seq = seq;
    if let Some(f) = mb.folders.get_mut(&m.folder_id) {
        f.total += 1;
        if !m.is_read() {
            f.unread += 1;
        }
    }
    mb.message_index.insert(m.immutable_id.clone(), seq);
    mb.messages.insert(seq, m);
}

pub fn insert_event(mb: &mut Mailbox, mut e: Event) {
    let seq = mb.next_seq;
    mb.next_seq += 1;
    e.seq = seq;
    mb.event_index.insert(e.id.clone(), seq);
    mb.events.insert(seq, e);
}

pub fn new_folder(rng: &mut StdRng, mb: &mut Mailbox, parent: &str, name: &str, wk: Option<&str>) -> String {
    let id = fmt::exchange_id(rng, "AQMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAAD", 33);
    let v = mb.bump();
    mb.folders.insert(
        id.clone(),
        Folder {
            id: id.clone(),
            display_name: name.to_string(),
            parent_id: parent.to_string(),
            well_known: wk.map(str::to_string),
            created_version: v,
            version: v,
            total: 0,
            unread: 0,
        },
    );
    if let Some(w) = wk {
        mb.well_known.insert(w.to_string(), id.clone());
    }
    id
}

pub fn new_message_ids(rng: &mut StdRng) -> (String, String) {
    (fmt::exchange_id(rng, "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A", 45), fmt::exchange_id(rng, "AAMkAGI2TG93AAA", 45))
}

pub fn new_event_id(rng: &mut StdRng) -> String {
    fmt::exchange_id(rng, "AAMkAGI2THVSAAA", 45)
}

/// Who a calendar belongs to, which sets its rights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalendarKind {
    /// The mailbox's default "Calendar": not removable.
    Default,
    /// Created by the mailbox's user.
    Own,
    /// Shared with the user by its owner: read-only, removable from the list.
    Shared,
}

/// Calendar colours as Graph names them, with the `hexColor` Outlook shows for them.
pub const CALENDAR_COLORS: &[(&str, &str)] = &[
    ("lightBlue", "#a6d1f5"),
    ("lightGreen", "#87d28e"),
    ("lightOrange", "#fcab73"),
    ("lightGray", "#c0c0c0"),
    ("lightYellow", "#f4d07a"),
    ("lightTeal", "#7fd3c9"),
    ("lightPink", "#ee9ebb"),
    ("lightBrown", "#cba287"),
    ("lightRed", "#f88c9b"),
];

/// `hexColor` of a colour name (`""` for `auto` and unknown names).
pub fn hex_color(color: &str) -> String {
    CALENDAR_COLORS.iter().find(|(c, _)| c.eq_ignore_ascii_case(color)).map(|(_, h)| h.to_string()).unwrap_or_default()
}

/// Names of the calendars users create.
const CALENDAR_NAMES: &[&str] = &["Team", "Projects", "Holidays", "Birthdays", "Travel", "Family"];

/// Adds a calendar to the mailbox (bumping its version) and returns its id.
pub fn new_calendar(rng: &mut StdRng, mb: &mut Mailbox, name: &str, color: &str, owner: &Person, kind: CalendarKind) -> String {
    let id = fmt::exchange_id(rng, "AAMkADIxYjJiYmIzLTFmNjYtNGNhMy04NjJmLTIwZjQzMGI5ZDg3ZQBGAAAAAAD", 46);
    let change_key = fmt::exchange_id(rng, "DwAAABYAAA", 15);
    let v = mb.bump();
    let own = kind != CalendarKind::Shared;
    mb.calendars.insert(
        id.clone(),
        Calendar {
            id: id.clone(),
            name: name.to_string(),
            color: color.to_string(),
            hex_color: hex_color(color),
            is_default: kind == CalendarKind::Default,
            can_edit: own,
            can_share: own,
            can_view_private_items: own,
            is_removable: kind != CalendarKind::Default,
            owner_name: owner.0.clone(),
            owner_address: owner.1.clone(),
            change_key,
            created_version: v,
            version: v,
        },
    );
    id
}

fn owner(u: &User) -> Person {
    (u.display_name.clone(), u.mail.clone().unwrap_or_else(|| u.upn.clone()))
}

/// The second generator of user `i`: calendar ids, distant events, calendar membership.
fn calendar_rng(cfg: &SimConfig, i: usize) -> StdRng {
    StdRng::seed_from_u64(cfg.seed ^ 0xca1e_4da5_0000_0000 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Generates the world.
pub fn world(cfg: &SimConfig, rng: &mut StdRng) -> World {
    let domain = "contoso.onmicrosoft.com".to_string();
    let anchor = anchor(cfg);
    let mut users = Vec::new();
    let mut cal_rngs = Vec::new();
    for i in 0..cfg.users {
        let g = GIVEN[i % GIVEN.len()];
        let s = SURNAME[(i / GIVEN.len() + i) % SURNAME.len()];
        let suffix = if i >= GIVEN.len() { format!("{}", i / GIVEN.len()) } else { String::new() };
        let upn = format!("{}.{}{}@{}", g.to_lowercase(), s.to_lowercase(), suffix, domain);
        let has_mailbox = !(cfg.users >= 2 && i == cfg.users - 1);
        let mut u = User { id: fmt::guid(rng), upn: upn.clone(), display_name: format!("{g} {s}"), mail: has_mailbox.then(|| upn.clone()), mailbox: None };
        let mut cal_rng = calendar_rng(cfg, i);
        if has_mailbox {
            u.mailbox = Some(mailbox(cfg, rng, &mut cal_rng, &owner(&u), anchor));
        }
        users.push(u);
        cal_rngs.push(cal_rng);
    }
    add_calendars(cfg, &mut users, &mut cal_rngs);
    add_bulk(cfg, &mut users, anchor);
    World { users, domain }
}

/// The bulk folder ([`crate::bulk`]) in the first mailbox's Inbox, created last (one version
/// bump) so that everything else is as in a world without it.
fn add_bulk(cfg: &SimConfig, users: &mut [User], anchor: DateTime<Utc>) {
    if cfg.bulk_messages == 0 {
        return;
    }
    let Some(u) = users.iter_mut().find(|u| u.mailbox.is_some()) else { return };
    let person = owner(u);
    let mb = u.mailbox.as_mut().expect("has a mailbox");
    let inbox = mb.well_known["inbox"].clone();
    let v = mb.bump();
    let bulk = crate::bulk::Bulk::new(cfg.seed, cfg.bulk_messages, inbox.clone(), v, person, anchor);
    let f = mb.folders.get_mut(&inbox).expect("the inbox exists");
    f.total += i64::from(bulk.count);
    f.unread += bulk.unread();
    f.version = v;
    mb.bulk = Some(bulk);
}

/// The calendars besides the default one, and the events moved into them (see the module docs).
fn add_calendars(cfg: &SimConfig, users: &mut [User], cal_rngs: &mut [StdRng]) {
    let with_mailbox: Vec<usize> = (0..users.len()).filter(|i| users[*i].mailbox.is_some()).collect();
    for (k, &i) in with_mailbox.iter().enumerate() {
        let rng = &mut cal_rngs[i];
        let me = owner(&users[i]);
        let sharer = (cfg.shared_calendars && with_mailbox.len() >= 2).then(|| {
            let o = &users[with_mailbox[(k + 1) % with_mailbox.len()]];
            (format!("{}'s calendar", o.display_name), owner(o))
        });
        let mb = users[i].mailbox.as_mut().expect("has a mailbox");
        let mut extra = Vec::new();
        for c in 0..cfg.calendars_per_mailbox {
            let base = CALENDAR_NAMES[c % CALENDAR_NAMES.len()];
            let name = if c < CALENDAR_NAMES.len() { base.to_string() } else { format!("{base} {}", c / CALENDAR_NAMES.len() + 1) };
            let color = CALENDAR_COLORS[(k + c) % CALENDAR_COLORS.len()].0;
            extra.push(new_calendar(rng, mb, &name, color, &me, CalendarKind::Own));
        }
        if let Some((name, o)) = sharer {
            extra.push(new_calendar(rng, mb, &name, "auto", &o, CalendarKind::Shared));
        }
        if extra.is_empty() {
            continue;
        }
        // Single events: a share for every other calendar; the default keeps most.
        let n = mb.events.len();
        let quota = (n / (3 * (extra.len() + 1))).max(2);
        let mut singles: Vec<u64> =
            mb.events.values().filter(|e| e.props.get("type").and_then(Value::as_str) == Some("singleInstance")).map(|e| e.seq).collect();
        singles.shuffle(rng);
        let mut singles = singles.into_iter();
        for cal in &extra {
            for seq in singles.by_ref().take(quota) {
                mb.events.get_mut(&seq).expect("listed").calendar_id = cal.clone();
            }
        }
        // The smallest whole series into the first created calendar, when there are two or more
        // and the default calendar still keeps more than half of the events.
        let mut series: BTreeMap<String, usize> = BTreeMap::new();
        for e in mb.events.values() {
            if let Some(m) = e.props.get("seriesMasterId").and_then(Value::as_str) {
                *series.entry(m.to_string()).or_default() += 1;
            }
        }
        let in_default = mb.events.values().filter(|e| !extra.contains(&e.calendar_id)).count();
        let smallest = series.iter().min_by_key(|(m, n)| (**n, (*m).clone())).map(|(m, n)| (m.clone(), *n));
        if let Some((master, _)) = smallest.filter(|(_, size)| series.len() >= 2 && 2 * (in_default - size) > n) {
            for e in mb.events.values_mut().filter(|e| e.props.get("seriesMasterId").and_then(Value::as_str) == Some(master.as_str())) {
                e.calendar_id = extra[0].clone();
            }
        }
    }
}

fn mailbox(cfg: &SimConfig, rng: &mut StdRng, cal_rng: &mut StdRng, owner: &Person, anchor: DateTime<Utc>) -> Mailbox {
    let mut mb = Mailbox {
        version: 0,
        root_id: fmt::exchange_id(rng, "AQMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAAD", 33),
        well_known: HashMap::new(),
        folders: BTreeMap::new(),
        folder_tombstones: Vec::new(),
        messages: BTreeMap::new(),
        message_index: HashMap::new(),
        message_tombstones: HashMap::new(),
        events: BTreeMap::new(),
        event_index: HashMap::new(),
        event_tombstones: HashMap::new(),
        calendars: BTreeMap::new(),
        calendar_tombstones: Vec::new(),
        next_seq: 0,
        bulk: None,
    };
    mb.well_known.insert("msgfolderroot".into(), mb.root_id.clone());
    let root = mb.root_id.clone();
    for (wk, name) in WELL_KNOWN {
        new_folder(rng, &mut mb, &root, name, Some(wk));
    }
    let inbox = mb.well_known["inbox"].clone();
    let projects = new_folder(rng, &mut mb, &inbox, "Projects", None);
    new_folder(rng, &mut mb, &projects, "2024", None);
    let receipts = new_folder(rng, &mut mb, &root, "Receipts", None);
    new_folder(rng, &mut mb, &receipts, "Travel", None);

    // Messages: weighted over folders, inbox-heavy.
    let folder_ids: Vec<(String, Option<String>)> = mb.folders.values().map(|f| (f.id.clone(), f.well_known.clone())).collect();
    let weight = |wk: &Option<String>| match wk.as_deref() {
        Some("inbox") => 40,
        Some("sentitems") => 15,
        Some("archive") => 10,
        Some("deleteditems") => 5,
        Some("drafts") | Some("junkemail") => 3,
        Some("outbox") => 0,
        _ => 6,
    };
    let total_w: u32 = folder_ids.iter().map(|(_, w)| weight(w)).sum();
    for _ in 0..cfg.messages_per_mailbox {
        let mut pick = rng.random_range(0..total_w);
        let mut chosen = &folder_ids[0];
        for f in &folder_ids {
            let w = weight(&f.1);
            if pick < w {
                chosen = f;
                break;
            }
            pick -= w;
        }
        let received = anchor - Duration::seconds(rng.random_range(3600..365 * 86400));
        let props = message_props(rng, owner, chosen.1.as_deref(), received, None);
        let (imm, reg) = new_message_ids(rng);
        let v = mb.bump();
        insert_message(
            &mut mb,
            Message {
                seq: 0,
                immutable_id: imm,
                regular_id: reg,
                folder_id: chosen.0.clone(),
                created_version: v,
                entered_version: v,
                version: v,
                props,
                cache: Vec::new(),
            },
        );
    }

    // Events, in the default calendar ([`add_calendars`] moves some to the others).
    let calendar = new_calendar(cal_rng, &mut mb, "Calendar", "auto", owner, CalendarKind::Default);
    // Every single event adds the share to `due`; one that brings it to 1 is distant, so each
    // mailbox gets its share however its dice fall.
    let distant = cfg.distant_event_share.clamp(0.0, 1.0);
    let mut due: f64 = cal_rng.random::<f64>() * distant;
    let mut made = 0;
    while made < cfg.events_per_mailbox {
        let day = anchor + Duration::days(rng.random_range(-30..90));
        let zone = tz::EVENT_ZONES.choose(rng).unwrap().to_string();
        let created = anchor - Duration::days(rng.random_range(40..200)) + Duration::nanoseconds(rng.random_range(0..1_000_000_000));
        let r: f64 = rng.random();
        if r < 0.15 && cfg.events_per_mailbox - made >= 4 {
            // Weekly series, expanded into occurrences, the third one an exception.
            let n = rng.random_range(3..=(cfg.events_per_mailbox - made).min(8));
            let master = new_event_id(rng);
            let hour = rng.random_range(8..17);
            let subject = words(rng, 3..4);
            for k in 0..n {
                let local = (day + Duration::weeks(k as i64)).date_naive().and_hms_opt(hour, 0, 0).unwrap();
                let original = tz::to_utc(local, &zone);
                let (kind, s) = if k == 2 { ("exception", local + Duration::hours(1)) } else { ("occurrence", local) };
                let spec = EventSpec {
                    start_local: s,
                    end_local: s + Duration::minutes(30),
                    zone: zone.clone(),
                    all_day: false,
                    kind,
                    series_master_id: Some(master.clone()),
                    original_start: Some(original),
                    cancelled: false,
                    subject: Some(subject.clone()),
                };
                let id = new_event_id(rng);
                push_event(&mut mb, &calendar, event(rng, owner, id, spec, created));
            }
            made += n;
            continue;
        }
        let all_day = r < 0.27;
        let cancelled = (0.27..0.32).contains(&r);
        due += distant;
        let (day, created) = if due >= 1.0 {
            due -= 1.0;
            let far = anchor + Duration::days(cal_rng.random_range(-3 * 365..=3 * 365));
            (far, created.min(far - Duration::days(7)))
        } else {
            (day, created)
        };
        let (s, e) = if all_day {
            let d = day.date_naive().and_hms_opt(0, 0, 0).unwrap();
            (d, d + Duration::days(rng.random_range(1..3)))
        } else {
            let s = day.date_naive().and_hms_opt(rng.random_range(7..19), *[0, 15, 30].choose(rng).unwrap(), 0).unwrap();
            (s, s + Duration::minutes(*[30, 45, 60, 90].choose(rng).unwrap()))
        };
        let spec = EventSpec {
            start_local: s,
            end_local: e,
            zone,
            all_day,
            kind: "singleInstance",
            series_master_id: None,
            original_start: None,
            cancelled,
            subject: None,
        };
        let id = new_event_id(rng);
        push_event(&mut mb, &calendar, event(rng, owner, id, spec, created));
        made += 1;
    }
    mb
}

/// Adds a new event to `calendar`, bumping the mailbox version.
pub fn push_event(mb: &mut Mailbox, calendar: &str, mut e: Event) {
    let v = mb.bump();
    e.calendar_id = calendar.to_string();
    e.created_version = v;
    e.entered_version = v;
    e.version = v;
    insert_event(mb, e);
}

/// The owner of a user's mailbox as a person.
pub fn person_of(u: &User) -> Person {
    owner(u)
}
