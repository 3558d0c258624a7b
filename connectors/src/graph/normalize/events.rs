//! `events` rows from calendarView delta items.
//!
//! Key: (`mailbox_id`, `calendar_id`, `id`); `calendar_id` is the partition's calendar, set by
//! [`super::assemble`] from the context, not read from the item. Each of `start`/`end` (a
//! `dateTimeTimeZone`) gives four columns (see [`super::timezones`]):
//! - `start_date_time`/`end_date_time`: the instant, in UTC;
//! - `start_time_zone`/`end_time_zone`: the `timeZone` string as sent (often a Windows name);
//! - `start_date`/`end_date` (`Date32`): the calendar date of `dateTime` as written, i.e. in its
//!   own `timeZone`. All-day events keep their own zone whatever `Prefer: outlook.timezone`
//!   says, so these are the event's days: a 2026-12-22 all-day event in W. Europe has
//!   `start_date` 2026-12-22 and the exclusive `end_date` 2026-12-23, while its instant is
//!   2026-12-21 23:00 UTC. For timed events it is the date in the zone Graph served them in
//!   (UTC unless `outlook.timezone` asked for another). The date needs no zone, so an unknown
//!   zone still has one;
//! - `start_time_zone_iana`/`end_time_zone_iana`: the IANA name of `timeZone` (null if unknown).
//!
//! A `dateTime` that does not parse nulls that instant and date; a zone that is not known nulls
//! the instant and the IANA name; either counts the item as malformed. `organizer` is
//! `struct<name, address>`; `attendees` is `list<struct<type, response, name, address>>`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Date32Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use chrono_tz::Tz;

use super::timestamp::parse_local_micros;
use super::timezones::{local_to_utc_micros, resolve_zone};
use super::{NormalizeContext, StrStruct, StrStructList, Table, bool_builder, push_str_list, str_builder, str_list_builder, ts_builder};
use crate::graph::schema::{attendee_fields, email_fields};
use crate::graph::wire::{DateTimeTimeZone, EventItem, LObj, LStr, mark};

pub(crate) struct Events {
    subject: StringBuilder,
    body_preview: StringBuilder,
    start: TimestampMicrosecondBuilder,
    end: TimestampMicrosecondBuilder,
    start_tz: StringBuilder,
    end_tz: StringBuilder,
    start_date: Date32Builder,
    end_date: Date32Builder,
    start_iana: StringBuilder,
    end_iana: StringBuilder,
    is_all_day: BooleanBuilder,
    is_cancelled: BooleanBuilder,
    kind: StringBuilder,
    series_master_id: StringBuilder,
    original_start: TimestampMicrosecondBuilder,
    organizer: StrStruct<2>,
    attendees: StrStructList<4>,
    location: StringBuilder,
    show_as: StringBuilder,
    sensitivity: StringBuilder,
    importance: StringBuilder,
    categories: ListBuilder<StringBuilder>,
    join_url: StringBuilder,
    i_cal_uid: StringBuilder,
    created: TimestampMicrosecondBuilder,
    modified: TimestampMicrosecondBuilder,
    change_key: StringBuilder,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What one `dateTimeTimeZone` gives: the instant, the local date, the zone's IANA name.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Zoned {
    /// UTC microseconds.
    pub utc_micros: Option<i64>,
    /// Days since 1970-01-01 of `dateTime`'s own date (as written, in its `timeZone`).
    pub local_date: Option<i32>,
    /// The IANA name of `timeZone`.
    pub iana: Option<&'static str>,
}

/// Reads a `dateTimeTimeZone`; marks the item malformed when `dateTime` is present but
/// unreadable, or when a zone is needed for the instant and is not known.
pub fn read_zoned(v: &DateTimeTimeZone<'_>) -> Zoned {
    let tz_name = v.time_zone.as_deref();
    let zone: Option<Tz> = tz_name.and_then(resolve_zone);
    let iana = zone.map(Tz::name);
    let Some(dt) = v.date_time.as_deref() else {
        return Zoned { iana, ..Zoned::default() };
    };
    let Some((local, offset)) = parse_local_micros(dt) else {
        mark();
        return Zoned { iana, ..Zoned::default() };
    };
    // `parse_local_micros` accepts years 0000–9999 only, so the day count fits an i32.
    let local_date = i32::try_from(local.div_euclid(MICROS_PER_DAY)).ok();
    let utc_micros = match (offset, tz_name) {
        (Some(off), _) => Some(local - i64::from(off) * 1_000_000),
        (None, None) => Some(local),
        (None, Some(_)) => {
            let t = zone.and_then(|tz| local_to_utc_micros(local, tz));
            if t.is_none() {
                mark();
            }
            t
        }
    };
    Zoned { utc_micros, local_date, iana }
}

fn tz_of<'a>(v: &'a LObj<DateTimeTimeZone<'_>>) -> Option<&'a str> {
    v.0.as_ref().and_then(|d| d.time_zone.as_deref())
}

impl Table for Events {
    type Item<'de> = EventItem<'de>;

