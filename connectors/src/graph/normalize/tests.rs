use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};
use chrono::TimeZone;

use super::*;
use crate::graph::normalize::timestamp::parse_timestamp_micros;

fn ctx(folder: Option<&str>, bodies: bool) -> NormalizeContext {
    NormalizeContext {
        mailbox_id: "mbx-1".into(),
        folder_id: folder.map(str::to_string),
        extracted_at: chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap(),
        run_id: "run-1".into(),
        fetch_bodies: bodies,
    }
}

fn s<'a>(b: &'a RecordBatch, col: &str, row: usize) -> Option<&'a str> {
    let a = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}")).as_string::<i32>();
    a.is_valid(row).then(|| a.value(row))
}

fn ts(b: &RecordBatch, col: &str, row: usize) -> Option<i64> {
    let a = b.column_by_name(col).unwrap().as_primitive::<TimestampMicrosecondType>();
    a.is_valid(row).then(|| a.value(row))
}

fn boolean(b: &RecordBatch, col: &str, row: usize) -> Option<bool> {
    let a = b.column_by_name(col).unwrap().as_boolean();
    a.is_valid(row).then(|| a.value(row))
}

/// A `Date32` cell as `YYYY-MM-DD`.
fn date(b: &RecordBatch, col: &str, row: usize) -> Option<String> {
    let a = b.column_by_name(col).unwrap_or_else(|| panic!("no column {col}")).as_primitive::<Date32Type>();
    a.is_valid(row).then(|| (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(a.value(row).into())).to_string())
}

fn micros(s: &str) -> i64 {
    parse_timestamp_micros(s).unwrap()
}

const MESSAGES: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(message)",
  "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/u/mailFolders/f/messages/delta?$skiptoken=abc",
  "value": [
    {
      "@odata.type": "#microsoft.graph.message",
      "@odata.etag": "W/\"CQAAABYAAAA\"",
      "id": "AAMkAD-1=",
      "createdDateTime": "2024-01-15T11:26:41Z",
      "lastModifiedDateTime": "2024-01-15T11:26:42Z",
      "changeKey": "CQAAABYAAAA",
      "categories": ["Red", "Blue \"quoted\""],
      "receivedDateTime": "2024-01-15T11:26:40Z",
      "sentDateTime": "2024-01-15T11:26:39Z",
      "hasAttachments": false,
      "internetMessageId": "<PH0PR04MB@prod.outlook.com>",
      "subject": "Quarterly \u00e9 review",
      "bodyPreview": "Hi team,\r\nsee attached",
      "importance": "normal",
      "parentFolderId": "AQMkINBOX",
      "conversationId": "AAQkconv",
      "isRead": true,
      "isDraft": false,
      "webLink": "https://outlook.office365.com/owa/?ItemID=x",
      "inferenceClassification": "focused",
      "body": {"contentType": "html", "content": "<p>hi</p>"},
      "sender": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}},
      "from": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}},
      "toRecipients": [{"emailAddress": {"name": "Bob", "address": "bob@contoso.com"}}, {"emailAddress": {"address": "cy@contoso.com"}}],
      "ccRecipients": [],
      "bccRecipients": [],
      "replyTo": [],
      "flag": {"flagStatus": "flagged"},
      "someFutureProperty": {"nested": [1, 2, 3]}
    },
    {"@odata.type": "#microsoft.graph.message", "id": "AAMkAD-2", "@removed": {"reason": "deleted"}},
    {
      "id": "AAMkAD-3",
      "subject": 42,
      "isRead": "yes",
      "receivedDateTime": "not a date",
      "toRecipients": {"oops": true},
      "categories": ["ok", 7]
    }
  ]
}"##;

