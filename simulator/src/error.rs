//! Errors of the in-process API (mutations, admin calls).

/// Why a mutation or admin call was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown mailbox {0:?} (give a user id or userPrincipalName of a user with a mailbox)")]
    UnknownMailbox(String),
    #[error("mailbox {mailbox:?} has no folder {folder:?} (give a folder id or a well-known name)")]
    UnknownFolder { mailbox: String, folder: String },
    #[error("mailbox {mailbox:?} has no message with immutable id {id:?}")]
    UnknownMessage { mailbox: String, id: String },
    #[error("mailbox {mailbox:?} has no event with id {id:?}")]
    UnknownEvent { mailbox: String, id: String },
    #[error("mailbox {mailbox:?} has no calendar {calendar:?} (give a calendar id)")]
    UnknownCalendar { mailbox: String, calendar: String },
    #[error("invalid mutation: {0}")]
    Invalid(String),
}