    fn with_capacity(n: usize, _ctx: &NormalizeContext) -> Self {
        Events {
            subject: str_builder(n, 40),
            body_preview: str_builder(n, 120),
            start: ts_builder(n),
            end: ts_builder(n),
            start_tz: str_builder(n, 12),
            end_tz: str_builder(n, 12),
            start_date: Date32Builder::with_capacity(n),
            end_date: Date32Builder::with_capacity(n),
            start_iana: str_builder(n, 14),
            end_iana: str_builder(n, 14),
            is_all_day: bool_builder(n),
            is_cancelled: bool_builder(n),
            kind: str_builder(n, 14),
            series_master_id: str_builder(n, 80),
            original_start: ts_builder(n),
            organizer: StrStruct::new(email_fields(), n),
            attendees: StrStructList::new(attendee_fields(), n),
            location: str_builder(n, 16),
            show_as: str_builder(n, 6),
            sensitivity: str_builder(n, 6),
            importance: str_builder(n, 6),
            categories: str_list_builder(n),
            join_url: str_builder(n, 0),
            i_cal_uid: str_builder(n, 100),
            created: ts_builder(n),
            modified: ts_builder(n),
            change_key: str_builder(n, 40),
        }
    }

    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de> {
        &item.id
    }

    fn is_removed(item: &Self::Item<'_>) -> bool {
        item.removed.is_some()
    }

    fn push_upsert(&mut self, e: Self::Item<'_>, _ctx: &NormalizeContext) {
        self.subject.append_option(e.subject.as_deref());
        self.body_preview.append_option(e.body_preview.as_deref());
        let start = e.start.0.as_ref().map(read_zoned).unwrap_or_default();
        let end = e.end.0.as_ref().map(read_zoned).unwrap_or_default();
        self.start.append_option(start.utc_micros);
        self.end.append_option(end.utc_micros);
        self.start_tz.append_option(tz_of(&e.start));
        self.end_tz.append_option(tz_of(&e.end));
        self.start_date.append_option(start.local_date);
        self.end_date.append_option(end.local_date);
        self.start_iana.append_option(start.iana);
        self.end_iana.append_option(end.iana);
        self.is_all_day.append_option(e.is_all_day.0);
        self.is_cancelled.append_option(e.is_cancelled.0);
        self.kind.append_option(e.kind.as_deref());
        self.series_master_id.append_option(e.series_master_id.as_deref());
        self.original_start.append_option(e.original_start.0);
        self.organizer.push(e.organizer.0.as_ref().map(|r| match r.email_address.0.as_ref() {
            Some(a) => [a.name.as_deref(), a.address.as_deref()],
            None => [None, None],
        }));
        self.attendees.push_list(e.attendees.0.as_ref().map(|list| {
            list.iter().map(|a| {
                a.0.as_ref().map(|a| {
                    let (name, address) = match a.email_address.0.as_ref() {
                        Some(x) => (x.name.as_deref(), x.address.as_deref()),
                        None => (None, None),
                    };
                    [a.kind.as_deref(), a.status.0.as_ref().and_then(|s| s.response.as_deref()), name, address]
                })
            })
        }));
        self.location.append_option(e.location.0.as_ref().and_then(|l| l.display_name.as_deref()));
        self.show_as.append_option(e.show_as.as_deref());
        self.sensitivity.append_option(e.sensitivity.as_deref());
        self.importance.append_option(e.importance.as_deref());
        push_str_list(&mut self.categories, e.categories.0.as_deref());
        self.join_url.append_option(e.online_meeting.0.as_ref().and_then(|o| o.join_url.as_deref()));
        self.i_cal_uid.append_option(e.i_cal_uid.as_deref());
        self.created.append_option(e.created_date_time.0);
        self.modified.append_option(e.last_modified_date_time.0);
        self.change_key.append_option(e.change_key.as_deref());
    }

    fn push_delete(&mut self, _ctx: &NormalizeContext) {
        for b in [
            &mut self.subject,
            &mut self.body_preview,
            &mut self.start_tz,
            &mut self.end_tz,
            &mut self.start_iana,
            &mut self.end_iana,
            &mut self.kind,
            &mut self.series_master_id,
            &mut self.location,
            &mut self.show_as,
            &mut self.sensitivity,
            &mut self.importance,
            &mut self.join_url,
            &mut self.i_cal_uid,
            &mut self.change_key,
        ] {
            b.append_null();
        }
        for b in [&mut self.start, &mut self.end, &mut self.original_start, &mut self.created, &mut self.modified] {
            b.append_null();
        }
        self.start_date.append_null();
        self.end_date.append_null();
        self.is_all_day.append_null();
        self.is_cancelled.append_null();
        self.organizer.push(None);
        self.attendees.push_null();
        self.categories.append_null();
    }

    fn finish(mut self) -> (Option<ArrayRef>, Vec<ArrayRef>) {
        let data: Vec<ArrayRef> = vec![
            Arc::new(self.subject.finish()),
            Arc::new(self.body_preview.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.start_tz.finish()),
            Arc::new(self.end_tz.finish()),
            Arc::new(self.start_date.finish()),
            Arc::new(self.end_date.finish()),
            Arc::new(self.start_iana.finish()),
            Arc::new(self.end_iana.finish()),
            Arc::new(self.is_all_day.finish()),
            Arc::new(self.is_cancelled.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.series_master_id.finish()),
            Arc::new(self.original_start.finish()),
            Arc::new(self.organizer.finish()),
            Arc::new(self.attendees.finish()),
            Arc::new(self.location.finish()),
            Arc::new(self.show_as.finish()),
            Arc::new(self.sensitivity.finish()),
            Arc::new(self.importance.finish()),
            Arc::new(self.categories.finish()),
            Arc::new(self.join_url.finish()),
            Arc::new(self.i_cal_uid.finish()),
            Arc::new(self.created.finish()),
            Arc::new(self.modified.finish()),
            Arc::new(self.change_key.finish()),
        ];
        (None, data)
    }
}
