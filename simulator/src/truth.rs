//! The ground truth: what a full sync of every mailbox must produce.
//!
//! ```json
//! {"mailboxes":[{
//!    "id": "<user id>", "userPrincipalName": "…", "has_mailbox": true,
//!    "mail_folders": [ <folder as mailFolders/delta serves it, every folder of the tree except the root> ],
//!    "messages": [ <message as messages/delta serves it with Prefer IdType="ImmutableId" and no
//!                   $select: every property, immutable id, parentFolderId> ],
//!    "calendars": [ <calendar exactly as `GET calendars` serves it, in listing order (the default
//!                   calendar first, then by creation)> ],
//!    "events": [ <every event instance of every calendar (singleInstance, occurrence, exception;
//!                never a series master; cancelled ones included, deleted ones not) as
//!                calendarView/delta serves it without outlook.timezone: start/end in UTC, all-day
//!                events at midnight in their original zone; immutable ids; plus the truth-only
//!                key "calendarId": the id of its calendar> ]
//! }]}
//! ```
//! Events are not limited to a window: a client comparing a calendarView window keeps the
//! instances with `start < windowEnd && end > windowStart` (compare instants: convert
//! `start`/`end` from their `timeZone`) and, per calendar, `calendarId` equal to the calendar's
//! id (`calendarView/delta` serves the default calendar: `isDefaultCalendar`). Remove
//! `calendarId` before comparing an event with a served one. Users without a mailbox have empty
//! lists.
//!
//! `messages` lists the stored messages, then the bulk folder's generated ones ([`crate::bulk`])
//! in index order: fine for tests, but gigabytes of JSON for a folder of a million; compare keys
//! with [`crate::Simulator::message_ids`] there.

use serde_json::{Value, json};

use crate::state::State;
use crate::wire::{self, MessageShape};

pub fn truth(st: &State) -> Value {
    let shape = MessageShape { immutable: true, select: None, text_body: false };
    let mailboxes: Vec<Value> = st
        .world
        .users
        .iter()
        .map(|u| {
            let (folders, messages, calendars, events) = match &u.mailbox {
                None => (vec![], vec![], vec![], vec![]),
                Some(mb) => (
                    mb.folders.values().map(|f| wire::folder_value(f, mb.folders.values().filter(|c| c.parent_id == f.id).count())).collect(),
                    mb.messages
                        .values()
                        .map(|m| wire::message_value(m, &shape))
                        .chain(mb.bulk.iter().flat_map(|b| b.present_indices().map(|k| wire::message_value(&b.message(k), &shape))))
                        .collect(),
                    mb.calendars_listed().into_iter().map(wire::calendar_value).collect(),
                    mb.events
                        .values()
                        .map(|e| {
                            let mut v = wire::event_value(e, None);
                            v["calendarId"] = json!(e.calendar_id);
                            v
                        })
                        .collect::<Vec<Value>>(),
                ),
            };
            json!({
                "id": u.id,
                "userPrincipalName": u.upn,
                "displayName": u.display_name,
                "mail": u.mail,
                "has_mailbox": u.mailbox.is_some(),
                "mail_folders": folders,
                "messages": messages,
                "calendars": calendars,
                "events": events,
            })
        })
        .collect();
    json!({"mailboxes": mailboxes})
}
