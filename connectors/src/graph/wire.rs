//! Borrowed serde types for Graph pages: strings borrow from the response body when they have
//! no escapes, so a page is read in one pass without owned per-item structs.
//!
//! Leniency rule (the contract `normalize` documents): every property is optional. A missing
//! property or JSON `null` is `None`. A property of the wrong JSON type (a number where a string
//! belongs, an object where a list belongs, …) or a timestamp that does not parse is also `None`,
//! and marks the item *malformed* (see [`take_malformed`]); the item is still written.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::normalize::timestamp::parse_timestamp_micros;

thread_local! {
    static MALFORMED: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn mark() {
    MALFORMED.with(|m| m.set(true));
}

/// Whether a wrong-typed property was seen since the last call; resets the flag.
pub fn take_malformed() -> bool {
    MALFORMED.with(|m| m.replace(false))
}

/// Any JSON value, keeping scalars and skipping compound values.
enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Compound,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Compound)
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A string property.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LStr<'a>(pub Option<Cow<'a, str>>);

impl<'a> LStr<'a> {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LStr(match Scalar::deserialize(d)? {
            Scalar::Str(s) => Some(s),
            Scalar::Null => None,
            _ => {
                mark();
                None
            }
        }))
    }
}

/// A boolean property.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LBool(pub Option<bool>);

impl<'de> Deserialize<'de> for LBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LBool(match Scalar::deserialize(d)? {
            Scalar::Bool(b) => Some(b),
            Scalar::Null => None,
            _ => {
                mark();
                None
            }
        }))
    }
}

/// An integer property (a float with a fraction or out of range is wrong-typed).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LI64(pub Option<i64>);

impl<'de> Deserialize<'de> for LI64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LI64(match Scalar::deserialize(d)? {
            Scalar::Int(i) => Some(i),
            Scalar::UInt(u) if u <= i64::MAX as u64 => Some(u as i64),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            Scalar::Null => None,
            _ => {
                mark();
                None
            }
        }))
    }
}

/// A DateTimeOffset property, as microseconds since the epoch (UTC).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LTs(pub Option<i64>);

impl<'de> Deserialize<'de> for LTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LTs(match Scalar::deserialize(d)? {
            Scalar::Str(s) => {
                let t = parse_timestamp_micros(&s);
                if t.is_none() {
                    mark();
                }
                t
            }
            Scalar::Null => None,
            _ => {
                mark();
                None
            }
        }))
    }
}

/// An object property.
#[derive(Debug, Clone, PartialEq)]
pub struct LObj<T>(pub Option<T>);

impl<T> Default for LObj<T> {
    fn default() -> Self {
        LObj(None)
    }
}

struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        mark();
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LObj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(PhantomData)).map(LObj)
    }
}

/// A list property.
#[derive(Debug, Clone, PartialEq)]
pub struct LSeq<T>(pub Option<Vec<T>>);

impl<T> Default for LSeq<T> {
    fn default() -> Self {
        LSeq(None)
    }
}

struct SeqVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = Option<Vec<T>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Some(out))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        mark();
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        mark();
        Ok(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LSeq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeqVisitor(PhantomData)).map(LSeq)
    }
}

// ---- Graph resources -------------------------------------------------------------------------

/// `{"name","address"}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct EmailAddress<'a> {
    #[serde(borrow)]
    pub name: LStr<'a>,
    #[serde(borrow)]
    pub address: LStr<'a>,
}

/// `{"emailAddress":{…}}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Recipient<'a> {
    #[serde(borrow)]
    pub email_address: LObj<EmailAddress<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ItemBody<'a> {
    #[serde(borrow)]
    pub content_type: LStr<'a>,
    #[serde(borrow)]
    pub content: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FollowupFlag<'a> {
    #[serde(borrow)]
    pub flag_status: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MessageItem<'a> {
    #[serde(borrow)]
    pub id: LStr<'a>,
    #[serde(rename = "@removed")]
    pub removed: Option<IgnoredAny>,
    #[serde(borrow)]
    pub subject: LStr<'a>,
    #[serde(borrow)]
    pub body_preview: LStr<'a>,
    #[serde(borrow)]
    pub body: LObj<ItemBody<'a>>,
    #[serde(borrow)]
    pub from: LObj<Recipient<'a>>,
    #[serde(borrow)]
    pub sender: LObj<Recipient<'a>>,
    #[serde(borrow)]
    pub to_recipients: LSeq<LObj<Recipient<'a>>>,
    #[serde(borrow)]
    pub cc_recipients: LSeq<LObj<Recipient<'a>>>,
    #[serde(borrow)]
    pub bcc_recipients: LSeq<LObj<Recipient<'a>>>,
    #[serde(borrow)]
    pub reply_to: LSeq<LObj<Recipient<'a>>>,
    pub received_date_time: LTs,
    pub sent_date_time: LTs,
    pub created_date_time: LTs,
    pub last_modified_date_time: LTs,
    #[serde(borrow)]
    pub change_key: LStr<'a>,
    #[serde(borrow)]
    pub conversation_id: LStr<'a>,
    #[serde(borrow)]
    pub internet_message_id: LStr<'a>,
    #[serde(borrow)]
    pub parent_folder_id: LStr<'a>,
    #[serde(borrow)]
    pub importance: LStr<'a>,
    pub is_read: LBool,
    pub is_draft: LBool,
    pub has_attachments: LBool,
    #[serde(borrow)]
    pub categories: LSeq<LStr<'a>>,
    #[serde(borrow)]
    pub flag: LObj<FollowupFlag<'a>>,
    #[serde(borrow)]
    pub inference_classification: LStr<'a>,
    #[serde(borrow)]
    pub web_link: LStr<'a>,
}