#[test]
fn messages_page() {
    let seq = SeqGen::new(0);
    let p = normalize_page(Stream::Messages, MESSAGES.as_bytes(), &ctx(Some("AQMkINBOX"), true), &seq).unwrap();
    let b = &p.batch;
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::Messages));
    assert_eq!(b.num_rows(), 3);
    assert_eq!(p.next_link.as_deref(), Some("https://graph.microsoft.com/v1.0/users/u/mailFolders/f/messages/delta?$skiptoken=abc"));
    assert_eq!(p.delta_link, None);
    assert_eq!(p.upserted_ids, vec!["AAMkAD-1=".to_string(), "AAMkAD-3".to_string()]);
    assert_eq!(p.removed, 1);
    assert_eq!(p.malformed_items, 1);

    assert_eq!(s(b, "mailbox_id", 0), Some("mbx-1"));
    assert_eq!(s(b, "id", 0), Some("AAMkAD-1="));
    assert_eq!(s(b, "_op", 0), Some("upsert"));
    assert_eq!(s(b, "_run_id", 2), Some("run-1"));
    assert_eq!(s(b, "subject", 0), Some("Quarterly é review"));
    assert_eq!(s(b, "body_preview", 0), Some("Hi team,\r\nsee attached"));
    assert_eq!(s(b, "body_content_type", 0), Some("html"));
    assert_eq!(s(b, "body_content", 0), Some("<p>hi</p>"));
    assert_eq!(s(b, "from_name", 0), Some("Ann"));
    assert_eq!(s(b, "sender_address", 0), Some("ann@contoso.com"));
    assert_eq!(ts(b, "received_date_time", 0), Some(micros("2024-01-15T11:26:40Z")));
    assert_eq!(ts(b, "sent_date_time", 0), Some(micros("2024-01-15T11:26:39Z")));
    assert_eq!(ts(b, "last_modified_date_time", 0), Some(micros("2024-01-15T11:26:42Z")));
    assert_eq!(s(b, "change_key", 0), Some("CQAAABYAAAA"));
    assert_eq!(s(b, "parent_folder_id", 0), Some("AQMkINBOX"));
    assert_eq!(s(b, "internet_message_id", 0), Some("<PH0PR04MB@prod.outlook.com>"));
    assert_eq!(boolean(b, "is_read", 0), Some(true));
    assert_eq!(boolean(b, "has_attachments", 0), Some(false));
    assert_eq!(s(b, "flag_status", 0), Some("flagged"));
    assert_eq!(s(b, "inference_classification", 0), Some("focused"));
    let cats = b.column_by_name("categories").unwrap().as_list::<i32>();
    let c0 = cats.value(0);
    let c0 = c0.as_string::<i32>();
    assert_eq!((c0.value(0), c0.value(1)), ("Red", "Blue \"quoted\""));
    let to = b.column_by_name("to_recipients").unwrap().as_list::<i32>();
    let t0 = to.value(0);
    let t0 = t0.as_struct();
    assert_eq!(t0.len(), 2);
    assert_eq!(t0.column(0).as_string::<i32>().value(0), "Bob");
    assert_eq!(t0.column(1).as_string::<i32>().value(1), "cy@contoso.com");
    assert!(t0.column(0).is_null(1));
    let cc = b.column_by_name("cc_recipients").unwrap().as_list::<i32>();
    assert!(cc.is_valid(0) && cc.value(0).is_empty());

    // Removal: key columns only, folder from the partition.
    assert_eq!(s(b, "_op", 1), Some("delete"));
    assert_eq!(s(b, "id", 1), Some("AAMkAD-2"));
    assert_eq!(s(b, "parent_folder_id", 1), Some("AQMkINBOX"));
    assert_eq!(s(b, "subject", 1), None);
    assert!(to.is_null(1));

    // Wrong types → nulls; the item is kept and counted once.
    assert_eq!(s(b, "subject", 2), None);
    assert_eq!(boolean(b, "is_read", 2), None);
    assert_eq!(ts(b, "received_date_time", 2), None);
    assert!(to.is_null(2));
    let c2 = cats.value(2);
    let c2 = c2.as_string::<i32>();
    assert_eq!(c2.len(), 2);
    assert_eq!(c2.value(0), "ok");
    assert!(c2.is_null(1));
    // Missing parentFolderId → the partition's folder.
    assert_eq!(s(b, "parent_folder_id", 2), Some("AQMkINBOX"));

    // _seq: one block, increasing in page order.
    let seqs = b.column_by_name("_seq").unwrap().as_primitive::<Int64Type>();
    assert_eq!(seqs.value(1), seqs.value(0) + 1);
    assert_eq!(seqs.value(2), seqs.value(0) + 2);
    assert_eq!(seq.high_water(), seqs.value(2));
    let at = b.column_by_name("_extracted_at").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!(at.value(0), micros("2024-05-01T12:00:00Z"));
}

#[test]
fn bodies_are_null_unless_fetched() {
    let p = normalize_page(Stream::Messages, MESSAGES.as_bytes(), &ctx(Some("f"), false), &SeqGen::new(0)).unwrap();
    assert_eq!(s(&p.batch, "body_content", 0), None);
    assert_eq!(s(&p.batch, "body_content_type", 0), None);
}

