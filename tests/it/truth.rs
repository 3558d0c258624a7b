//! The simulator's truth, mapped to our tables' columns independently of the connector: a
//! reading of Graph's wire JSON (the truth document) next to a reading of our Parquet.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::support::{CAL_END, CAL_START, Row};

/// Timestamps to epoch microseconds, whatever their spelling; everything else unchanged.
fn ts(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => parse_ts(s).map(|d| json!(d.timestamp_micros())).unwrap_or_else(|| json!(format!("unparseable timestamp {s}"))),
        None => Value::Null,
    }
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let trimmed = s.trim_end_matches('Z');
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(trimmed, f) {
            return Some(n.and_utc());
        }
    }
    None
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p).unwrap_or(&Value::Null);
    }
    cur
}

fn recipients(v: &Value) -> Value {
    match v.as_array() {
        Some(a) => {
            Value::Array(a.iter().map(|r| json!({"name": get(r, &["emailAddress", "name"]), "address": get(r, &["emailAddress", "address"])})).collect())
        }
        None => Value::Null,
    }
}

const TS_MESSAGE: [&str; 4] = ["received_date_time", "sent_date_time", "created_date_time", "last_modified_date_time"];
const TS_EVENT: [&str; 5] = ["start_date_time", "end_date_time", "original_start", "created_date_time", "last_modified_date_time"];

/// The contract columns of a message, from its wire JSON.
pub fn expected_message(mailbox: &str, m: &Value) -> Row {
    let mut r = Map::new();
    r.insert("mailbox_id".into(), json!(mailbox));
    r.insert("id".into(), m["id"].clone());
    for (col, path) in [
        ("subject", &["subject"][..]),
        ("body_preview", &["bodyPreview"]),
        ("from_name", &["from", "emailAddress", "name"]),
        ("from_address", &["from", "emailAddress", "address"]),
        ("sender_name", &["sender", "emailAddress", "name"]),
        ("sender_address", &["sender", "emailAddress", "address"]),
        ("received_date_time", &["receivedDateTime"]),
        ("sent_date_time", &["sentDateTime"]),
        ("created_date_time", &["createdDateTime"]),
        ("last_modified_date_time", &["lastModifiedDateTime"]),
        ("change_key", &["changeKey"]),
        ("conversation_id", &["conversationId"]),
        ("internet_message_id", &["internetMessageId"]),
        ("parent_folder_id", &["parentFolderId"]),
        ("importance", &["importance"]),
        ("is_read", &["isRead"]),
        ("is_draft", &["isDraft"]),
        ("has_attachments", &["hasAttachments"]),
        ("categories", &["categories"]),
        ("flag_status", &["flag", "flagStatus"]),
        ("inference_classification", &["inferenceClassification"]),
        ("web_link", &["webLink"]),
    ] {
        r.insert(col.into(), get(m, path).clone());
    }
    for (col, key) in [("to_recipients", "toRecipients"), ("cc_recipients", "ccRecipients"), ("bcc_recipients", "bccRecipients"), ("reply_to", "replyTo")] {
        r.insert(col.into(), recipients(&m[key]));
    }
    normalize(r, &TS_MESSAGE)
}