/// `{"dateTime":"2024-01-22T02:30:00.0000000","timeZone":"UTC"}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DateTimeTimeZone<'a> {
    #[serde(borrow)]
    pub date_time: LStr<'a>,
    #[serde(borrow)]
    pub time_zone: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ResponseStatus<'a> {
    #[serde(borrow)]
    pub response: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Attendee<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: LStr<'a>,
    #[serde(borrow)]
    pub status: LObj<ResponseStatus<'a>>,
    #[serde(borrow)]
    pub email_address: LObj<EmailAddress<'a>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Location<'a> {
    #[serde(borrow)]
    pub display_name: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OnlineMeeting<'a> {
    #[serde(borrow)]
    pub join_url: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventItem<'a> {
    #[serde(borrow)]
    pub id: LStr<'a>,
    #[serde(rename = "@removed")]
    pub removed: Option<IgnoredAny>,
    #[serde(borrow)]
    pub subject: LStr<'a>,
    #[serde(borrow)]
    pub body_preview: LStr<'a>,
    #[serde(borrow)]
    pub start: LObj<DateTimeTimeZone<'a>>,
    #[serde(borrow)]
    pub end: LObj<DateTimeTimeZone<'a>>,
    pub is_all_day: LBool,
    pub is_cancelled: LBool,
    #[serde(borrow, rename = "type")]
    pub kind: LStr<'a>,
    #[serde(borrow)]
    pub series_master_id: LStr<'a>,
    pub original_start: LTs,
    #[serde(borrow)]
    pub organizer: LObj<Recipient<'a>>,
    #[serde(borrow)]
    pub attendees: LSeq<LObj<Attendee<'a>>>,
    #[serde(borrow)]
    pub location: LObj<Location<'a>>,
    #[serde(borrow)]
    pub show_as: LStr<'a>,
    #[serde(borrow)]
    pub sensitivity: LStr<'a>,
    #[serde(borrow)]
    pub importance: LStr<'a>,
    #[serde(borrow)]
    pub categories: LSeq<LStr<'a>>,
    #[serde(borrow)]
    pub online_meeting: LObj<OnlineMeeting<'a>>,
    #[serde(borrow, rename = "iCalUId")]
    pub i_cal_uid: LStr<'a>,
    pub created_date_time: LTs,
    pub last_modified_date_time: LTs,
    #[serde(borrow)]
    pub change_key: LStr<'a>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MailFolderItem<'a> {
    #[serde(borrow)]
    pub id: LStr<'a>,
    #[serde(rename = "@removed")]
    pub removed: Option<IgnoredAny>,
    #[serde(borrow)]
    pub display_name: LStr<'a>,
    #[serde(borrow)]
    pub parent_folder_id: LStr<'a>,
    pub child_folder_count: LI64,
    pub total_item_count: LI64,
    pub unread_item_count: LI64,
    pub is_hidden: LBool,
}

/// A calendar from `GET /users/{id}/calendars` (a listing: no `@removed` entries).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CalendarItem<'a> {
    #[serde(borrow)]
    pub id: LStr<'a>,
    #[serde(borrow)]
    pub name: LStr<'a>,
    #[serde(borrow)]
    pub color: LStr<'a>,
    #[serde(borrow)]
    pub hex_color: LStr<'a>,
    pub is_default_calendar: LBool,
    pub can_edit: LBool,
    pub can_share: LBool,
    pub can_view_private_items: LBool,
    pub is_removable: LBool,
    /// `{"name","address"}` (no `emailAddress` wrapper).
    #[serde(borrow)]
    pub owner: LObj<EmailAddress<'a>>,
    #[serde(borrow)]
    pub change_key: LStr<'a>,
}

/// A user from `/users` or `/me`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct User<'a> {
    #[serde(borrow)]
    pub id: LStr<'a>,
    #[serde(borrow)]
    pub user_principal_name: LStr<'a>,
    #[serde(borrow)]
    pub mail: LStr<'a>,
    #[serde(borrow)]
    pub display_name: LStr<'a>,
    pub account_enabled: LBool,
}

/// A page of users.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct UsersPage<'a> {
    #[serde(borrow)]
    pub value: Vec<User<'a>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
}
