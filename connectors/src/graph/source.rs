//! [`GraphSource`]: the Microsoft Graph implementation of `outlake_pipeline::source::Source`.
//!
//! Contract:
//! - `mailboxes`: `All` pages `/users` and probes each user's inbox; users without a mailbox
//!   (404 `MailboxNotEnabledForRESTAPI` / `ErrorInvalidUser` / `ResourceNotFound`) go to
//!   `skipped`. `List` resolves each entry with `/users/{x}` (ids are kept, UPNs become ids);
//!   entries with glob characters select users of `/users` by id or UPN (case-insensitive),
//!   probed and skipped like `All`.
//!   A listed entry that cannot be resolved for a reason of its own (a 4xx other than a
//!   directory refusal, e.g. 400 `BadRequest` or 404 `Request_ResourceNotFound`, which
//!   [`super::retry`] classifies `SourceErrorKind::Mailbox`) fails alone: it goes to
//!   `MailboxListing::failed`, the runner reports that mailbox failed and syncs the others.
//!   Errors that stop the run (credentials, the directory refused) still stop it.
//!   `Me` resolves `/me` and marks the mailbox `via_me`.
//! - `fetch_page`: `PageRequest::Initial` builds the partition's first-round URL
//!   (mail folders → `mailFolders/delta`; messages → the folder's `messages/delta` with
//!   `$select`; events → `calendarView/delta` with the configured window); `PageRequest::Link`
//!   follows the stored link after checking it points at `graph_url`. The page must carry
//!   exactly one of nextLink / deltaLink.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use futures::StreamExt;
use outlake_pipeline::limiter::Limiter;
use outlake_pipeline::model::{Cursor, Mailbox, Page, PageRequest, PartitionKey, Stream};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{MailboxListing, RequestStats, Source, SourceError, SourceErrorKind};

use super::auth::TokenProvider;
use super::client::{BodyError, ClientSettings, Failure, GraphClient, RequestSpec};
use super::normalize::{self, NormalizeContext, NormalizeErrorKind};
use super::options::{GraphOptions, MailboxSelection};
use super::retry::RequestKind;
use super::urls;
use super::wire::{User, UsersPage};

/// Counters for requests that belong to no mailbox (directory listing).
pub(super) const DIRECTORY_KEY: &str = "(directory)";

pub struct GraphSource {
    pub(super) opts: GraphOptions,
    pub(super) client: GraphClient,
}

/// Whether a discovered user has a mailbox.
enum Probe {
    Mailbox,
    /// No mailbox, with Graph's code (or message) as the reason.
    NoMailbox(String),
}

impl GraphSource {
    /// Validate the endpoints and build the HTTP client, token provider and limiter.
    pub fn new(opts: GraphOptions) -> Result<Self, SourceError> {
        let limiter = Arc::new(Limiter::new(opts.limiter_config()));
        Self::with_limiter(opts, limiter)
    }

