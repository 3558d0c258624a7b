//! outlake's Microsoft Graph source: auth, HTTP client, retry classification, delta paging and
//! Graph JSON → Arrow normalization. Implements `outlake_pipeline::source::Source`.
//!
//! The public surface is what the binary, its tests and its benches need:
//! - [`GraphSource`] (the `Source`) and its options ([`GraphOptions`], [`AuthMode`],
//!   [`DelegatedTokens`], [`MailboxSelection`]);
//! - the operator commands' requests, with typed answers: `outlake check`
//!   ([`GraphSource::check_token`], [`GraphSource::check_mailbox`],
//!   [`GraphSource::check_stream`] → [`CheckMailbox`], [`CheckError`] / [`Refusal`]) and
//!   `outlake estimate` ([`GraphSource::folder_counts`] → [`FolderCounts`],
//!   [`GraphSource::calendar_list`] → `CalendarInfo`s);
//! - the normalize entry point ([`normalize_page`]) and the tables' [`schema`] (with
//!   [`CALENDAR_ID`], the events key column naming the calendar), for benches and the fuzz
//!   test; [`MESSAGE_SELECT`], the message properties requested;
//! - [`OAuthHttp`], the `oauth2` HTTP adapter the binary's sign-in flows share.
//!
//! The HTTP client, retry classification, URLs, wire types and normalize internals are private.

mod graph;

pub use graph::check::{CheckError, CheckMailbox, DIRECTORY_PERMISSION, Refusal, stream_permission};
pub use graph::estimate::FolderCounts;
pub use graph::normalize::{NormalizeContext, NormalizeError, NormalizeErrorKind, NormalizedPage, normalize_page};
pub use graph::oauth_http::{OAuthHttp, OAuthHttpError};
pub use graph::options::{AuthMode, DelegatedTokens, GraphOptions, MailboxSelection};
pub use graph::schema::{CALENDAR_ID, schema};
pub use graph::source::GraphSource;
pub use graph::urls::MESSAGE_SELECT;
