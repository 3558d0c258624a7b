//! [`GraphSource`]: the Microsoft Graph implementation of `outlake_pipeline::source::Source`.
//!
//! Contract:
//! - `mailboxes` / `mailboxes_known`: the directory listing, configured entries and probes
//!   ([`super::directory`]).
//! - `calendars`: `GET /users/{id}/calendars?$top=100` (`/me/calendars` for a `via_me`
//!   mailbox), following `@odata.nextLink` (checked like every link) to the end of the listing
//!   ([`RequestKind::Calendars`]: classified like any mailbox-level read). Each page is
//!   normalized into `calendars` rows as it arrives (`_seq` in listing order); a calendar id
//!   listed twice keeps its first row. `CalendarInfo`s and rows are in the same order. A
//!   listing longer than [`MAX_CALENDAR_PAGES`] pages fails as `Partition`.
//! - `fetch_page` / `fetch_page_metered`: `PageRequest::Initial` builds the partition's first-round URL
//!   (mail folders → `mailFolders/delta`; messages → the folder's `messages/delta` with
//!   `$select`; events → `calendars/{calendar id}/calendarView/delta` with the configured
//!   window, or the default calendar's `calendarView/delta` for the legacy partition without a
//!   calendar id); `PageRequest::Link` follows the stored link after checking it points at
//!   `graph_url`. The page must carry exactly one of nextLink / deltaLink. `calendars` is a
//!   listing, never fetched with `fetch_page` (a `Fatal` error). A 404 `ErrorItemNotFound` on a
//!   calendar's delta is `FolderGone` (the calendar was deleted; the runner retires its
//!   partition); on the legacy partition, whose default calendar cannot be deleted, it is a
//!   `Partition` error instead.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use async_trait::async_trait;
use outlake_pipeline::budget::PageLease;
use outlake_pipeline::limiter::Limiter;
use outlake_pipeline::model::{Cursor, Mailbox, Page, PageRequest, PartitionKey, Stream};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::{CalendarInfo, CalendarListing, MailboxListing, RequestStats, Source, SourceError, SourceErrorKind};

use super::auth::TokenProvider;
use super::client::{BodyError, ClientSettings, Failure, GraphClient, RequestSpec};
use super::directory::Probes;
use super::normalize::{self, NormalizeContext, NormalizeErrorKind};
use super::options::{GraphOptions, MailboxSelection};
use super::retry::RequestKind;
use super::urls;

pub(super) use super::directory::{DIRECTORY_KEY, json_error, user_of};

/// Calendars listing pages after which the listing is taken not to end.
pub const MAX_CALENDAR_PAGES: usize = 1_000;

pub struct GraphSource {
    pub(super) opts: GraphOptions,
    pub(super) client: GraphClient,
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
            .user_agent(opts.user_agent())
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