const EVENTS: &str = r##"{
  "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/u/calendarView/delta?$deltatoken=xyz",
  "value": [
    {
      "@odata.type": "#microsoft.graph.event",
      "id": "ev-1",
      "createdDateTime": "2024-01-15T11:26:39.1524133Z",
      "lastModifiedDateTime": "2024-01-15T11:26:40.0000000Z",
      "changeKey": "ck1",
      "categories": [],
      "originalStartTimeZone": "Pacific Standard Time",
      "iCalUId": "040000008200E0",
      "subject": "Standup",
      "bodyPreview": "",
      "importance": "normal",
      "sensitivity": "normal",
      "isAllDay": false,
      "isCancelled": false,
      "seriesMasterId": "master-1",
      "showAs": "busy",
      "type": "occurrence",
      "originalStart": "2024-07-01T16:00:00Z",
      "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/x"},
      "start": {"dateTime": "2024-07-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
      "end": {"dateTime": "2024-07-01T09:30:00.0000000", "timeZone": "America/Los_Angeles"},
      "location": {"displayName": "Room 1", "locationType": "default"},
      "attendees": [
        {"type": "required", "status": {"response": "accepted", "time": "0001-01-01T00:00:00Z"}, "emailAddress": {"name": "Bob", "address": "bob@contoso.com"}}
      ],
      "organizer": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}}
    },
    {
      "id": "ev-2",
      "start": {"dateTime": "2024-01-22T02:30:00.0000000", "timeZone": "UTC"},
      "end": {"dateTime": "2024-01-22T03:30:00.0000000", "timeZone": "Mars Standard Time"},
      "organizer": null
    },
    {"@odata.type": "#microsoft.graph.event", "id": "ev-3", "@removed": {"reason": "deleted"}}
  ]
}"##;

#[test]
fn events_page() {
    let p = normalize_page(Stream::Events, EVENTS.as_bytes(), &ctx(None, false), &SeqGen::new(0)).unwrap();
    let b = &p.batch;
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::Events));
    assert_eq!(b.num_rows(), 3);
    assert!(p.delta_link.as_deref().unwrap().ends_with("$deltatoken=xyz"));
    assert_eq!(p.malformed_items, 1, "unknown zone on ev-2");
    assert_eq!(s(b, "subject", 0), Some("Standup"));
    // 09:00 PDT = 16:00 UTC; the IANA spelling works too.
    assert_eq!(ts(b, "start_date_time", 0), Some(micros("2024-07-01T16:00:00Z")));
    assert_eq!(ts(b, "end_date_time", 0), Some(micros("2024-07-01T16:30:00Z")));
    assert_eq!(s(b, "start_time_zone", 0), Some("Pacific Standard Time"));
    assert_eq!(s(b, "end_time_zone", 0), Some("America/Los_Angeles"));
    assert_eq!(ts(b, "created_date_time", 0), Some(micros("2024-01-15T11:26:39.152413Z")));
    assert_eq!(ts(b, "original_start", 0), Some(micros("2024-07-01T16:00:00Z")));
    assert_eq!(s(b, "type", 0), Some("occurrence"));
    assert_eq!(s(b, "series_master_id", 0), Some("master-1"));
    assert_eq!(s(b, "location_display_name", 0), Some("Room 1"));
    assert_eq!(s(b, "online_meeting_join_url", 0), Some("https://teams.microsoft.com/l/meetup-join/x"));
    assert_eq!(s(b, "i_cal_uid", 0), Some("040000008200E0"));
    assert_eq!(s(b, "show_as", 0), Some("busy"));
    assert_eq!(boolean(b, "is_all_day", 0), Some(false));
    let org = b.column_by_name("organizer").unwrap().as_struct();
    assert_eq!(org.column(0).as_string::<i32>().value(0), "Ann");
    assert!(org.is_null(1));
    let att = b.column_by_name("attendees").unwrap().as_list::<i32>();
    let a0 = att.value(0);
    let a0 = a0.as_struct();
    let col = |name: &str| a0.column_by_name(name).unwrap().as_string::<i32>().value(0).to_string();
    assert_eq!((col("type"), col("response"), col("name"), col("address")), ("required".into(), "accepted".into(), "Bob".into(), "bob@contoso.com".into()));
    assert!(att.is_null(1));
    assert_eq!(ts(b, "start_date_time", 1), Some(micros("2024-01-22T02:30:00Z")));
    assert_eq!(ts(b, "end_date_time", 1), None);
    assert_eq!(s(b, "end_time_zone", 1), Some("Mars Standard Time"));
    assert_eq!(s(b, "_op", 2), Some("delete"));
    assert_eq!(s(b, "subject", 2), None);
    // Local dates and IANA names: Windows and IANA inputs; an unknown zone keeps its date.
    assert_eq!((date(b, "start_date", 0), date(b, "end_date", 0)), (Some("2024-07-01".into()), Some("2024-07-01".into())));
    assert_eq!((s(b, "start_time_zone_iana", 0), s(b, "end_time_zone_iana", 0)), (Some("America/Los_Angeles"), Some("America/Los_Angeles")));
    assert_eq!((date(b, "start_date", 1), date(b, "end_date", 1)), (Some("2024-01-22".into()), Some("2024-01-22".into())));
    assert_eq!((s(b, "start_time_zone_iana", 1), s(b, "end_time_zone_iana", 1)), (Some("UTC"), None));
    for col in ["start_date", "end_date"] {
        assert_eq!(date(b, col, 2), None, "{col} of a delete row");
    }
    for col in ["start_time_zone_iana", "end_time_zone_iana"] {
        assert_eq!(s(b, col, 2), None, "{col} of a delete row");
    }
}