pub fn expected_event(mailbox: &str, e: &Value) -> Row {
    let mut r = Map::new();
    r.insert("mailbox_id".into(), json!(mailbox));
    r.insert("calendar_id".into(), e["calendarId"].clone());
    r.insert("id".into(), e["id"].clone());
    for (col, path) in [
        ("subject", &["subject"][..]),
        ("body_preview", &["bodyPreview"]),
        ("start_time_zone", &["start", "timeZone"]),
        ("end_time_zone", &["end", "timeZone"]),
        ("is_all_day", &["isAllDay"]),
        ("is_cancelled", &["isCancelled"]),
        ("type", &["type"]),
        ("series_master_id", &["seriesMasterId"]),
        ("original_start", &["originalStart"]),
        ("location_display_name", &["location", "displayName"]),
        ("show_as", &["showAs"]),
        ("sensitivity", &["sensitivity"]),
        ("importance", &["importance"]),
        ("categories", &["categories"]),
        ("online_meeting_join_url", &["onlineMeeting", "joinUrl"]),
        ("i_cal_uid", &["iCalUId"]),
        ("created_date_time", &["createdDateTime"]),
        ("last_modified_date_time", &["lastModifiedDateTime"]),
    ] {
        r.insert(col.into(), get(e, path).clone());
    }
    r.insert("start_date_time".into(), zoned(&e["start"]));
    r.insert("end_date_time".into(), zoned(&e["end"]));
    r.insert("start_date".into(), local_date(&e["start"]));
    r.insert("end_date".into(), local_date(&e["end"]));
    r.insert("start_time_zone_iana".into(), iana(&e["start"]));
    r.insert("end_time_zone_iana".into(), iana(&e["end"]));
    r.insert("organizer".into(), json!({"name": get(e, &["organizer", "emailAddress", "name"]), "address": get(e, &["organizer", "emailAddress", "address"])}));
    let attendees = e["attendees"].as_array().map(|a| {
        Value::Array(
            a.iter()
                .map(|x| {
                    json!({
                        "type": x["type"],
                        "response": get(x, &["status", "response"]),
                        "name": get(x, &["emailAddress", "name"]),
                        "address": get(x, &["emailAddress", "address"]),
                    })
                })
                .collect(),
        )
    });
    r.insert("attendees".into(), attendees.unwrap_or(Value::Null));
    normalize(r, &TS_EVENT)
}

/// `{"dateTime": "...", "timeZone": "UTC"}` → a UTC timestamp string. The truth document
/// serves start/end in UTC except for all-day events, which keep their own zone: those are
/// converted with the zone table below (independent of the connector's).
fn zoned(v: &Value) -> Value {
    let (Some(dt), Some(tz)) = (v["dateTime"].as_str(), v["timeZone"].as_str()) else { return Value::Null };
    let naive = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f").expect("dateTime without offset");
    let iana = match tz {
        "UTC" | "Etc/UTC" | "tzone://Microsoft/Utc" => "UTC",
        "Pacific Standard Time" => "America/Los_Angeles",
        "Eastern Standard Time" => "America/New_York",
        "Central Standard Time" => "America/Chicago",
        "W. Europe Standard Time" => "Europe/Berlin",
        "GMT Standard Time" => "Europe/London",
        "India Standard Time" => "Asia/Kolkata",
        "Tokyo Standard Time" => "Asia/Tokyo",
        "AUS Eastern Standard Time" => "Australia/Sydney",
        other => other,
    };
    let zone: chrono_tz::Tz = iana.parse().unwrap_or_else(|_| panic!("test zone table lacks {tz}"));
    use chrono::TimeZone;
    let local = zone.from_local_datetime(&naive).earliest().expect("local time exists");
    json!(local.with_timezone(&Utc).to_rfc3339())
}

/// The calendar date of `{"dateTime": ..., "timeZone": ...}` in its own zone: the date part of
/// `dateTime`, which Graph writes in `timeZone` (so an all-day event's days as it was created).
fn local_date(v: &Value) -> Value {
    let Some(dt) = v["dateTime"].as_str() else { return Value::Null };
    let naive = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f").expect("dateTime without offset");
    json!(naive.date().format("%Y-%m-%d").to_string())
}

