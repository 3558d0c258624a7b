//! What `outlake check` asks Graph, with typed answers: one mailbox to try the streams on, and
//! the first page of each stream's delta query (for `calendars`, of its listing) for it.
//!
//! Contract:
//! - Requests go through the same client as a sync (headers, limiter, retries, classification);
//!   the command builds the source with `page_size = 1`, so every check reads one item.
//! - Finding a mailbox: `/me` for delegated sign-in ([`RequestKind::Me`]); the first listed
//!   entry for a list ([`RequestKind::Resolve`]); otherwise one page of `/users` (20 users) and
//!   their inboxes, in order, until one has a mailbox (users without one are passed over; any
//!   other refusal is the answer).
//! - Folder scope ([`GraphSource::check_folders`]): the mailbox's whole folder tree and the
//!   well-known folders the patterns name, for the command to apply the scope to.
//! - A failure carries a [`Refusal`]: what the operator has to fix, decided from the HTTP
//!   status, Graph's error code, the error kind and whether Graph answered at all
//!   ([`Refusal::Unreachable`]), never from message text. The command turns it into words.

use std::collections::HashMap;

use outlake_pipeline::model::{Mailbox, Stream};
use outlake_pipeline::scope::{FolderNode, FolderScope};
use outlake_pipeline::source::{SourceError, SourceErrorKind};
use reqwest::StatusCode;
use serde_json::Value;

use super::client::{Answer, Failure, RequestSpec};
use super::options::MailboxSelection;
use super::retry::RequestKind;
use super::source::{DIRECTORY_KEY, GraphSource};
use super::urls;
use super::wire::UsersPage;

/// The permission that lets an app list and read users (`/users`, `/users/{id}`).
pub const DIRECTORY_PERMISSION: &str = "User.Read.All";

/// Users of the directory's first page that `check` tries.
const USERS_TRIED: u32 = 20;

/// The Graph permission a stream's delta query needs (the application and the delegated
/// permission have the same name).
pub fn stream_permission(stream: Stream) -> &'static str {
    match stream {
        Stream::MailFolders | Stream::Messages => "Mail.Read",
        Stream::Events | Stream::Calendars => "Calendars.Read",
        // The mailboxes table is read from the user listing.
        Stream::Mailboxes => "User.Read.All",
    }
}

/// The mailbox the checks try the streams on, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckMailbox {
    /// The signed-in user (`/me`).
    Me(Mailbox),
    /// The first entry of the configured list, resolved.
    Listed { entry: String, listed: usize, mailbox: Mailbox },
    /// The first user of the directory that has a mailbox.
    Discovered(Mailbox),
    /// None of the first `tried` users of the directory has a mailbox.
    NoneFound { tried: usize },
}

/// What the operator has to fix after a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The identity platform refused the credentials, or Graph refused the token.
    Credentials,
    /// A permission is missing (HTTP 403, or a denial code).
    Permission,
    /// An Exchange application access policy blocks the mailbox.
    AccessPolicy,
    /// The user has no Exchange Online mailbox.
    NoMailbox,
    /// Graph could not be reached (connection refused, DNS, TLS, timeout): the network or
    /// `graph_url`, not a permission.
    Unreachable,
    /// Anything else: Graph unreachable, 5xx after retries, an unexpected answer.
    Other,
}

/// A failed check: the error as a sync would report it, and what to fix.
#[derive(Debug, Clone)]
pub struct CheckError {
    pub refusal: Refusal,
    pub error: SourceError,
}

/// Graph codes that mean "not allowed", whatever the status.
const DENIAL_CODES: &[&str] = &["ErrorAccessDenied", "Authorization_RequestDenied", "AccessDenied"];

impl From<Failure> for CheckError {
    fn from(f: Failure) -> Self {
        CheckError { refusal: refusal(&f), error: f.error }
    }
}

impl From<SourceError> for CheckError {
    fn from(error: SourceError) -> Self {
        Failure { error, answer: None }.into()
    }
}