/// `start_date`/`end_date` are the dates of `dateTime` in its own zone; the instants stay UTC.
#[test]
fn event_local_dates_and_iana_zones() {
    let body = br##"{"value":[
      {"id":"all-day", "isAllDay": true,
       "start":{"dateTime":"2026-12-22T00:00:00.0000000","timeZone":"W. Europe Standard Time"},
       "end":{"dateTime":"2026-12-23T00:00:00.0000000","timeZone":"W. Europe Standard Time"}},
      {"id":"india-after-midnight",
       "start":{"dateTime":"2026-03-10T00:30:00.0000000","timeZone":"India Standard Time"},
       "end":{"dateTime":"2026-03-10T01:00:00.0000000","timeZone":"India Standard Time"}},
      {"id":"unknown-zone",
       "start":{"dateTime":"2026-05-04T23:30:00.0000000","timeZone":"Mars Standard Time"},
       "end":{"dateTime":"2026-05-05T00:30:00.0000000","timeZone":"tzone://Microsoft/Custom"}},
      {"id":"iana-zone",
       "start":{"dateTime":"2026-07-01T08:00:00.0000000","timeZone":"Asia/Tokyo"},
       "end":{"dateTime":"2026-07-01T09:00:00.0000000","timeZone":"Asia/Kolkata"}},
      {"id":"utc-and-bad",
       "start":{"dateTime":"2026-01-31T23:59:59.0000000","timeZone":"UTC"},
       "end":{"dateTime":"tomorrow","timeZone":"UTC"}},
      {"id":"no-zone", "start":{"dateTime":"2026-02-01T10:00:00"}, "end":{"timeZone":"UTC"}}
    ],"@odata.deltaLink":"d"}"##;
    let p = normalize_page(Stream::Events, body, &ctx(Some("cal"), false), &SeqGen::new(0)).unwrap();
    let b = &p.batch;
    let row = |id: &str| (0..b.num_rows()).find(|&r| s(b, "id", r) == Some(id)).unwrap();
    let dates = |r: usize| (date(b, "start_date", r), date(b, "end_date", r));
    let ianas = |r: usize| (s(b, "start_time_zone_iana", r), s(b, "end_time_zone_iana", r));
    let instants = |r: usize| (ts(b, "start_date_time", r), ts(b, "end_date_time", r));
    let some = |d: &str| Some(d.to_string());

    // All-day in W. Europe: the days as written (end exclusive); the instants are unchanged.
    let r = row("all-day");
    assert_eq!(dates(r), (some("2026-12-22"), some("2026-12-23")));
    assert_eq!(instants(r), (Some(micros("2026-12-21T23:00:00Z")), Some(micros("2026-12-22T23:00:00Z"))));
    assert_eq!(ianas(r), (Some("Europe/Berlin"), Some("Europe/Berlin")));
    assert_eq!((s(b, "start_time_zone", r), s(b, "end_time_zone", r)), (Some("W. Europe Standard Time"), Some("W. Europe Standard Time")));

    // 00:30 in India is 19:00 UTC the day before: the local date is not the UTC date.
    let r = row("india-after-midnight");
    assert_eq!(dates(r), (some("2026-03-10"), some("2026-03-10")));
    assert_eq!(instants(r), (Some(micros("2026-03-09T19:00:00Z")), Some(micros("2026-03-09T19:30:00Z"))));
    assert_eq!(ianas(r), (Some("Asia/Calcutta"), Some("Asia/Calcutta")));

    // Unknown zones: no IANA name and no instant, but the dates of `dateTime`.
    let r = row("unknown-zone");
    assert_eq!(dates(r), (some("2026-05-04"), some("2026-05-05")));
    assert_eq!(ianas(r), (None, None));
    assert_eq!(instants(r), (None, None));
    assert_eq!(s(b, "start_time_zone", r), Some("Mars Standard Time"));

    // IANA names pass through as given (a link included).
    let r = row("iana-zone");
    assert_eq!(ianas(r), (Some("Asia/Tokyo"), Some("Asia/Kolkata")));
    assert_eq!(dates(r), (some("2026-07-01"), some("2026-07-01")));
    assert_eq!(instants(r), (Some(micros("2026-06-30T23:00:00Z")), Some(micros("2026-07-01T03:30:00Z"))));

    // UTC; an unreadable `dateTime` has neither instant nor date, the zone keeps its name.
    let r = row("utc-and-bad");
    assert_eq!(dates(r), (some("2026-01-31"), None));
    assert_eq!(instants(r), (Some(micros("2026-01-31T23:59:59Z")), None));
    assert_eq!(ianas(r), (Some("UTC"), Some("UTC")));

    // No `timeZone`: read as UTC, no IANA name; no `dateTime`: no date.
    let r = row("no-zone");
    assert_eq!(dates(r), (some("2026-02-01"), None));
    assert_eq!(ianas(r), (None, Some("UTC")));

    // Counted once each: the unknown zone (its instants) and the unreadable `dateTime`.
    assert_eq!(p.malformed_items, 2);
}

