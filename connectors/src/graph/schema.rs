//! Arrow schemas of the four tables.
//!
//! Every table starts with the key and pipeline columns: `mailbox_id`, (for `events`,
//! `calendar_id`), `id` (and, for `messages`, `parent_folder_id`), `_op` (`upsert`|`delete`),
//! `_seq`, `_extracted_at`, `_run_id` — all non-null except `calendar_id`, which is null on the
//! rows of the single events partition of lakes written before events were partitioned per
//! calendar. Keys: `mail_folders` and `calendars` (`mailbox_id`, `id`); `messages`
//! (`mailbox_id`, `parent_folder_id`, `id`); `events` (`mailbox_id`, `calendar_id`, `id`).
//! Data columns follow, snake_case of the Graph property names, all
//! nullable (a delete row carries only the key and pipeline columns). Timestamps are
//! `Timestamp(Microsecond, "UTC")`; lists are `List` with a nullable `item` field; recipients are
//! `struct<name, address>`. Columns that are not Graph properties: `events.start_date` /
//! `end_date` (`Date32`, the wall-clock date of `start`/`end` in their own `timeZone`) and
//! `start_time_zone_iana` / `end_time_zone_iana` (the IANA name of that zone), right after
//! `end_time_zone`.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use outlake_pipeline::model::Stream;
use outlake_pipeline::model::columns as c;

pub fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn email_fields() -> Fields {
    Fields::from(vec![Field::new("name", DataType::Utf8, true), Field::new("address", DataType::Utf8, true)])
}

