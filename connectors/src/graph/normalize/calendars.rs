//! `calendars` rows from a calendars listing (`GET /users/{id}/calendars`). Key: (`mailbox_id`,
//! `id`).
//!
//! The listing has no delta, so every item is an upsert; an `@removed` annotation, which Graph
//! does not send on listings, is ignored like any other unknown property. `owner` is
//! `{name, address}` and becomes `owner_name` / `owner_address`. The leniency rule of
//! [`super`] applies (wrong types → null, item counted as malformed; no string `id` → the page
//! fails).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};

use super::{NormalizeContext, Table, bool_builder, str_builder};
use crate::graph::wire::{CalendarItem, LStr};

pub(crate) struct Calendars {
    name: StringBuilder,
    color: StringBuilder,
    hex_color: StringBuilder,
    is_default_calendar: BooleanBuilder,
    can_edit: BooleanBuilder,
    can_share: BooleanBuilder,
    can_view_private_items: BooleanBuilder,
    is_removable: BooleanBuilder,
    owner_name: StringBuilder,
    owner_address: StringBuilder,
    change_key: StringBuilder,
}

impl Calendars {
    fn strings(&mut self) -> [&mut StringBuilder; 6] {
        [&mut self.name, &mut self.color, &mut self.hex_color, &mut self.owner_name, &mut self.owner_address, &mut self.change_key]
    }

    fn bools(&mut self) -> [&mut BooleanBuilder; 5] {
        [&mut self.is_default_calendar, &mut self.can_edit, &mut self.can_share, &mut self.can_view_private_items, &mut self.is_removable]
    }
}

impl Table for Calendars {
    type Item<'de> = CalendarItem<'de>;

    fn with_capacity(n: usize, _ctx: &NormalizeContext) -> Self {
        Calendars {
            name: str_builder(n, 16),
            color: str_builder(n, 10),
            hex_color: str_builder(n, 7),
            is_default_calendar: bool_builder(n),
            can_edit: bool_builder(n),
            can_share: bool_builder(n),
            can_view_private_items: bool_builder(n),
            is_removable: bool_builder(n),
            owner_name: str_builder(n, 16),
            owner_address: str_builder(n, 24),
            change_key: str_builder(n, 40),
        }
    }

    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de> {
        &item.id
    }

    fn is_removed(_item: &Self::Item<'_>) -> bool {
        false
    }

    fn push_upsert(&mut self, c: Self::Item<'_>, _ctx: &NormalizeContext) {
        let (owner_name, owner_address) = match c.owner.0.as_ref() {
            Some(o) => (o.name.as_deref(), o.address.as_deref()),
            None => (None, None),
        };
        self.name.append_option(c.name.as_deref());
        self.color.append_option(c.color.as_deref());
        self.hex_color.append_option(c.hex_color.as_deref());
        self.is_default_calendar.append_option(c.is_default_calendar.0);
        self.can_edit.append_option(c.can_edit.0);
        self.can_share.append_option(c.can_share.0);
        self.can_view_private_items.append_option(c.can_view_private_items.0);
        self.is_removable.append_option(c.is_removable.0);
        self.owner_name.append_option(owner_name);
        self.owner_address.append_option(owner_address);
        self.change_key.append_option(c.change_key.as_deref());
    }

    fn push_delete(&mut self, _ctx: &NormalizeContext) {
        for b in self.strings() {
            b.append_null();
        }
        for b in self.bools() {
            b.append_null();
        }
    }

    fn finish(mut self) -> (Option<ArrayRef>, Vec<ArrayRef>) {
        let data: Vec<ArrayRef> = vec![
            Arc::new(self.name.finish()),
            Arc::new(self.color.finish()),
            Arc::new(self.hex_color.finish()),
            Arc::new(self.is_default_calendar.finish()),
            Arc::new(self.can_edit.finish()),
            Arc::new(self.can_share.finish()),
            Arc::new(self.can_view_private_items.finish()),
            Arc::new(self.is_removable.finish()),
            Arc::new(self.owner_name.finish()),
            Arc::new(self.owner_address.finish()),
            Arc::new(self.change_key.finish()),
        ];
        (None, data)
    }
}