#[test]
fn mail_folders_page() {
    let body = br##"{"value":[
        {"id":"f1","displayName":"Inbox","parentFolderId":"root","childFolderCount":1,"unreadItemCount":3,"totalItemCount":10,"isHidden":false},
        {"id":"f2","displayName":"Archive","totalItemCount":"many","childFolderCount":2.0},
        {"id":"f3","@removed":{"reason":"deleted"}}
    ],"@odata.deltaLink":"https://graph.microsoft.com/v1.0/x?$deltatoken=1"}"##;
    let p = normalize_page(Stream::MailFolders, body, &ctx(None, false), &SeqGen::new(0)).unwrap();
    let b = &p.batch;
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::MailFolders));
    let total = b.column_by_name("total_item_count").unwrap().as_primitive::<Int64Type>();
    let child = b.column_by_name("child_folder_count").unwrap().as_primitive::<Int64Type>();
    assert_eq!(s(b, "display_name", 0), Some("Inbox"));
    assert_eq!(s(b, "parent_folder_id", 0), Some("root"));
    assert_eq!(total.value(0), 10);
    assert_eq!(boolean(b, "is_hidden", 0), Some(false));
    assert!(total.is_null(1));
    assert_eq!(child.value(1), 2);
    assert_eq!(boolean(b, "is_hidden", 1), None);
    assert_eq!(p.malformed_items, 1);
    assert_eq!(s(b, "_op", 2), Some("delete"));
    let (present, removed) = outlake_pipeline::state::folder_changes(b);
    assert!(present.contains("f1") && present.contains("f2") && removed.contains("f3"));
}