pub fn attendee_fields() -> Fields {
    Fields::from(vec![
        Field::new("type", DataType::Utf8, true),
        Field::new("response", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("address", DataType::Utf8, true),
    ])
}

pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn b(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}
fn ts(name: &str) -> Field {
    Field::new(name, ts_type(), true)
}
fn i(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}
fn d(name: &str) -> Field {
    Field::new(name, DataType::Date32, true)
}

/// `calendar_id` of `events`: the partition's calendar (null for the legacy partition).
pub const CALENDAR_ID: &str = "calendar_id";

fn head(stream: Stream) -> Vec<Field> {
    let mut f = vec![Field::new(c::MAILBOX_ID, DataType::Utf8, false)];
    if stream == Stream::Events {
        f.push(Field::new(CALENDAR_ID, DataType::Utf8, true));
    }
    f.push(Field::new(c::ID, DataType::Utf8, false));
    if stream == Stream::Messages {
        f.push(Field::new(c::PARENT_FOLDER_ID, DataType::Utf8, false));
    }
    f.extend([
        Field::new(c::OP, DataType::Utf8, false),
        Field::new(c::SEQ, DataType::Int64, false),
        Field::new(c::EXTRACTED_AT, ts_type(), false),
        Field::new(c::RUN_ID, DataType::Utf8, false),
    ]);
    f
}

fn messages() -> Schema {
    let recipients = || list_of(DataType::Struct(email_fields()));
    let mut f = head(Stream::Messages);
    f.extend([
        s("subject"),
        s("body_preview"),
        s("body_content_type"),
        s("body_content"),
        s("from_name"),
        s("from_address"),
        s("sender_name"),
        s("sender_address"),
        Field::new("to_recipients", recipients(), true),
        Field::new("cc_recipients", recipients(), true),
        Field::new("bcc_recipients", recipients(), true),
        Field::new("reply_to", recipients(), true),
        ts("received_date_time"),
        ts("sent_date_time"),
        ts("created_date_time"),
        ts("last_modified_date_time"),
        s(c::CHANGE_KEY),
        s("conversation_id"),
        s("internet_message_id"),
        s("importance"),
        b("is_read"),
        b("is_draft"),
        b("has_attachments"),
        Field::new("categories", list_of(DataType::Utf8), true),
        s("flag_status"),
        s("inference_classification"),
        s("web_link"),
    ]);
    Schema::new(f)
}

fn events() -> Schema {
    let mut f = head(Stream::Events);
    f.extend([
        s("subject"),
        s("body_preview"),
        ts("start_date_time"),
        ts("end_date_time"),
        s("start_time_zone"),
        s("end_time_zone"),
        d("start_date"),
        d("end_date"),
        s("start_time_zone_iana"),
        s("end_time_zone_iana"),
        b("is_all_day"),
        b("is_cancelled"),
        s("type"),
        s("series_master_id"),
        ts("original_start"),
        Field::new("organizer", DataType::Struct(email_fields()), true),
        Field::new("attendees", list_of(DataType::Struct(attendee_fields())), true),
        s("location_display_name"),
        s("show_as"),
        s("sensitivity"),
        s("importance"),
        Field::new("categories", list_of(DataType::Utf8), true),
        s("online_meeting_join_url"),
        s("i_cal_uid"),
        ts("created_date_time"),
        ts("last_modified_date_time"),
        s(c::CHANGE_KEY),
    ]);
    Schema::new(f)
}

fn mail_folders() -> Schema {
    let mut f = head(Stream::MailFolders);
    f.extend([s("display_name"), s(c::PARENT_FOLDER_ID), i("child_folder_count"), i("total_item_count"), i("unread_item_count"), b("is_hidden")]);
    Schema::new(f)
}

fn calendars() -> Schema {
    let mut f = head(Stream::Calendars);
    f.extend([
        s("name"),
        s("color"),
        s("hex_color"),
        b("is_default_calendar"),
        b("can_edit"),
        b("can_share"),
        b("can_view_private_items"),
        b("is_removable"),
        s("owner_name"),
        s("owner_address"),
        s(c::CHANGE_KEY),
    ]);
    Schema::new(f)
}

fn mailboxes() -> Schema {
    let mut f = head(Stream::Mailboxes);
    f.extend([s("user_principal_name"), s("mail"), s("display_name"), b("account_enabled"), s(c::CHANGE_KEY)]);
    Schema::new(f)
}

/// The schema of a table (built once).
pub fn schema(stream: Stream) -> SchemaRef {
    static M: OnceLock<SchemaRef> = OnceLock::new();
    static E: OnceLock<SchemaRef> = OnceLock::new();
    static F: OnceLock<SchemaRef> = OnceLock::new();
    static C: OnceLock<SchemaRef> = OnceLock::new();
    static U: OnceLock<SchemaRef> = OnceLock::new();
    match stream {
        Stream::Messages => M.get_or_init(|| Arc::new(messages())).clone(),
        Stream::Events => E.get_or_init(|| Arc::new(events())).clone(),
        Stream::MailFolders => F.get_or_init(|| Arc::new(mail_folders())).clone(),
        Stream::Calendars => C.get_or_init(|| Arc::new(calendars())).clone(),
        Stream::Mailboxes => U.get_or_init(|| Arc::new(mailboxes())).clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(stream: Stream) -> Vec<String> {
        schema(stream).fields().iter().map(|f| f.name().clone()).collect()
    }

    /// Column names are a user contract.
    #[test]
    fn calendars_and_events_columns() {
        assert_eq!(
            names(Stream::Calendars),
            [
                "mailbox_id",
                "id",
                "_op",
                "_seq",
                "_extracted_at",
                "_run_id",
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
                "change_key"
            ]
        );
        let e = names(Stream::Events);
        assert_eq!(e[..7], ["mailbox_id", "calendar_id", "id", "_op", "_seq", "_extracted_at", "_run_id"]);
        assert_eq!(e.len(), 7 + 27);
        let at = e.iter().position(|n| n == "end_time_zone").unwrap();
        assert_eq!(
            e[at - 3..at + 7],
            [
                "start_date_time",
                "end_date_time",
                "start_time_zone",
                "end_time_zone",
                "start_date",
                "end_date",
                "start_time_zone_iana",
                "end_time_zone_iana",
                "is_all_day",
                "is_cancelled"
            ]
        );
        let events = schema(Stream::Events);
        assert!(events.field_with_name(CALENDAR_ID).unwrap().is_nullable());
        assert_eq!(*events.field_with_name(CALENDAR_ID).unwrap().data_type(), DataType::Utf8);
        for (col, ty) in
            [("start_date", DataType::Date32), ("end_date", DataType::Date32), ("start_time_zone_iana", DataType::Utf8), ("end_time_zone_iana", DataType::Utf8)]
        {
            let f = events.field_with_name(col).unwrap();
            assert_eq!((f.data_type(), f.is_nullable()), (&ty, true), "{col}");
        }
        for stream in Stream::ALL {
            let sc = schema(stream);
            for k in [c::MAILBOX_ID, c::ID, c::OP, c::SEQ, c::EXTRACTED_AT, c::RUN_ID] {
                assert!(!sc.field_with_name(k).unwrap().is_nullable(), "{stream}.{k}");
            }
        }
    }
}
