//! The `mailboxes` row of a mailbox: who it is. Key: (`mailbox_id`, `id`), both the Graph user
//! id. Built from the user Graph returned when the mailbox was listed or resolved
//! (`/users?$select=…`, `/users/{x}`, `/me`), not from a page of its own.
//!
//! `change_key` is a fingerprint of `user_principal_name`, `mail`, `display_name` and
//! `account_enabled` (16 hex digits of SHA-256), so that a run writes the row again only when
//! one of them changed.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, StringBuilder};
use sha2::{Digest, Sha256};

use super::{NormalizeContext, Table, bool_builder, str_builder};
use crate::graph::wire::{LStr, User};

pub(crate) struct Mailboxes {
    user_principal_name: StringBuilder,
    mail: StringBuilder,
    display_name: StringBuilder,
    account_enabled: BooleanBuilder,
    change_key: StringBuilder,
}

/// The row's change key: changes when any of its fields does.
pub(crate) fn change_key(upn: Option<&str>, mail: Option<&str>, display_name: Option<&str>, account_enabled: Option<bool>) -> String {
    let mut h = Sha256::new();
    for field in [upn, mail, display_name, account_enabled.map(|e| if e { "true" } else { "false" })] {
        // A length prefix keeps ("ab", "c") and ("a", "bc") apart; absent differs from empty.
        match field {
            Some(v) => {
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
            None => h.update(u64::MAX.to_be_bytes()),
        }
    }
    h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Table for Mailboxes {
    type Item<'de> = User<'de>;

    fn with_capacity(n: usize, _ctx: &NormalizeContext) -> Self {
        Mailboxes {
            user_principal_name: str_builder(n, 32),
            mail: str_builder(n, 32),
            display_name: str_builder(n, 24),
            account_enabled: bool_builder(n),
            change_key: str_builder(n, 16),
        }
    }

    fn id<'a, 'de>(item: &'a Self::Item<'de>) -> &'a LStr<'de> {
        &item.id
    }

    fn is_removed(_item: &Self::Item<'_>) -> bool {
        false
    }

    fn push_upsert(&mut self, u: Self::Item<'_>, _ctx: &NormalizeContext) {
        let (upn, mail, name, enabled) = (u.user_principal_name.as_deref(), u.mail.as_deref(), u.display_name.as_deref(), u.account_enabled.0);
        self.user_principal_name.append_option(upn);
        self.mail.append_option(mail);
        self.display_name.append_option(name);
        self.account_enabled.append_option(enabled);
        self.change_key.append_value(change_key(upn, mail, name, enabled));
    }

    fn push_delete(&mut self, _ctx: &NormalizeContext) {
        for b in [&mut self.user_principal_name, &mut self.mail, &mut self.display_name, &mut self.change_key] {
            b.append_null();
        }
        self.account_enabled.append_null();
    }

    fn finish(mut self) -> (Option<ArrayRef>, Vec<ArrayRef>) {
        let data: Vec<ArrayRef> = vec![
            Arc::new(self.user_principal_name.finish()),
            Arc::new(self.mail.finish()),
            Arc::new(self.display_name.finish()),
            Arc::new(self.account_enabled.finish()),
            Arc::new(self.change_key.finish()),
        ];
        (None, data)
    }
}