    /// Like [`GraphSource::new`], sharing a limiter the caller owns.
    pub fn with_limiter(opts: GraphOptions, limiter: Arc<Limiter>) -> Result<Self, SourceError> {
        urls::validate_base(&opts.graph_url, "graph_url")?;
        urls::validate_base(&opts.authority_url, "authority_url")?;
        if opts.page_size == 0 {
            return Err(SourceError::new(SourceErrorKind::Fatal, None, "page_size must be at least 1"));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true)
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(std::time::Duration::from_secs(30)))
            .user_agent(concat!("outlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::new(SourceErrorKind::Fatal, None, format!("could not build the HTTP client: {e}")))?;
        let tokens = TokenProvider::new(&opts, http.clone())?;
        let settings = ClientSettings {
            page_size: opts.page_size,
            retry_max_attempts: opts.retry_max_attempts.max(1),
            retry_max_wait: opts.retry_max_wait,
            retry_max_total: opts.retry_max_total,
            max_page_bytes: opts.max_page_bytes,
        };
        Ok(GraphSource { client: GraphClient::new(http, tokens, limiter, settings), opts })
    }

    pub fn options(&self) -> &GraphOptions {
        &self.opts
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        self.client.limiter()
    }

    /// Token-endpoint requests made so far (app-only auth).
    pub fn token_requests(&self) -> u64 {
        self.client.tokens().token_requests()
    }

    /// One GET outside a delta round (well-known folders, operator checks, estimates): the JSON
    /// body of a 2xx answer, with the same headers, limiter, retries and error classification
    /// as every other request. The URL must point at `graph_url`.
    pub(super) async fn get_json(&self, url: url::Url, kind: RequestKind, mailbox_key: &str) -> Result<serde_json::Value, SourceError> {
        self.fetch_json(url, kind, mailbox_key).await.map_err(|f| f.error)
    }

    /// [`GraphSource::get_json`], keeping Graph's answer when the request failed.
    pub(super) async fn fetch_json(&self, url: url::Url, kind: RequestKind, mailbox_key: &str) -> Result<serde_json::Value, Failure> {
        let url = urls::validate_link(url.as_str(), &self.opts.graph_url).map_err(|error| Failure { error, answer: None })?;
        let spec = RequestSpec { url, kind, mailbox_key, discovered: false };
        self.client.fetch(&spec, |body| serde_json::from_slice(body).map_err(|e| BodyError::Retry(format!("response body is not valid JSON: {e}")))).await
    }

    fn discovered(&self) -> bool {
        self.opts.mailboxes == MailboxSelection::All
    }

    async fn get_user(&self, url: url::Url, key: &str, kind: RequestKind) -> Result<Mailbox, SourceError> {
        let spec = RequestSpec { url, kind, mailbox_key: key, discovered: false };
        self.client.get(&spec, user_of).await
    }

    async fn list_users(&self) -> Result<Vec<Mailbox>, SourceError> {
        let mut out = Vec::new();
        let mut url = urls::users(&self.opts.graph_url);
        loop {
            let spec = RequestSpec { url, kind: RequestKind::Users, mailbox_key: DIRECTORY_KEY, discovered: true };
            let (users, next) = self
                .client
                .get(&spec, |body| {
                    let page: UsersPage<'_> = serde_json::from_slice(body).map_err(json_error)?;
                    let users: Vec<Mailbox> = page
                        .value
                        .iter()
                        .filter_map(|u| {
                            Some(Mailbox { id: u.id.as_deref()?.to_string(), upn: u.user_principal_name.as_deref().map(str::to_string), via_me: false })
                        })
                        .collect();
                    Ok((users, page.next_link))
                })
                .await?;
            out.extend(users);
            match next {
                Some(link) => url = urls::validate_link(&link, &self.opts.graph_url)?,
                None => return Ok(out),
            }
        }
    }

    /// Probe users (a few at a time) and split them into mailboxes and users without one.
    async fn probe_all(&self, users: Vec<Mailbox>) -> Result<MailboxListing, SourceError> {
        let concurrency = (self.opts.max_in_flight_total as usize).clamp(1, 16);
        let probed: Vec<(Mailbox, Result<Probe, SourceError>)> = futures::stream::iter(users)
            .map(|u| async move {
                let r = self.probe(&u).await;
                (u, r)
            })
            .buffered(concurrency)
            .collect()
            .await;
        let mut listing = MailboxListing::default();
        for (user, r) in probed {
            match r? {
                Probe::Mailbox => listing.mailboxes.push(user),
                Probe::NoMailbox(reason) => listing.skipped.push((user.label().to_string(), format!("no mailbox ({reason})"))),
            }
        }
        Ok(listing)
    }

    /// Whether a discovered user has a mailbox.
    async fn probe(&self, user: &Mailbox) -> Result<Probe, SourceError> {
        let spec = RequestSpec { url: urls::probe_inbox(&self.opts.graph_url, &user.id), kind: RequestKind::Probe, mailbox_key: &user.id, discovered: true };
        match self.client.get(&spec, |_| Ok(())).await {
            Ok(()) => Ok(Probe::Mailbox),
            Err(e) if e.kind == SourceErrorKind::NoMailbox => Ok(Probe::NoMailbox(e.code.unwrap_or(e.message))),
            // A refused mailbox (access policy, quota) is listed: it fails later with its reason.
            Err(e) if e.kind == SourceErrorKind::Mailbox => Ok(Probe::Mailbox),
            Err(e) => Err(e),
        }
    }
}

/// The mailbox of a user from `/users/{x}` or `/me`.
pub(super) fn user_of(body: &[u8]) -> Result<Mailbox, BodyError> {
    let user: User<'_> = serde_json::from_slice(body).map_err(json_error)?;
    let id = user.id.as_deref().ok_or_else(|| BodyError::Fail(SourceError::new(SourceErrorKind::Fatal, None, "user has no `id` in Graph's answer")))?;
    Ok(Mailbox { id: id.to_string(), upn: user.user_principal_name.as_deref().map(str::to_string), via_me: false })
}

pub(super) fn json_error(e: serde_json::Error) -> BodyError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => BodyError::Fail(SourceError::new(SourceErrorKind::Fatal, None, format!("Graph's answer about users is not what was expected: {e}"))),
        _ => BodyError::Retry(format!("response body is truncated or not valid JSON: {e}")),
    }
}