/// The decision table of [`Refusal`].
fn refusal(f: &Failure) -> Refusal {
    let e = &f.error;
    let code_denies = e.code.as_deref().is_some_and(|c| DENIAL_CODES.iter().any(|d| d.eq_ignore_ascii_case(c)));
    if matches!(f.answer, Some(Answer::Unreachable)) {
        return Refusal::Unreachable;
    }
    let denied = code_denies || f.answer.as_ref().is_some_and(|a| a.status() == Some(StatusCode::FORBIDDEN));
    if e.kind == SourceErrorKind::Auth && !denied {
        return Refusal::Credentials;
    }
    if denied {
        return match &f.answer {
            Some(Answer::Status { error, .. }) if error.is_access_policy() => Refusal::AccessPolicy,
            _ => Refusal::Permission,
        };
    }
    match e.kind {
        SourceErrorKind::NoMailbox => Refusal::NoMailbox,
        _ => Refusal::Other,
    }
}

impl GraphSource {
    /// Get an access token now, so credential problems show before any Graph call.
    pub async fn check_token(&self) -> Result<(), CheckError> {
        self.client.tokens().token().await.map(|_| ()).map_err(CheckError::from)
    }

    /// A mailbox to try the streams on (module contract).
    pub async fn check_mailbox(&self) -> Result<CheckMailbox, CheckError> {
        let g = &self.opts.graph_url;
        match &self.opts.mailboxes {
            MailboxSelection::Me => {
                let mut mb = self.fetch_user(urls::me(g), DIRECTORY_KEY, RequestKind::Me).await?;
                mb.via_me = true;
                Ok(CheckMailbox::Me(mb))
            }
            MailboxSelection::List(list) => {
                let entry = list.first().cloned().unwrap_or_default();
                let mailbox = self.fetch_user(urls::resolve_user(g, &entry), DIRECTORY_KEY, RequestKind::Resolve).await?;
                Ok(CheckMailbox::Listed { entry, listed: list.len(), mailbox })
            }
            MailboxSelection::All => {
                let spec = RequestSpec { url: urls::users_first_page(g, USERS_TRIED), kind: RequestKind::Users, mailbox_key: DIRECTORY_KEY, discovered: true };
                let users = self
                    .client
                    .fetch(&spec, |body| {
                        let page: UsersPage<'_> = serde_json::from_slice(body).map_err(super::source::json_error)?;
                        Ok(page
                            .value
                            .iter()
                            .filter_map(|u| {
                                Some(Mailbox {
                                    id: u.id.as_deref()?.to_string(),
                                    upn: u.user_principal_name.as_deref().map(str::to_string),
                                    ..Mailbox::default()
                                })
                            })
                            .collect::<Vec<_>>())
                    })
                    .await?;
                let tried = users.len();
                for user in users {
                    let spec = RequestSpec { url: urls::probe_inbox(g, &user.id), kind: RequestKind::Probe, mailbox_key: &user.id, discovered: true };
                    match self.client.fetch(&spec, |_| Ok(())).await {
                        Ok(()) => return Ok(CheckMailbox::Discovered(user)),
                        Err(f) if f.error.kind == SourceErrorKind::NoMailbox => continue,
                        Err(f) => return Err(f.into()),
                    }
                }
                Ok(CheckMailbox::NoneFound { tried })
            }
        }
    }

    /// The first page of `stream`'s delta query for `mailbox` (messages: the inbox's, ids
    /// only; events: the default calendar's; calendars: the first page of the listing); the
    /// number of items it held.
    pub async fn check_stream(&self, mailbox: &Mailbox, stream: Stream) -> Result<usize, CheckError> {
        let g = &self.opts.graph_url;
        let (url, kind) = match stream {
            Stream::MailFolders => (urls::folder_delta(g, mailbox), RequestKind::FolderDelta),
            Stream::Messages => {
                let mut url = urls::message_delta(g, mailbox, "inbox", false);
                url.set_query(Some("$select=id"));
                (url, RequestKind::MessageDelta)
            }
            Stream::Events => (urls::event_delta(g, mailbox, None, self.opts.calendar_start, self.opts.calendar_end), RequestKind::EventDelta),
            Stream::Calendars => (urls::calendars(g, mailbox), RequestKind::Calendars),
            Stream::Mailboxes => (urls::resolve_user(g, &mailbox.id), RequestKind::Resolve),
        };
        let page = self.fetch_json(url, kind, &mailbox.id).await?;
        Ok(page.get("value").and_then(Value::as_array).map_or(0, Vec::len))
    }