/// The IANA name of `timeZone`: CLDR's territory-001 zone (`windowsZones.xml`) for the Windows
/// names the simulator uses, written out here independently of the connector's table (CLDR
/// keeps `Asia/Calcutta`); UTC spellings are `UTC`; an IANA name stands for itself.
fn iana(v: &Value) -> Value {
    let Some(tz) = v["timeZone"].as_str() else { return Value::Null };
    let name = match tz {
        "UTC" | "tzone://Microsoft/Utc" => "UTC",
        "Pacific Standard Time" => "America/Los_Angeles",
        "Eastern Standard Time" => "America/New_York",
        "Central Standard Time" => "America/Chicago",
        "W. Europe Standard Time" => "Europe/Berlin",
        "GMT Standard Time" => "Europe/London",
        "India Standard Time" => "Asia/Calcutta",
        "Tokyo Standard Time" => "Asia/Tokyo",
        "AUS Eastern Standard Time" => "Australia/Sydney",
        other if other.parse::<chrono_tz::Tz>().is_ok() => other,
        other => panic!("test IANA table lacks {other}"),
    };
    json!(name)
}

pub fn expected_folder(mailbox: &str, f: &Value) -> Row {
    let mut r = Map::new();
    r.insert("mailbox_id".into(), json!(mailbox));
    r.insert("id".into(), f["id"].clone());
    for (col, key) in [
        ("display_name", "displayName"),
        ("parent_folder_id", "parentFolderId"),
        ("child_folder_count", "childFolderCount"),
        ("total_item_count", "totalItemCount"),
        ("unread_item_count", "unreadItemCount"),
    ] {
        r.insert(col.into(), f[key].clone());
    }
    normalize(r, &[])
}

/// Nulls dropped (the Parquet reader leaves them out too), timestamps as epoch µs.
pub fn normalize(mut r: Row, ts_cols: &[&str]) -> Row {
    for c in ts_cols {
        if let Some(v) = r.get(*c).cloned() {
            r.insert(c.to_string(), ts(&v));
        }
    }
    r.retain(|_, v| !v.is_null());
    r
}

/// Project an output row onto the expected row's columns (plus any contract column the
/// output has and the truth lacks), normalizing timestamps.
pub fn project(actual: &Row, expected: &Row, ts_cols: &[&str], contract: &[&str]) -> Row {
    let mut r = Map::new();
    for c in expected.keys().map(String::as_str).chain(contract.iter().copied()) {
        if let Some(v) = actual.get(c) {
            r.insert(c.to_string(), v.clone());
        }
    }
    let mut r = normalize(r, ts_cols);
    // Structs with every field null compare as absent.
    r.retain(|_, v| !matches!(v, Value::Object(o) if o.values().all(Value::is_null)));
    for v in r.values_mut() {
        strip_nulls(v);
    }
    r
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

pub const MESSAGE_COLUMNS: [&str; 29] = [
    "mailbox_id",
    "id",
    "subject",
    "body_preview",
    "from_name",
    "from_address",
    "sender_name",
    "sender_address",
    "to_recipients",
    "cc_recipients",
    "bcc_recipients",
    "reply_to",
    "received_date_time",
    "sent_date_time",
    "created_date_time",
    "last_modified_date_time",
    "change_key",
    "conversation_id",
    "internet_message_id",
    "parent_folder_id",
    "importance",
    "is_read",
    "is_draft",
    "has_attachments",
    "categories",
    "flag_status",
    "inference_classification",
    "web_link",
    "body_preview",
];
pub const EVENT_COLUMNS: [&str; 29] = [
    "mailbox_id",
    "calendar_id",
    "id",
    "subject",
    "body_preview",
    "start_date_time",
    "end_date_time",
    "start_time_zone",
    "end_time_zone",
    "start_date",
    "end_date",
    "start_time_zone_iana",
    "end_time_zone_iana",
    "is_all_day",
    "is_cancelled",
    "type",
    "series_master_id",
    "original_start",
    "organizer",
    "attendees",
    "location_display_name",
    "show_as",
    "sensitivity",
    "importance",
    "categories",
    "online_meeting_join_url",
    "i_cal_uid",
    "created_date_time",
    "last_modified_date_time",
];
pub const FOLDER_COLUMNS: [&str; 7] = ["mailbox_id", "id", "display_name", "parent_folder_id", "child_folder_count", "total_item_count", "unread_item_count"];

pub const CALENDAR_COLUMNS: [&str; 13] = [
    "mailbox_id",
    "id",
    "name",
    "color",
    "hex_color",
    "is_default_calendar",
    "can_edit",
    "can_share",
    "can_view_private_items",
    "is_removable",
    "owner_name",
    "owner_address",
    "change_key",
];

pub const MAILBOX_COLUMNS: [&str; 6] = ["mailbox_id", "id", "user_principal_name", "mail", "display_name", "account_enabled"];

pub fn expected_calendar(mailbox: &str, c: &Value) -> Row {
    let mut r = Map::new();
    r.insert("mailbox_id".into(), json!(mailbox));
    for (col, path) in [
        ("id", &["id"][..]),
        ("name", &["name"]),
        ("color", &["color"]),
        ("hex_color", &["hexColor"]),
        ("is_default_calendar", &["isDefaultCalendar"]),
        ("can_edit", &["canEdit"]),
        ("can_share", &["canShare"]),
        ("can_view_private_items", &["canViewPrivateItems"]),
        ("is_removable", &["isRemovable"]),
        ("owner_name", &["owner", "name"]),
        ("owner_address", &["owner", "address"]),
        ("change_key", &["changeKey"]),
    ] {
        r.insert(col.into(), get(c, path).clone());
    }
    normalize(r, &[])
}

/// Which calendars' events a run copies (`source.calendars`), as the truth is filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendars {
    /// The mailbox's own: owned by the default calendar's owner.
    Owned,
    All,
}