#[async_trait]
impl Source for GraphSource {
    async fn mailboxes(&self) -> Result<MailboxListing, SourceError> {
        match &self.opts.mailboxes {
            MailboxSelection::Me => {
                let mut me = self.get_user(urls::me(&self.opts.graph_url), DIRECTORY_KEY, RequestKind::Me).await?;
                me.via_me = true;
                Ok(MailboxListing { mailboxes: vec![me], ..MailboxListing::default() })
            }
            MailboxSelection::List(entries) => {
                // Ids and UPNs are resolved one by one; glob entries select from the directory
                // (like "all", users without a mailbox are skipped).
                let (globs, literals): (Vec<&String>, Vec<&String>) = entries.iter().partition(|e| outlake_config::is_glob(e));
                let mut listing = MailboxListing::default();
                let mut seen = HashSet::new();
                for entry in literals {
                    let url = urls::resolve_user(&self.opts.graph_url, entry);
                    let mb = match self.get_user(url, DIRECTORY_KEY, RequestKind::Resolve).await {
                        Ok(mb) => mb,
                        Err(e) => {
                            let e = SourceError::new(e.kind, e.code, format!("mailbox `{entry}` listed in the config could not be resolved: {}", e.message));
                            if !matches!(e.kind, SourceErrorKind::Mailbox | SourceErrorKind::NoMailbox) {
                                return Err(e);
                            }
                            // This entry fails alone (module contract).
                            tracing::warn!(mailbox = %entry, error = %e.message, "listed mailbox could not be resolved");
                            listing.failed.push((entry.clone(), SourceError { kind: SourceErrorKind::Mailbox, ..e }));
                            continue;
                        }
                    };
                    if seen.insert(mb.id.clone()) {
                        listing.mailboxes.push(mb);
                    }
                }
                if !globs.is_empty() {
                    let patterns: Vec<glob::Pattern> = globs.iter().filter_map(|g| glob::Pattern::new(g).ok()).collect();
                    let opts = glob::MatchOptions { case_sensitive: false, ..Default::default() };
                    let users: Vec<Mailbox> = self
                        .list_users()
                        .await?
                        .into_iter()
                        .filter(|u| !seen.contains(&u.id))
                        .filter(|u| patterns.iter().any(|p| p.matches_with(&u.id, opts) || u.upn.as_deref().is_some_and(|n| p.matches_with(n, opts))))
                        .collect();
                    let found = self.probe_all(users).await?;
                    listing.mailboxes.extend(found.mailboxes);
                    listing.skipped.extend(found.skipped);
                }
                Ok(listing)
            }
            MailboxSelection::All => {
                let users = self.list_users().await?;
                self.probe_all(users).await
            }
        }
    }