    /// The folder tree of `mailbox` (a whole `mailFolders/delta` round, as
    /// [`GraphSource::folder_counts`] reads it) and the ids of the well-known folders `scope`'s
    /// patterns start with: what a sync applies the folder scope to
    /// ([`FolderScope::select`]).
    pub async fn check_folders(&self, mailbox: &Mailbox, scope: &FolderScope) -> Result<(Vec<FolderNode>, HashMap<String, String>), CheckError> {
        let folders = self.folder_counts(mailbox).await?.folders.into_iter().map(|(node, _)| node).collect();
        let well_known = scope.resolve_well_known(self, mailbox).await?;
        Ok((folders, well_known))
    }

    async fn fetch_user(&self, url: url::Url, key: &str, kind: RequestKind) -> Result<Mailbox, Failure> {
        let spec = RequestSpec { url, kind, mailbox_key: key, discovered: false };
        self.client.fetch(&spec, super::source::user_of).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::errors::GraphError;

    fn graph(status: u16, kind: SourceErrorKind, body: &str) -> Failure {
        let error = GraphError::parse(body.as_bytes());
        Failure {
            error: SourceError::new(kind, error.code.clone(), "m"),
            answer: Some(Answer::Status { status: StatusCode::from_u16(status).unwrap(), error }),
        }
    }

    fn body(code: &str, message: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#)
    }

    #[test]
    fn refusal_table() {
        use Refusal::*;
        use SourceErrorKind as K;
        let token = |code: &str| Failure { error: SourceError::new(K::Auth, Some(code.into()), "token endpoint refused"), answer: None };
        assert_eq!(refusal(&token("AADSTS7000215")), Credentials);
        assert_eq!(refusal(&token("invalid_client")), Credentials);
        assert_eq!(refusal(&graph(401, K::Auth, &body("InvalidAuthenticationToken", "m"))), Credentials);
        assert_eq!(refusal(&graph(400, K::Auth, &body("BadRequest", "m"))), Credentials, "/me with an app-only token");
        assert_eq!(refusal(&graph(403, K::Auth, &body("Authorization_RequestDenied", "m"))), Permission, "listing users");
        assert_eq!(refusal(&graph(403, K::Mailbox, &body("ErrorAccessDenied", "Access is denied."))), Permission);
        assert_eq!(refusal(&graph(403, K::Mailbox, &body("ErrorQuotaExceeded", "m"))), Permission, "any 403");
        assert_eq!(
            refusal(&graph(
                403,
                K::Mailbox,
                &body("ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.")
            )),
            AccessPolicy
        );
        assert_eq!(refusal(&graph(404, K::NoMailbox, &body("MailboxNotEnabledForRESTAPI", "m"))), NoMailbox);
        assert_eq!(refusal(&graph(404, K::Mailbox, &body("Request_ResourceNotFound", "m"))), Other);
        assert_eq!(refusal(&graph(503, K::Partition, "")), Other);
        // Message text never decides: a "403" in a URL or a port is not a refusal.
        let e = Failure { error: SourceError::new(K::Partition, None, "GET http://127.0.0.1:40312/v1.0/users: gave up after 3 attempts"), answer: None };
        assert_eq!(refusal(&e), Other);
        // No answer at all: the network, whatever the error's kind.
        let e = Failure { error: SourceError::new(K::Partition, None, "gave up"), answer: Some(Answer::Unreachable) };
        assert_eq!(refusal(&e), Unreachable);
    }

    #[test]
    fn stream_permissions() {
        assert_eq!(stream_permission(Stream::MailFolders), "Mail.Read");
        assert_eq!(stream_permission(Stream::Messages), "Mail.Read");
        assert_eq!(stream_permission(Stream::Events), "Calendars.Read");
        assert_eq!(stream_permission(Stream::Calendars), "Calendars.Read");
    }
}