/// What a run was asked for: the calendar window in force, the calendars copied, the tables
/// written.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub calendars: Calendars,
    pub tables: &'static [&'static str],
}

pub const ALL_TABLES: [&str; 5] = ["mail_folders", "messages", "events", "calendars", "mailboxes"];
/// What `streams = ["events"]` writes.
pub const CALENDAR_TABLES: [&str; 2] = ["events", "calendars"];

impl Default for Expect {
    fn default() -> Self {
        Expect { window: (parse_ts(CAL_START).unwrap(), parse_ts(CAL_END).unwrap()), calendars: Calendars::Owned, tables: &ALL_TABLES }
    }
}

/// The ids of a truth mailbox's calendars that `which` selects.
pub fn selected_calendars(mb: &Value, which: Calendars) -> Vec<String> {
    let cals = mb["calendars"].as_array().cloned().unwrap_or_default();
    let own: Vec<String> =
        cals.iter().filter(|c| c["isDefaultCalendar"] == json!(true)).filter_map(|c| c["owner"]["address"].as_str()).map(str::to_lowercase).collect();
    cals.iter()
        .filter(|c| which == Calendars::All || c["owner"]["address"].as_str().is_none_or(|a| own.contains(&a.to_lowercase())))
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect()
}

/// Expected current state of each table from the truth document, keyed as our tables are,
/// for the default test configuration (the e2e window, owned calendars).
pub fn expected_tables(truth: &Value) -> BTreeMap<&'static str, BTreeMap<String, Row>> {
    expected_tables_for(truth, Expect::default())
}

