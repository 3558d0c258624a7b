//! `events` rows from calendarView delta items.
//!
//! Key: (`mailbox_id`, `calendar_id`, `id`); `calendar_id` is the partition's calendar, set by
//! [`super::assemble`] from the context, not read from the item. `start`/`end` are `dateTimeTimeZone` values converted to UTC
//! (see [`super::timezones`]); `start_time_zone`/`end_time_zone` keep the `timeZone` strings as
//! sent. A `dateTime` that does not parse or a zone that is not known nulls that timestamp and
//! counts the item as malformed. `organizer` is `struct<name, address>`; `attendees` is
//! `list<struct<type, response, name, address>>`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};

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

/// UTC micros of a `dateTimeTimeZone`; `None` (and the item marked malformed) when it is
/// present but unreadable.
pub fn date_time_tz_micros(v: &DateTimeTimeZone<'_>) -> Option<i64> {
    let dt = v.date_time.as_deref()?;
    let Some((local, offset)) = parse_local_micros(dt) else {
        mark();
        return None;
    };
    if let Some(off) = offset {
        return Some(local - i64::from(off) * 1_000_000);
    }
    let zone = match v.time_zone.as_deref() {
        None => return Some(local),
        Some(z) => z,
    };
    match resolve_zone(zone).and_then(|tz| local_to_utc_micros(local, tz)) {
        Some(t) => Some(t),
        None => {
            mark();
            None
        }
    }
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
        self.start.append_option(e.start.0.as_ref().and_then(date_time_tz_micros));
        self.end.append_option(e.end.0.as_ref().and_then(date_time_tz_micros));
        self.start_tz.append_option(tz_of(&e.start));
        self.end_tz.append_option(tz_of(&e.end));
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
