//! `messages` rows from message delta items.
//!
//! Key: (`mailbox_id`, `parent_folder_id`, `id`). An upsert without `parentFolderId` takes the
//! partition's folder id; so does every delete row. `body_content_type` / `body_content` are
//! filled only when bodies are fetched (otherwise `body` is not selected and they stay null).
//! `from`/`sender` flatten to `*_name`/`*_address`; recipient lists are
//! `list<struct<name, address>>`; `flag.flagStatus` becomes `flag_status`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};

use super::{NormalizeContext, StrStructList, Table, bool_builder, push_str_list, str_builder, str_list_builder, ts_builder};
use crate::graph::schema::email_fields;
use crate::graph::wire::{LObj, LSeq, LStr, MessageItem, Recipient};

pub(crate) struct Messages {
    parent_folder_id: StringBuilder,
    subject: StringBuilder,
    body_preview: StringBuilder,
    body_content_type: StringBuilder,
    body_content: StringBuilder,
    from_name: StringBuilder,
    from_address: StringBuilder,
    sender_name: StringBuilder,
    sender_address: StringBuilder,
    to: StrStructList<2>,
    cc: StrStructList<2>,
    bcc: StrStructList<2>,
    reply_to: StrStructList<2>,
    received: TimestampMicrosecondBuilder,
    sent: TimestampMicrosecondBuilder,
    created: TimestampMicrosecondBuilder,
    modified: TimestampMicrosecondBuilder,
    change_key: StringBuilder,
    conversation_id: StringBuilder,
    internet_message_id: StringBuilder,
    importance: StringBuilder,
    is_read: BooleanBuilder,
    is_draft: BooleanBuilder,
    has_attachments: BooleanBuilder,
    categories: ListBuilder<StringBuilder>,
    flag_status: StringBuilder,
    inference_classification: StringBuilder,
    web_link: StringBuilder,
}

fn name_address<'a>(r: &'a LObj<Recipient<'_>>) -> (Option<&'a str>, Option<&'a str>) {
    match r.0.as_ref().and_then(|r| r.email_address.0.as_ref()) {
        Some(e) => (e.name.as_deref(), e.address.as_deref()),
        None => (None, None),
    }
}

fn push_recipients(b: &mut StrStructList<2>, list: &LSeq<LObj<Recipient<'_>>>) {
    b.push_list(list.0.as_ref().map(|items| {
        items.iter().map(|r| {
            r.0.as_ref().map(|r| match r.email_address.0.as_ref() {
                Some(e) => [e.name.as_deref(), e.address.as_deref()],
                None => [None, None],
            })
        })
    }));
}

impl Table for Messages {
    type Item<'de> = MessageItem<'de>;

    fn with_capacity(n: usize, ctx: &NormalizeContext) -> Self {
        Messages {
            parent_folder_id: str_builder(n, 160),
            subject: str_builder(n, 48),
            body_preview: str_builder(n, 160),
            body_content_type: str_builder(n, if ctx.fetch_bodies { 4 } else { 0 }),
            body_content: str_builder(n, if ctx.fetch_bodies { 2048 } else { 0 }),
            from_name: str_builder(n, 16),
            from_address: str_builder(n, 24),
            sender_name: str_builder(n, 16),
            sender_address: str_builder(n, 24),
            to: StrStructList::new(email_fields(), n),
            cc: StrStructList::new(email_fields(), n),
            bcc: StrStructList::new(email_fields(), n),
            reply_to: StrStructList::new(email_fields(), n),
            received: ts_builder(n),
            sent: ts_builder(n),
            created: ts_builder(n),
            modified: ts_builder(n),
            change_key: str_builder(n, 40),
            conversation_id: str_builder(n, 120),
            internet_message_id: str_builder(n, 64),
            importance: str_builder(n, 6),
            is_read: bool_builder(n),
            is_draft: bool_builder(n),
            has_attachments: bool_builder(n),
            categories: str_list_builder(n),
            flag_status: str_builder(n, 10),
            inference_classification: str_builder(n, 7),
            web_link: str_builder(n, 200),
        }
    }

    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de> {
        &item.id
    }

    fn is_removed(item: &Self::Item<'_>) -> bool {
        item.removed.is_some()
    }