    /// One page of a partition's round (`Source::fetch_page`), accounted in `memory` when given.
    async fn page(
        &self,
        mailbox: &Mailbox,
        partition: &PartitionKey,
        request: &PageRequest,
        seq: &SeqGen,
        run_id: &str,
        memory: Option<&PageLease>,
    ) -> Result<Page, SourceError> {
        let g = &self.opts.graph_url;
        let stream = partition.stream;
        let folder = partition.folder_id.as_deref();
        let url = match request {
            PageRequest::Link(cursor) => {
                urls::validate_link(cursor.url(), g).map_err(|e| SourceError::new(e.kind, e.code.clone(), format!("{partition}: {}", e.message)))?
            }
            PageRequest::Initial => match stream {
                Stream::MailFolders => urls::folder_delta(g, mailbox),
                Stream::Events => urls::event_delta(g, mailbox, folder, self.opts.calendar_start, self.opts.calendar_end),
                Stream::Calendars | Stream::Mailboxes => return Err(calendars_not_paged(partition)),
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
            Stream::Calendars | Stream::Mailboxes => return Err(calendars_not_paged(partition)),
        };
        let ctx = self.context(&mailbox.id, partition.folder_id.clone(), run_id);
        let spec = RequestSpec { url, kind, mailbox_key: &mailbox.id, discovered: self.discovered() };
        let normalized = |body: &[u8]| {
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
        };
        let fetched = match memory {
            Some(m) => self.client.get_metered(&spec, m, normalized).await,
            None => self.client.get(&spec, normalized).await,
        };
        let (page, bytes) = fetched.map_err(|e| legacy_events_not_gone(partition, e))?;
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

    fn discovered(&self) -> bool {
        self.opts.mailboxes == MailboxSelection::All
    }
}

impl GraphSource {
    fn context(&self, mailbox_id: &str, folder_id: Option<String>, run_id: &str) -> NormalizeContext {
        NormalizeContext {
            mailbox_id: mailbox_id.to_string(),
            folder_id,
            extracted_at: chrono::Utc::now(),
            run_id: run_id.to_string(),
            fetch_bodies: self.opts.fetch_bodies,
        }
    }

    /// A mailbox's calendars listing, followed to its end (module contract).
    pub(super) async fn list_calendars(&self, mailbox: &Mailbox, seq: &SeqGen, run_id: &str) -> Result<CalendarListing, SourceError> {
        let g = &self.opts.graph_url;
        let ctx = self.context(&mailbox.id, None, run_id);
        let label = mailbox.label();
        let mut url = urls::calendars(g, mailbox);
        let mut batches = Vec::new();
        for _ in 0..MAX_CALENDAR_PAGES {
            let spec = RequestSpec { url, kind: RequestKind::Calendars, mailbox_key: &mailbox.id, discovered: self.discovered() };
            let page = self
                .client
                .get(&spec, |body| {
                    normalize::normalize_page(Stream::Calendars, body, &ctx, seq).map_err(|e| match e.kind {
                        NormalizeErrorKind::Syntax => BodyError::Retry(e.message),
                        NormalizeErrorKind::Invalid => BodyError::Fail(SourceError::new(
                            SourceErrorKind::Partition,
                            None,
                            format!("{label}: malformed calendars listing from Graph: {}; the calendars and their events were not synced", e.message),
                        )),
                    })
                })
                .await?;
            batches.push(page.batch);
            match page.next_link {
                Some(next) => {
                    url = urls::validate_link(&next, g)
                        .map_err(|e| SourceError::new(e.kind, e.code.clone(), format!("{label}: calendars listing: {}", e.message)))?;
                }
                None => return listing_of(&batches),
            }
        }
        Err(SourceError::new(SourceErrorKind::Partition, None, format!("{label}: the calendars listing did not end after {MAX_CALENDAR_PAGES} pages")))
    }
}

/// The listing's pages as one batch and its `CalendarInfo`s, in order, first row of each id.
fn listing_of(batches: &[RecordBatch]) -> Result<CalendarListing, SourceError> {
    let internal = |e: arrow::error::ArrowError| SourceError::new(SourceErrorKind::Fatal, None, format!("assembling the calendars listing: {e}"));
    let batch = arrow::compute::concat_batches(&super::schema::schema(Stream::Calendars), batches).map_err(internal)?;
    let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("calendars schema has `{name}`"));
    let (ids, names, owners, keys) =
        (col("id").as_string::<i32>(), col("name").as_string::<i32>(), col("owner_address").as_string::<i32>(), col("change_key").as_string::<i32>());
    let default = col("is_default_calendar").as_boolean();
    let opt = |a: &arrow::array::StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
    let mut seen = HashSet::new();
    let mut keep = Vec::with_capacity(batch.num_rows());
    let mut calendars = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let first = seen.insert(ids.value(i));
        keep.push(first);
        if first {
            calendars.push(CalendarInfo {
                id: ids.value(i).to_string(),
                name: opt(names, i).unwrap_or_default(),
                owner_address: opt(owners, i),
                is_default: default.is_valid(i) && default.value(i),
                change_key: opt(keys, i),
            });
        }
    }
    let batch = if calendars.len() == batch.num_rows() {
        batch.clone()
    } else {
        tracing::warn!(listed = batch.num_rows(), distinct = calendars.len(), "the calendars listing named a calendar more than once; keeping the first");
        arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(internal)?
    };
    Ok(CalendarListing { calendars, batch })
}

