//! Serialization of entities to Graph's wire JSON, with per-entity caching.
//!
//! A message is served as `@odata.type`, `@odata.etag` (`W/"<changeKey>"`), `id` in the form the
//! request asked for (immutable or regular), then either every property or only the `$select`ed
//! ones. An event is served with `start`/`end` in the zone of `Prefer: outlook.timezone` (UTC by
//! default); all-day events keep midnight in their original zone. Serialized bytes are cached on
//! the entity per request shape and the cache is cleared by every change. A calendar is served
//! with Graph's calendar properties (`id, name, color, hexColor, isDefaultCalendar, changeKey,
//! canShare, canViewPrivateItems, canEdit, isRemovable, allowedOnlineMeetingProviders,
//! defaultOnlineMeetingProvider, isTallyingResponses, owner {name, address}`).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::fmt;
use crate::model::{Calendar, Event, Folder, Message};
use crate::tz;

/// Every message property the simulator serves (besides the odata annotations).
pub const MESSAGE_PROPS: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

/// Maps a `$select` name to its canonical spelling (Graph matches property names case-insensitively).
pub fn canonical_message_prop(name: &str) -> Option<&'static str> {
    MESSAGE_PROPS.iter().copied().find(|p| p.eq_ignore_ascii_case(name))
}

/// How a request wants messages rendered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MessageShape {
    pub immutable: bool,
    /// Canonical property names; `None` = all.
    pub select: Option<Vec<String>>,
    /// `Prefer: outlook.body-content-type="text"`.
    pub text_body: bool,
}

impl MessageShape {
    fn key(&self) -> String {
        format!("{}{}|{}", self.immutable as u8, self.text_body as u8, self.select.as_ref().map(|s| s.join(",")).unwrap_or_else(|| "*".into()))
    }
}

pub fn web_link(id: &str) -> String {
    format!(
        "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// The message as JSON for this shape.
pub fn message_value(m: &Message, shape: &MessageShape) -> Value {
    let mut out = Map::new();
    out.insert("@odata.type".into(), json!("#microsoft.graph.message"));
    let ck = m.props.get("changeKey").and_then(Value::as_str).unwrap_or_default();
    out.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
    let id = m.id(shape.immutable);
    out.insert("id".into(), json!(id));
    let wanted = |p: &str| match &shape.select {
        None => true,
        Some(s) => s.iter().any(|x| x == p),
    };
    for (k, v) in &m.props {
        if wanted(k) {
            if k == "body" && shape.text_body {
                let html = v.get("content").and_then(Value::as_str).unwrap_or_default();
                out.insert(k.clone(), json!({"contentType": "text", "content": html_to_text(html)}));
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if wanted("parentFolderId") {
        out.insert("parentFolderId".into(), json!(m.folder_id));
    }
    if wanted("webLink") {
        out.insert("webLink".into(), json!(web_link(id)));
    }
    Value::Object(out)
}

/// Cached serialized message.
pub fn message_bytes(m: &mut Message, shape: &MessageShape) -> Bytes {
    let key = shape.key();
    if let Some((_, b)) = m.cache.iter().find(|(k, _)| *k == key) {
        return b.clone();
    }
    let b = Bytes::from(serde_json::to_vec(&message_value(m, shape)).expect("json"));
    if m.cache.len() >= 4 {
        m.cache.remove(0);
    }
    m.cache.push((key, b.clone()));
    b
}

/// Strips tags for `outlook.body-content-type="text"`.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The event as JSON with start/end in `zone` (a Windows or IANA name; `None` = UTC).
pub fn event_value(e: &Event, zone: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("@odata.type".into(), json!("#microsoft.graph.event"));
    let ck = e.props.get("changeKey").and_then(Value::as_str).unwrap_or_default();
    out.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
    out.insert("id".into(), json!(e.id));
    for (k, v) in &e.props {
        out.insert(k.clone(), v.clone());
    }
    let (start, end) = if e.all_day {
        (
            json!({"dateTime": fmt::local_ts(e.local_start), "timeZone": e.original_tz}),
            json!({"dateTime": fmt::local_ts(e.local_end), "timeZone": e.original_tz}),
        )
    } else {
        let z = zone.filter(|z| tz::resolve(z).is_some()).unwrap_or("UTC");
        (json!({"dateTime": fmt::local_ts(tz::to_local(e.start, z)), "timeZone": z}), json!({"dateTime": fmt::local_ts(tz::to_local(e.end, z)), "timeZone": z}))
    };
    out.insert("start".into(), start);
    out.insert("end".into(), end);
    Value::Object(out)
}

/// Cached serialized event.
pub fn event_bytes(e: &mut Event, zone: Option<&str>) -> Bytes {
    let key = zone.unwrap_or("UTC").to_string();
    if let Some((_, b)) = e.cache.iter().find(|(k, _)| *k == key) {
        return b.clone();
    }
    let b = Bytes::from(serde_json::to_vec(&event_value(e, zone)).expect("json"));
    if e.cache.len() >= 4 {
        e.cache.remove(0);
    }
    e.cache.push((key, b.clone()));
    b
}

/// The folder as its delta JSON.
pub fn folder_value(f: &Folder, child_count: usize) -> Value {
    json!({
        "id": f.id,
        "displayName": f.display_name,
        "parentFolderId": f.parent_id,
        "childFolderCount": child_count,
        "unreadItemCount": f.unread,
        "totalItemCount": f.total,
        "isHidden": false,
    })
}

/// `{"@odata.type":…,"id":…,"@removed":{"reason":"deleted"}}`.
pub fn removal(odata_type: &str, id: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(&json!({"@odata.type": odata_type, "id": id, "@removed": {"reason": "deleted"}})).expect("json"))
}

/// The calendar as `GET calendars` serves it.
pub fn calendar_value(c: &Calendar) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "color": c.color,
        "hexColor": c.hex_color,
        "isDefaultCalendar": c.is_default,
        "changeKey": c.change_key,
        "canShare": c.can_share,
        "canViewPrivateItems": c.can_view_private_items,
        "canEdit": c.can_edit,
        "isRemovable": c.is_removable,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        // `onlineMeetingProviderType` has no `none`: Graph says `unknown` (Microsoft's SDKs drop anything else).
        "defaultOnlineMeetingProvider": if c.can_edit { "teamsForBusiness" } else { "unknown" },
        "isTallyingResponses": c.can_edit,
        "owner": {"name": c.owner_name, "address": c.owner_address},
    })
}