    async fn fetch_page(&self, mailbox: &Mailbox, partition: &PartitionKey, request: &PageRequest, seq: &SeqGen, run_id: &str) -> Result<Page, SourceError> {
        let g = &self.opts.graph_url;
        let stream = partition.stream;
        let folder = partition.folder_id.as_deref();
        let url = match request {
            PageRequest::Link(cursor) => {
                urls::validate_link(cursor.url(), g).map_err(|e| SourceError::new(e.kind, e.code.clone(), format!("{partition}: {}", e.message)))?
            }
            PageRequest::Initial => match stream {
                Stream::MailFolders => urls::folder_delta(g, mailbox),
                Stream::Events => urls::event_delta(g, mailbox, self.opts.calendar_start, self.opts.calendar_end),
                Stream::Messages => {
                    let folder =
                        folder.ok_or_else(|| SourceError::new(SourceErrorKind::Fatal, None, format!("{partition}: a messages partition needs a folder id")))?;
                    urls::message_delta(g, mailbox, folder, self.opts.fetch_bodies)
                }
            },
        };
        let kind = match stream {
            Stream::MailFolders => RequestKind::FolderDelta,
            Stream::Messages => RequestKind::MessageDelta,
            Stream::Events => RequestKind::EventDelta,
        };
        let ctx = NormalizeContext {
            mailbox_id: mailbox.id.clone(),
            folder_id: partition.folder_id.clone(),
            extracted_at: chrono::Utc::now(),
            run_id: run_id.to_string(),
            fetch_bodies: self.opts.fetch_bodies,
        };
        let spec = RequestSpec { url, kind, mailbox_key: &mailbox.id, discovered: self.discovered() };
        let (page, bytes) = self
            .client
            .get(&spec, |body| {
                normalize::normalize_page(stream, body, &ctx, seq).map(|p| (p, body.len() as u64)).map_err(|e| match e.kind {
                    NormalizeErrorKind::Syntax => BodyError::Retry(e.message),
                    NormalizeErrorKind::Invalid => BodyError::Fail(SourceError::new(
                        SourceErrorKind::Partition,
                        None,
                        format!(
                            "{partition}: malformed page from Graph: {}; nothing of this page was committed and the next run retries it from the last commit",
                            e.message
                        ),
                    )),
                })
            })
            .await?;
        // A link that leaves graph_url fails the page that carries it, so neither its rows nor
        // the link are committed (a stored bad link would fail every later run as well).
        for link in [&page.next_link, &page.delta_link].into_iter().flatten() {
            urls::validate_link(link, g).map_err(|e| {
                SourceError::new(e.kind, e.code.clone(), format!("{partition}: {}; nothing of the page that carried it was committed", e.message))
            })?;
        }
        let cursor = match (page.next_link, page.delta_link) {
            (Some(next), None) => Cursor::Next(next),
            (None, Some(delta)) => Cursor::Delta(delta),
            (Some(_), Some(_)) => {
                return Err(SourceError::new(SourceErrorKind::Partition, None, format!("{partition}: page has both nextLink and deltaLink")));
            }
            (None, None) => {
                return Err(SourceError::new(SourceErrorKind::Partition, None, format!("{partition}: page has neither nextLink nor deltaLink")));
            }
        };
        Ok(Page { batch: page.batch, cursor, upserted_ids: page.upserted_ids, removed: page.removed, malformed_items: page.malformed_items, bytes })
    }

    async fn well_known_folder(&self, mailbox: &Mailbox, name: &str) -> Result<Option<String>, SourceError> {
        let url = urls::well_known_folder(&self.opts.graph_url, mailbox, name);
        match self.get_json(url, RequestKind::Folder, &mailbox.id).await {
            Ok(v) => Ok(v.get("id").and_then(serde_json::Value::as_str).map(str::to_string)),
            Err(e) if e.kind == SourceErrorKind::FolderGone => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete_rows(&self, partition: &PartitionKey, ids: &[String], seq: &SeqGen, run_id: &str) -> RecordBatch {
        let ctx = NormalizeContext {
            mailbox_id: partition.mailbox_id.clone(),
            folder_id: partition.folder_id.clone(),
            extracted_at: chrono::Utc::now(),
            run_id: run_id.to_string(),
            fetch_bodies: self.opts.fetch_bodies,
        };
        normalize::delete_rows(partition.stream, ids, &ctx, seq)
    }

    fn stats(&self, mailbox_id: &str) -> RequestStats {
        self.client.stats(mailbox_id)
    }
}