fn calendars_not_paged(partition: &PartitionKey) -> SourceError {
    SourceError::new(
        SourceErrorKind::Fatal,
        None,
        format!("{partition}: `{}` is a listing without delta (`Source::calendars`, `Source::mailbox_row`), not read with `fetch_page`", partition.stream),
    )
}

/// The legacy events partition follows the default calendar, which cannot be deleted: a
/// "gone" answer there must not retire the partition (module contract).
fn legacy_events_not_gone(partition: &PartitionKey, e: SourceError) -> SourceError {
    if partition.stream == Stream::Events && partition.folder_id.is_none() && e.kind == SourceErrorKind::FolderGone {
        return SourceError { kind: SourceErrorKind::Partition, message: format!("{partition}: {} (the default calendar's delta)", e.message), ..e };
    }
    e
}

#[async_trait]
impl Source for GraphSource {
    async fn mailboxes(&self) -> Result<MailboxListing, SourceError> {
        self.list_mailboxes(Probes { synced: &HashSet::new(), defer: false }).await
    }

    async fn mailboxes_known(&self, synced: &HashSet<String>) -> Result<MailboxListing, SourceError> {
        self.list_mailboxes(Probes { synced, defer: false }).await
    }

    async fn mailboxes_unprobed(&self, synced: &HashSet<String>) -> Result<MailboxListing, SourceError> {
        self.list_mailboxes(Probes { synced, defer: true }).await
    }

    async fn probe_mailbox(&self, mailbox: &Mailbox) -> Result<Option<String>, SourceError> {
        self.probe_user(mailbox).await
    }

    async fn fetch_page(&self, mailbox: &Mailbox, partition: &PartitionKey, request: &PageRequest, seq: &SeqGen, run_id: &str) -> Result<Page, SourceError> {
        self.page(mailbox, partition, request, seq, run_id, None).await
    }

    async fn fetch_page_metered(
        &self,
        mailbox: &Mailbox,
        partition: &PartitionKey,
        request: &PageRequest,
        seq: &SeqGen,
        run_id: &str,
        memory: &PageLease,
    ) -> Result<Page, SourceError> {
        self.page(mailbox, partition, request, seq, run_id, Some(memory)).await
    }

