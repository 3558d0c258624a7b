//! `mail_folders` rows from mailFolder delta items. Key: (`mailbox_id`, `id`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder};

use super::{NormalizeContext, Table, bool_builder, str_builder};
use crate::graph::wire::{LStr, MailFolderItem};

pub(crate) struct MailFolders {
    display_name: StringBuilder,
    parent_folder_id: StringBuilder,
    child_folder_count: Int64Builder,
    total_item_count: Int64Builder,
    unread_item_count: Int64Builder,
    is_hidden: BooleanBuilder,
}

impl Table for MailFolders {
    type Item<'de> = MailFolderItem<'de>;

    fn with_capacity(n: usize, _ctx: &NormalizeContext) -> Self {
        MailFolders {
            display_name: str_builder(n, 16),
            parent_folder_id: str_builder(n, 120),
            child_folder_count: Int64Builder::with_capacity(n),
            total_item_count: Int64Builder::with_capacity(n),
            unread_item_count: Int64Builder::with_capacity(n),
            is_hidden: bool_builder(n),
        }
    }

    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de> {
        &item.id
    }

    fn is_removed(item: &Self::Item<'_>) -> bool {
        item.removed.is_some()
    }

    fn push_upsert(&mut self, f: Self::Item<'_>, _ctx: &NormalizeContext) {
        self.display_name.append_option(f.display_name.as_deref());
        self.parent_folder_id.append_option(f.parent_folder_id.as_deref());
        self.child_folder_count.append_option(f.child_folder_count.0);
        self.total_item_count.append_option(f.total_item_count.0);
        self.unread_item_count.append_option(f.unread_item_count.0);
        self.is_hidden.append_option(f.is_hidden.0);
    }

    fn push_delete(&mut self, _ctx: &NormalizeContext) {
        self.display_name.append_null();
        self.parent_folder_id.append_null();
        self.child_folder_count.append_null();
        self.total_item_count.append_null();
        self.unread_item_count.append_null();
        self.is_hidden.append_null();
    }

    fn finish(mut self) -> (Option<ArrayRef>, Vec<ArrayRef>) {
        let data: Vec<ArrayRef> = vec![
            Arc::new(self.display_name.finish()),
            Arc::new(self.parent_folder_id.finish()),
            Arc::new(self.child_folder_count.finish()),
            Arc::new(self.total_item_count.finish()),
            Arc::new(self.unread_item_count.finish()),
            Arc::new(self.is_hidden.finish()),
        ];
        (None, data)
    }
}