/// [`expected_tables`] for a given window and calendar selection.
pub fn expected_tables_for(truth: &Value, expect: Expect) -> BTreeMap<&'static str, BTreeMap<String, Row>> {
    let mut out: BTreeMap<&'static str, BTreeMap<String, Row>> = BTreeMap::new();
    let window = expect.window;
    for mb in truth["mailboxes"].as_array().expect("truth.mailboxes") {
        if mb["has_mailbox"] == json!(false) {
            continue;
        }
        let id = mb["id"].as_str().unwrap();
        for f in mb["mail_folders"].as_array().into_iter().flatten() {
            let r = expected_folder(id, f);
            out.entry("mail_folders").or_default().insert(format!("{id}|{}", f["id"].as_str().unwrap()), r);
        }
        for m in mb["messages"].as_array().into_iter().flatten() {
            let r = expected_message(id, m);
            out.entry("messages").or_default().insert(format!("{id}|{}|{}", m["parentFolderId"].as_str().unwrap(), m["id"].as_str().unwrap()), r);
        }
        for c in mb["calendars"].as_array().into_iter().flatten() {
            out.entry("calendars").or_default().insert(format!("{id}|{}", c["id"].as_str().unwrap()), expected_calendar(id, c));
        }
        let mut who = Map::new();
        for (col, v) in [
            ("mailbox_id", json!(id)),
            ("id", json!(id)),
            ("user_principal_name", mb["userPrincipalName"].clone()),
            ("mail", mb["mail"].clone()),
            ("display_name", mb["displayName"].clone()),
            ("account_enabled", json!(true)),
        ] {
            who.insert(col.to_string(), v);
        }
        out.entry("mailboxes").or_default().insert(format!("{id}|{id}"), normalize(who, &[]));
        let copied = selected_calendars(mb, expect.calendars);
        for e in mb["events"].as_array().into_iter().flatten() {
            if !e["calendarId"].as_str().is_some_and(|c| copied.iter().any(|x| x == c)) {
                continue;
            }
            let r = expected_event(id, e);
            let start = r.get("start_date_time").and_then(Value::as_i64).unwrap_or(i64::MIN);
            let end = r.get("end_date_time").and_then(Value::as_i64).unwrap_or(i64::MIN);
            let in_window = start < window.1.timestamp_micros() && end > window.0.timestamp_micros();
            if in_window {
                out.entry("events").or_default().insert(format!("{id}|{}|{}", e["calendarId"].as_str().unwrap(), e["id"].as_str().unwrap()), r);
            }
        }
    }
    out
}

pub fn ts_cols(table: &str) -> &'static [&'static str] {
    match table {
        "messages" => &TS_MESSAGE,
        "events" => &TS_EVENT,
        _ => &[],
    }
}

pub fn contract(table: &str) -> &'static [&'static str] {
    match table {
        "messages" => &MESSAGE_COLUMNS,
        "events" => &EVENT_COLUMNS,
        "calendars" => &CALENDAR_COLUMNS,
        "mailboxes" => &MAILBOX_COLUMNS,
        _ => &FOLDER_COLUMNS,
    }
}

/// Assert the lake's current state equals the truth, table by table, field by field.
pub fn assert_lake_equals_truth(lake: &std::path::Path, truth: &Value) {
    assert_state_equals_truth(|t| super::support::current_state(lake, t), truth)
}

/// [`assert_lake_equals_truth`] for a given window and calendar selection.
pub fn assert_lake_equals_truth_for(lake: &std::path::Path, truth: &Value, expect: Expect) {
    assert_tables_equal(|t| super::support::current_state(lake, t), expected_tables_for(truth, expect), expect.tables)
}

/// Same, for current state read by any means (e.g. from object storage).
pub fn assert_state_equals_truth(current: impl Fn(&str) -> BTreeMap<String, Row>, truth: &Value) {
    assert_tables_equal(current, expected_tables(truth), &ALL_TABLES)
}

fn assert_tables_equal(current: impl Fn(&str) -> BTreeMap<String, Row>, expected: BTreeMap<&'static str, BTreeMap<String, Row>>, tables: &[&str]) {
    for table in tables.iter().copied() {
        let want = expected.get(table).cloned().unwrap_or_default();
        let got = current(table);
        let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table}: {} rows expected, {} present; missing e.g. {missing:?}; unexpected e.g. {extra:?}",
            want.len(),
            got.len()
        );
        let mut mismatches = Vec::new();
        for (k, w) in &want {
            let a = project(&got[k], w, ts_cols(table), contract(table));
            if &a != w {
                let diff: Vec<String> =
                    w.keys().chain(a.keys()).filter(|c| w.get(*c) != a.get(*c)).map(|c| format!("{c}: want {:?} got {:?}", w.get(c), a.get(c))).collect();
                mismatches.push(format!("{k}: {}", diff.join("; ")));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{table}: {} rows differ from the truth, e.g.:\n{}",
            mismatches.len(),
            mismatches.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}