    async fn well_known_folder(&self, mailbox: &Mailbox, name: &str) -> Result<Option<String>, SourceError> {
        let url = urls::well_known_folder(&self.opts.graph_url, mailbox, name);
        match self.get_json(url, RequestKind::Folder, &mailbox.id).await {
            Ok(v) => Ok(v.get("id").and_then(serde_json::Value::as_str).map(str::to_string)),
            Err(e) if e.kind == SourceErrorKind::FolderGone => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn calendars(&self, mailbox: &Mailbox, seq: &SeqGen, run_id: &str) -> Result<CalendarListing, SourceError> {
        self.list_calendars(mailbox, seq, run_id).await
    }

    fn mailbox_row(&self, mailbox: &Mailbox, seq: &SeqGen, run_id: &str) -> RecordBatch {
        let ctx = NormalizeContext {
            mailbox_id: mailbox.id.clone(),
            folder_id: None,
            extracted_at: chrono::Utc::now(),
            run_id: run_id.to_string(),
            fetch_bodies: self.opts.fetch_bodies,
        };
        // The row is normalized from the user as Graph described it, like any listed item.
        let user = serde_json::json!({
            "id": mailbox.id,
            "userPrincipalName": mailbox.upn,
            "mail": mailbox.mail,
            "displayName": mailbox.display_name,
            "accountEnabled": mailbox.account_enabled,
        });
        let body = serde_json::to_vec(&serde_json::json!({ "value": [user] })).expect("a JSON value serializes");
        normalize::normalize_page(Stream::Mailboxes, &body, &ctx, seq).expect("a well-formed single-user page normalizes").batch
    }

    fn delete_rows(&self, partition: &PartitionKey, ids: &[String], seq: &SeqGen, run_id: &str) -> RecordBatch {
        let ctx = self.context(&partition.mailbox_id, partition.folder_id.clone(), run_id);
        normalize::delete_rows(partition.stream, ids, &ctx, seq)
    }

    fn stats(&self, mailbox_id: &str) -> RequestStats {
        self.client.stats(mailbox_id)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use outlake_config::Secret;

    use super::*;

    fn source() -> GraphSource {
        let url = url::Url::parse("http://127.0.0.1:9").unwrap();
        let mut o = GraphOptions::new("tenant", "client", Some(Secret::new("s")));
        o.graph_url = url.clone();
        o.authority_url = url;
        GraphSource::new(o).unwrap()
    }

    fn page(body: &str, seq: &SeqGen) -> RecordBatch {
        let ctx = source().context("mbx", None, "run");
        normalize::normalize_page(Stream::Calendars, body.as_bytes(), &ctx, seq).unwrap().batch
    }

    #[test]
    fn listing_keeps_order_and_the_first_row_of_an_id() {
        let seq = SeqGen::new(0);
        let p1 = page(r#"{"value":[{"id":"a","name":"A","isDefaultCalendar":true,"changeKey":"k","owner":{"address":"me@x"}},{"id":"b"}]}"#, &seq);
        let p2 = page(r#"{"value":[{"id":"a","name":"again"},{"id":"c","name":"C","isDefaultCalendar":false}]}"#, &seq);
        let l = listing_of(&[p1, p2]).unwrap();
        let infos: Vec<(&str, &str, bool)> = l.calendars.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.is_default)).collect();
        assert_eq!(infos, [("a", "A", true), ("b", "", false), ("c", "C", false)]);
        assert_eq!(l.calendars[0].owner_address.as_deref(), Some("me@x"));
        assert_eq!(l.calendars[0].change_key.as_deref(), Some("k"));
        assert_eq!(l.calendars[1].change_key, None);
        assert_eq!(l.batch.num_rows(), 3);
        let ids = l.batch.column_by_name("id").unwrap().as_string::<i32>();
        assert_eq!((ids.value(0), ids.value(1), ids.value(2)), ("a", "b", "c"));
        let seqs = l.batch.column_by_name("_seq").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        assert!(seqs.value(0) < seqs.value(1) && seqs.value(1) < seqs.value(2), "_seq in listing order");
        let empty = listing_of(&[]).unwrap();
        assert!(empty.calendars.is_empty() && empty.batch.num_rows() == 0);
    }

    #[tokio::test]
    async fn calendars_are_not_paged_with_fetch_page() {
        let src = source();
        let mb = Mailbox { id: "mbx".into(), ..Mailbox::default() };
        let part = PartitionKey::new("mbx", Stream::Calendars, None);
        for req in [PageRequest::Initial, PageRequest::Link(Cursor::Next("http://127.0.0.1:9/v1.0/x".into()))] {
            let e = src.fetch_page(&mb, &part, &req, &SeqGen::new(0), "r").await.unwrap_err();
            assert_eq!(e.kind, SourceErrorKind::Fatal, "{e}");
            assert!(e.message.contains("Source::calendars"), "{}", e.message);
        }
        assert_eq!(src.stats("mbx").requests, 0);
    }

    #[test]
    fn a_gone_default_calendar_does_not_retire_the_legacy_partition() {
        let gone = || SourceError::new(SourceErrorKind::FolderGone, Some("ErrorItemNotFound".into()), "gone");
        let legacy = PartitionKey::new("m", Stream::Events, None);
        assert_eq!(legacy_events_not_gone(&legacy, gone()).kind, SourceErrorKind::Partition);
        let calendar = PartitionKey::new("m", Stream::Events, Some("cal".into()));
        assert_eq!(legacy_events_not_gone(&calendar, gone()).kind, SourceErrorKind::FolderGone);
        let folder = PartitionKey::new("m", Stream::Messages, Some("f".into()));
        assert_eq!(legacy_events_not_gone(&folder, gone()).kind, SourceErrorKind::FolderGone);
    }
}