    fn push_upsert(&mut self, m: Self::Item<'_>, ctx: &NormalizeContext) {
        self.parent_folder_id.append_option(m.parent_folder_id.as_deref().or(ctx.folder_id.as_deref()).or(Some("")));
        self.subject.append_option(m.subject.as_deref());
        self.body_preview.append_option(m.body_preview.as_deref());
        let body = m.body.0.as_ref().filter(|_| ctx.fetch_bodies);
        self.body_content_type.append_option(body.and_then(|b| b.content_type.as_deref()));
        self.body_content.append_option(body.and_then(|b| b.content.as_deref()));
        let (n, a) = name_address(&m.from);
        self.from_name.append_option(n);
        self.from_address.append_option(a);
        let (n, a) = name_address(&m.sender);
        self.sender_name.append_option(n);
        self.sender_address.append_option(a);
        push_recipients(&mut self.to, &m.to_recipients);
        push_recipients(&mut self.cc, &m.cc_recipients);
        push_recipients(&mut self.bcc, &m.bcc_recipients);
        push_recipients(&mut self.reply_to, &m.reply_to);
        self.received.append_option(m.received_date_time.0);
        self.sent.append_option(m.sent_date_time.0);
        self.created.append_option(m.created_date_time.0);
        self.modified.append_option(m.last_modified_date_time.0);
        self.change_key.append_option(m.change_key.as_deref());
        self.conversation_id.append_option(m.conversation_id.as_deref());
        self.internet_message_id.append_option(m.internet_message_id.as_deref());
        self.importance.append_option(m.importance.as_deref());
        self.is_read.append_option(m.is_read.0);
        self.is_draft.append_option(m.is_draft.0);
        self.has_attachments.append_option(m.has_attachments.0);
        push_str_list(&mut self.categories, m.categories.0.as_deref());
        self.flag_status.append_option(m.flag.0.as_ref().and_then(|f| f.flag_status.as_deref()));
        self.inference_classification.append_option(m.inference_classification.as_deref());
        self.web_link.append_option(m.web_link.as_deref());
    }

    fn push_delete(&mut self, ctx: &NormalizeContext) {
        self.parent_folder_id.append_value(ctx.folder_id.as_deref().unwrap_or(""));
        for b in [
            &mut self.subject,
            &mut self.body_preview,
            &mut self.body_content_type,
            &mut self.body_content,
            &mut self.from_name,
            &mut self.from_address,
            &mut self.sender_name,
            &mut self.sender_address,
            &mut self.change_key,
            &mut self.conversation_id,
            &mut self.internet_message_id,
            &mut self.importance,
            &mut self.flag_status,
            &mut self.inference_classification,
            &mut self.web_link,
        ] {
            b.append_null();
        }
        for b in [&mut self.to, &mut self.cc, &mut self.bcc, &mut self.reply_to] {
            b.push_null();
        }
        for b in [&mut self.received, &mut self.sent, &mut self.created, &mut self.modified] {
            b.append_null();
        }
        for b in [&mut self.is_read, &mut self.is_draft, &mut self.has_attachments] {
            b.append_null();
        }
        self.categories.append_null();
    }

    fn finish(mut self) -> (Option<ArrayRef>, Vec<ArrayRef>) {
        let key: ArrayRef = Arc::new(self.parent_folder_id.finish());
        let data: Vec<ArrayRef> = vec![
            Arc::new(self.subject.finish()),
            Arc::new(self.body_preview.finish()),
            Arc::new(self.body_content_type.finish()),
            Arc::new(self.body_content.finish()),
            Arc::new(self.from_name.finish()),
            Arc::new(self.from_address.finish()),
            Arc::new(self.sender_name.finish()),
            Arc::new(self.sender_address.finish()),
            Arc::new(self.to.finish()),
            Arc::new(self.cc.finish()),
            Arc::new(self.bcc.finish()),
            Arc::new(self.reply_to.finish()),
            Arc::new(self.received.finish()),
            Arc::new(self.sent.finish()),
            Arc::new(self.created.finish()),
            Arc::new(self.modified.finish()),
            Arc::new(self.change_key.finish()),
            Arc::new(self.conversation_id.finish()),
            Arc::new(self.internet_message_id.finish()),
            Arc::new(self.importance.finish()),
            Arc::new(self.is_read.finish()),
            Arc::new(self.is_draft.finish()),
            Arc::new(self.has_attachments.finish()),
            Arc::new(self.categories.finish()),
            Arc::new(self.flag_status.finish()),
            Arc::new(self.inference_classification.finish()),
            Arc::new(self.web_link.finish()),
        ];
        (Some(key), data)
    }
}