#[test]
fn page_failures_name_the_problem() {
    let c = ctx(Some("f"), false);
    let seq = SeqGen::new(0);
    let before = seq.high_water();
    let err = |body: &str| normalize_page(Stream::Messages, body.as_bytes(), &c, &seq).unwrap_err();

    let e = err(r#"{"value":{"id":"x"}}"#);
    assert_eq!(e.kind, NormalizeErrorKind::Invalid);
    assert!(e.message.contains("`value`"), "{}", e.message);

    let e = err(r#"{"value":[{"id":"a"},{"subject":"no id"}]}"#);
    assert_eq!(e.kind, NormalizeErrorKind::Invalid);
    assert!(e.message.contains("value[1]") && e.message.contains("id"), "{}", e.message);

    let e = err(r#"{"value":[{"id":17}]}"#);
    assert!(e.message.contains("value[0]") && e.message.contains("id"), "{}", e.message);

    let e = err(r#"{"value":[3]}"#);
    assert!(e.message.contains("value[0]"), "{}", e.message);

    let e = err(r#"[1,2]"#);
    assert_eq!(e.kind, NormalizeErrorKind::Invalid);

    let e = err(r#"{"@odata.nextLink":"x"}"#);
    assert!(e.message.contains("no `value`"), "{}", e.message);

    // Truncated and not-JSON bodies are retryable.
    assert_eq!(err(r#"{"value":[{"id":"a","subj"#).kind, NormalizeErrorKind::Syntax);
    assert_eq!(err("").kind, NormalizeErrorKind::Syntax);
    assert_eq!(err("<html>").kind, NormalizeErrorKind::Syntax);
    // Nothing was drawn from the sequence for failed pages.
    assert_eq!(seq.high_water(), before);
}

#[test]
fn escaped_ids_and_strings() {
    let body = br#"{"value":[{"id":"a\/b\u0041","subject":"line\nbreak"}],"@odata.deltaLink":"d"}"#;
    let p = normalize_page(Stream::Messages, body, &ctx(Some("f"), false), &SeqGen::new(0)).unwrap();
    assert_eq!(s(&p.batch, "id", 0), Some("a/bA"));
    assert_eq!(s(&p.batch, "subject", 0), Some("line\nbreak"));
    assert_eq!(p.upserted_ids, vec!["a/bA".to_string()]);
}

#[test]
fn empty_page_and_delete_rows() {
    let p = normalize_page(Stream::Events, br#"{"value":[],"@odata.nextLink":"n"}"#, &ctx(None, false), &SeqGen::new(0)).unwrap();
    assert_eq!(p.batch.num_rows(), 0);
    let seq = SeqGen::new(0);
    let b = delete_rows(Stream::Messages, &["x".into(), "y".into()], &ctx(Some("fold"), false), &seq);
    assert_eq!(b.num_rows(), 2);
    assert_eq!(s(&b, "_op", 1), Some("delete"));
    assert_eq!(s(&b, "parent_folder_id", 0), Some("fold"));
    assert_eq!(s(&b, "subject", 0), None);
    for stream in Stream::ALL {
        let b = delete_rows(stream, &["x".into()], &ctx(Some("f"), false), &seq);
        assert_eq!(b.schema(), crate::graph::schema::schema(stream));
    }
}

/// Issue 9, wire input: unknown fields are ignored, missing properties are null, wrong types and
/// unreadable timestamps are null and counted once per item; the row is still written.
#[test]
fn leniency_rule_unknown_missing_and_wrong_types() {
    let c = ctx(Some("f"), false);
    let body = br##"{"@odata.futureAnnotation":{"x":[1,{"y":null}]},"value":[
        {"id":"ok","subject":"s","futureProperty":{"a":[1,"b"]},"@odata.type":"#microsoft.graph.message"},
        {"id":"missing"},
        {"id":"bad","subject":"kept","isRead":"yes","receivedDateTime":"not a date","categories":5,"from":[1,2]},
        {"id":"gone","@removed":{"reason":"deleted"},"isRead":"yes"}
    ],"@odata.nextLink":"https://graph.microsoft.com/v1.0/x?$skiptoken=1"}"##;
    let p = normalize_page(Stream::Messages, body, &c, &SeqGen::new(0)).unwrap();
    let b = &p.batch;
    assert_eq!(b.num_rows(), 4);
    assert_eq!(p.malformed_items, 1, "only the item with wrong types is malformed");
    assert_eq!(s(b, "subject", 0), Some("s"));
    assert_eq!(s(b, "subject", 1), None);
    assert_eq!(s(b, "parent_folder_id", 1), Some("f"), "a missing parentFolderId is the partition's folder");
    assert_eq!(s(b, "subject", 2), Some("kept"));
    assert_eq!(boolean(b, "is_read", 2), None);
    assert_eq!(ts(b, "received_date_time", 2), None);
    assert!(b.column_by_name("categories").unwrap().is_null(2));
    assert_eq!(s(b, "from_address", 2), None);
    assert_eq!(s(b, "_op", 3), Some("delete"));
    assert!(p.next_link.is_some());
}

/// A link that is not a string fails the page and names the field; a wrong-typed property of
/// a removed item before it does not leak into the link check.
#[test]
fn links_must_be_strings() {
    let c = ctx(Some("f"), false);
    let seq = SeqGen::new(0);
    let e = normalize_page(Stream::Messages, br#"{"value":[],"@odata.nextLink":42}"#, &c, &seq).unwrap_err();
    assert_eq!(e.kind, NormalizeErrorKind::Invalid);
    assert!(e.message.contains("@odata.nextLink"), "{}", e.message);
    let e = normalize_page(Stream::Events, br#"{"value":[],"@odata.deltaLink":{"u":1}}"#, &c, &seq).unwrap_err();
    assert!(e.message.contains("@odata.deltaLink"), "{}", e.message);
    let ok = normalize_page(Stream::Messages, br#"{"value":[{"id":"g","@removed":{},"isRead":"x"}],"@odata.deltaLink":"d"}"#, &c, &seq).unwrap();
    assert_eq!(ok.delta_link.as_deref(), Some("d"));
    let ok = normalize_page(Stream::Messages, br#"{"value":[],"@odata.nextLink":null,"@odata.deltaLink":"d"}"#, &c, &seq).unwrap();
    assert_eq!(ok.next_link, None);
}

const CALENDARS: &str = r##"{
  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('u')/calendars",
  "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/u/calendars?$top=100&$skip=100",
  "value": [
    {
      "id": "AAMkAGI2TGuLAAA=",
      "name": "Calendar",
      "color": "auto",
      "hexColor": "",
      "isDefaultCalendar": true,
      "changeKey": "nfZyf7VcrEKLNoU37KWlkQAAA0x0+w==",
      "canShare": true,
      "canViewPrivateItems": true,
      "canEdit": true,
      "allowedOnlineMeetingProviders": ["teamsForBusiness"],
      "defaultOnlineMeetingProvider": "teamsForBusiness",
      "isTallyingResponses": true,
      "isRemovable": false,
      "owner": {"name": "Megan Bowen", "address": "MeganB@contoso.com"}
    },
    {
      "id": "AAMkAGI2TGuLBBB=",
      "name": 7,
      "color": "lightBlue",
      "hexColor": "#a6d1f5",
      "isDefaultCalendar": "no",
      "canEdit": false,
      "owner": ["not", "an", "object"],
      "@removed": {"reason": "deleted"}
    },
    {"id": "AAMkAGI2TGuLCCC=", "owner": {"address": "boss@contoso.com"}}
  ]
}"##;

#[test]
fn calendars_page() {
    let seq = SeqGen::new(0);
    let p = normalize_page(Stream::Calendars, CALENDARS.as_bytes(), &ctx(None, false), &seq).unwrap();
    let b = &p.batch;
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::Calendars));
    assert_eq!(b.num_rows(), 3);
    assert_eq!(p.next_link.as_deref(), Some("https://graph.microsoft.com/v1.0/users/u/calendars?$top=100&$skip=100"));
    assert_eq!(p.delta_link, None);
    assert_eq!(p.upserted_ids, ["AAMkAGI2TGuLAAA=", "AAMkAGI2TGuLBBB=", "AAMkAGI2TGuLCCC="]);
    assert_eq!(p.removed, 0, "a listing has no removals");
    assert_eq!(p.malformed_items, 1);
    // Every column of the first calendar.
    assert_eq!(s(b, "mailbox_id", 0), Some("mbx-1"));
    assert_eq!(s(b, "id", 0), Some("AAMkAGI2TGuLAAA="));
    assert_eq!(s(b, "_op", 0), Some("upsert"));
    assert_eq!(s(b, "_run_id", 0), Some("run-1"));
    assert_eq!(ts(b, "_extracted_at", 0), Some(micros("2024-05-01T12:00:00Z")));
    assert_eq!(s(b, "name", 0), Some("Calendar"));
    assert_eq!(s(b, "color", 0), Some("auto"));
    assert_eq!(s(b, "hex_color", 0), Some(""));
    assert_eq!(boolean(b, "is_default_calendar", 0), Some(true));
    assert_eq!(boolean(b, "can_edit", 0), Some(true));
    assert_eq!(boolean(b, "can_share", 0), Some(true));
    assert_eq!(boolean(b, "can_view_private_items", 0), Some(true));
    assert_eq!(boolean(b, "is_removable", 0), Some(false));
    assert_eq!(s(b, "owner_name", 0), Some("Megan Bowen"));
    assert_eq!(s(b, "owner_address", 0), Some("MeganB@contoso.com"));
    assert_eq!(s(b, "change_key", 0), Some("nfZyf7VcrEKLNoU37KWlkQAAA0x0+w=="));
    // Wrong types → null, the row kept and counted once; `@removed` is not a listing's.
    assert_eq!(s(b, "_op", 1), Some("upsert"));
    assert_eq!(s(b, "name", 1), None);
    assert_eq!(boolean(b, "is_default_calendar", 1), None);
    assert_eq!(s(b, "owner_name", 1), None);
    assert_eq!(s(b, "owner_address", 1), None);
    assert_eq!(s(b, "hex_color", 1), Some("#a6d1f5"));
    assert_eq!(boolean(b, "can_edit", 1), Some(false));
    assert_eq!(boolean(b, "can_share", 1), None);
    // Missing properties → null, not malformed.
    assert_eq!(s(b, "name", 2), None);
    assert_eq!(s(b, "owner_name", 2), None);
    assert_eq!(s(b, "owner_address", 2), Some("boss@contoso.com"));
    let seqs = b.column_by_name("_seq").unwrap().as_primitive::<Int64Type>();
    assert_eq!((seqs.value(1), seqs.value(2)), (seqs.value(0) + 1, seqs.value(0) + 2));
}

#[test]
fn calendars_page_failures() {
    let seq = SeqGen::new(0);
    let before = seq.high_water();
    let c = ctx(None, false);
    let e = normalize_page(Stream::Calendars, br#"{"value":[{"id":"a","name":"A"},{"name":"no id"}]}"#, &c, &seq).unwrap_err();
    assert_eq!(e.kind, NormalizeErrorKind::Invalid);
    assert!(e.message.contains("value[1]") && e.message.contains("id"), "{}", e.message);
    let e = normalize_page(Stream::Calendars, br#"{"value":[{"id":5}]}"#, &c, &seq).unwrap_err();
    assert!(e.message.contains("value[0]") && e.message.contains("id"), "{}", e.message);
    assert_eq!(normalize_page(Stream::Calendars, br#"{"value":[{"id":"a""#, &c, &seq).unwrap_err().kind, NormalizeErrorKind::Syntax);
    assert_eq!(seq.high_water(), before);
}

#[test]
fn events_rows_carry_the_partition_calendar() {
    let seq = SeqGen::new(0);
    let p = normalize_page(Stream::Events, EVENTS.as_bytes(), &ctx(Some("cal/1+="), false), &seq).unwrap();
    let b = &p.batch;
    assert_eq!(b.schema().field(1).name(), "calendar_id");
    for row in 0..3 {
        assert_eq!(s(b, "calendar_id", row), Some("cal/1+="), "row {row}");
    }
    assert_eq!(s(b, "_op", 2), Some("delete"), "a removal carries the calendar too");
    // The legacy partition (no calendar id): null.
    let p = normalize_page(Stream::Events, EVENTS.as_bytes(), &ctx(None, false), &seq).unwrap();
    assert!((0..3).all(|row| s(&p.batch, "calendar_id", row).is_none()));
}

#[test]
fn delete_rows_of_calendars_and_events() {
    let seq = SeqGen::new(0);
    let b = delete_rows(Stream::Calendars, &["c1".into(), "c2".into()], &ctx(None, false), &seq);
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::Calendars));
    assert_eq!(b.num_rows(), 2);
    assert_eq!((s(&b, "mailbox_id", 1), s(&b, "id", 1), s(&b, "_op", 1), s(&b, "_run_id", 1)), (Some("mbx-1"), Some("c2"), Some("delete"), Some("run-1")));
    for col in ["name", "color", "hex_color", "owner_name", "owner_address", "change_key"] {
        assert_eq!(s(&b, col, 0), None, "{col}");
    }
    for col in ["is_default_calendar", "can_edit", "can_share", "can_view_private_items", "is_removable"] {
        assert_eq!(boolean(&b, col, 0), None, "{col}");
    }

    let b = delete_rows(Stream::Events, &["e1".into()], &ctx(Some("cal-9"), false), &seq);
    assert_eq!(b.schema(), crate::graph::schema::schema(Stream::Events));
    assert_eq!((s(&b, "calendar_id", 0), s(&b, "id", 0), s(&b, "_op", 0)), (Some("cal-9"), Some("e1"), Some("delete")));
    assert_eq!(s(&b, "subject", 0), None);
    let b = delete_rows(Stream::Events, &["e1".into()], &ctx(None, false), &seq);
    assert_eq!(s(&b, "calendar_id", 0), None);
}
