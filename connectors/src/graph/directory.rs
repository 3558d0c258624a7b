//! Which mailboxes a run syncs: the directory listing, the resolution of configured entries and
//! the probe of discovered users (`Source::mailboxes` / `Source::mailboxes_known` of
//! [`GraphSource`]).
//!
//! Contract:
//! - `All` pages `/users` and probes each user's inbox; users without a mailbox
//!   (404 `MailboxNotEnabledForRESTAPI` / `ErrorInvalidUser` / `ResourceNotFound`) go to
//!   `skipped`. A user whose mailbox already has commits (`synced`) is not probed again: it had
//!   a mailbox when it was first synced, and if it lost it since, its first delta request says so
//!   (the mailbox is then skipped or failed with Graph's answer, as for a refused mailbox).
//! - `List` resolves each entry with `/users/{x}` (ids are kept, UPNs become ids); entries with
//!   glob characters select users of `/users` by id or UPN (case-insensitive), probed and skipped
//!   like `All`. A listed entry that cannot be resolved for a reason of its own (a 4xx other than
//!   a directory refusal, e.g. 400 `BadRequest` or 404 `Request_ResourceNotFound`, which
//!   [`super::retry`] classifies `SourceErrorKind::Mailbox`) fails alone: it goes to
//!   `MailboxListing::failed`. Errors that stop the run (credentials, the directory refused)
//!   still stop it. `Me` resolves `/me` and marks the mailbox `via_me`.
//! - **No hidden caps.** Listing pages are fetched one after the other (each needs the previous
//!   page's nextLink), but the probes of a page's users run while the next page is fetched;
//!   probes and resolutions run up to `max_in_flight_total` at once. Directory requests take only
//!   the global slots (`Limiter::acquire_unkeyed`); a probe counts against its mailbox's limits.
//!   Results keep the directory's (or the configuration's) order.
//! - With `Probes::defer` (`Source::mailboxes_unprobed`, used when mailboxes are leased), no
//!   discovered user is probed while listing: they are listed as mailboxes, their ids in
//!   `MailboxListing::unprobed`, and probed by `Source::probe_mailbox` under the lease.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use outlake_pipeline::model::Mailbox;
use outlake_pipeline::source::{MailboxListing, SourceError, SourceErrorKind};

use super::client::{BodyError, RequestSpec};
use super::options::MailboxSelection;
use super::retry::RequestKind;
use super::source::GraphSource;
use super::urls;
use super::wire::{User, UsersPage};

/// Counters for requests that belong to no mailbox (directory listing).
pub(super) const DIRECTORY_KEY: &str = "(directory)";

/// Whether a discovered user has a mailbox.
enum Probe {
    Mailbox,
    /// No mailbox, with Graph's code (or message) as the reason.
    NoMailbox(String),
    /// Left to `Source::probe_mailbox`.
    Deferred,
}

/// Which discovered users are probed while listing: not those already `synced`, and none when
/// `defer` (they are probed later, one by one, by `Source::probe_mailbox`).
#[derive(Clone, Copy)]
pub(super) struct Probes<'a> {
    pub synced: &'a HashSet<String>,
    pub defer: bool,
}

impl GraphSource {
    /// The configured mailboxes (module contract).
    pub(super) async fn list_mailboxes(&self, probes: Probes<'_>) -> Result<MailboxListing, SourceError> {
        match &self.opts.mailboxes {
            MailboxSelection::Me => {
                let mut me = self.get_user(urls::me(&self.opts.graph_url), RequestKind::Me).await?;
                me.via_me = true;
                Ok(MailboxListing { mailboxes: vec![me], ..MailboxListing::default() })
            }
            MailboxSelection::List(entries) => {
                let (globs, literals): (Vec<&String>, Vec<&String>) = entries.iter().partition(|e| outlake_config::is_glob(e));
                let mut listing = MailboxListing::default();
                let mut seen = HashSet::new();
                let literals = futures::stream::iter(literals.into_iter().cloned().map(Ok));
                let resolved = in_order(literals, self.concurrency(), |entry: String| async move {
                    let resolved = self.get_user(urls::resolve_user(&self.opts.graph_url, &entry), RequestKind::Resolve).await;
                    Ok(Some((entry, resolved)))
                })
                .await?;
                for (entry, resolved) in resolved {
                    let mb = match resolved {
                        Ok(mb) => mb,
                        Err(e) => {
                            let e = SourceError::new(e.kind, e.code, format!("mailbox `{entry}` listed in the config could not be resolved: {}", e.message));
                            if !matches!(e.kind, SourceErrorKind::Mailbox | SourceErrorKind::NoMailbox) {
                                return Err(e);
                            }
                            // This entry fails alone (module contract).
                            tracing::warn!(mailbox = %entry, error = %e.message, "listed mailbox could not be resolved");
                            listing.failed.push((entry, SourceError { kind: SourceErrorKind::Mailbox, ..e }));
                            continue;
                        }
                    };
                    if seen.insert(mb.id.clone()) {
                        listing.mailboxes.push(mb);
                    }
                }
                if !globs.is_empty() {
                    let patterns: Vec<glob::Pattern> = globs.iter().filter_map(|g| glob::Pattern::new(g).ok()).collect();
                    let found = self.discover(Some(Globs { patterns: &patterns, listed: &seen }), probes).await?;
                    listing.mailboxes.extend(found.mailboxes);
                    listing.skipped.extend(found.skipped);
                    listing.unprobed.extend(found.unprobed);
                }
                Ok(listing)
            }
            MailboxSelection::All => self.discover(None, probes).await,
        }
    }

    /// Requests of the listing at once: as many as the limiter lets through.
    fn concurrency(&self) -> usize {
        (self.opts.max_in_flight_total as usize).max(1)
    }

    async fn get_user(&self, url: url::Url, kind: RequestKind) -> Result<Mailbox, SourceError> {
        let spec = RequestSpec { url, kind, mailbox_key: DIRECTORY_KEY, discovered: false };
        self.client.get(&spec, user_of).await
    }

    /// One page of `/users`: its users and the checked nextLink.
    async fn users_page(&self, url: url::Url) -> Result<(Vec<Mailbox>, Option<url::Url>), SourceError> {
        let spec = RequestSpec { url, kind: RequestKind::Users, mailbox_key: DIRECTORY_KEY, discovered: true };
        let (users, next) = self
            .client
            .get(&spec, |body| {
                let page: UsersPage<'_> = serde_json::from_slice(body).map_err(json_error)?;
                let users: Vec<Mailbox> = page.value.iter().filter_map(|u| Some(mailbox_of(u.id.as_deref()?, u))).collect();
                Ok((users, page.next_link))
            })
            .await?;
        let next = next.map(|link| urls::validate_link(&link, &self.opts.graph_url)).transpose()?;
        Ok((users, next))
    }

    /// The directory's users (those `globs` select, when given), probed (unless `synced`) while
    /// the listing goes on, split into mailboxes and users without one.
    async fn discover(&self, globs: Option<Globs<'_>>, probes: Probes<'_>) -> Result<MailboxListing, SourceError> {
        let pages = futures::stream::try_unfold(Some(urls::users(&self.opts.graph_url)), |url| async move {
            match url {
                None => Ok(None),
                Some(url) => {
                    let (users, next) = self.users_page(url).await?;
                    Ok(Some((futures::stream::iter(users.into_iter().map(Ok::<_, SourceError>)), next)))
                }
            }
        });
        // Boxed: the stream's type would otherwise carry the unfold's future, whose lifetimes
        // `async_trait`'s Send check cannot see through.
        let users: futures::stream::BoxStream<'_, Result<Mailbox, SourceError>> = pages.try_flatten().boxed();
        let globs = globs.as_ref();
        let probed = in_order(users, self.concurrency(), |user: Mailbox| async move {
            if globs.is_some_and(|g| !g.select(&user)) {
                return Ok(None);
            }
            let probe = if probes.synced.contains(&user.id) {
                Probe::Mailbox
            } else if probes.defer {
                Probe::Deferred
            } else {
                self.probe(&user).await?
            };
            Ok(Some((user, probe)))
        })
        .await?;
        let mut listing = MailboxListing::default();
        for (user, probe) in probed {
            match probe {
                Probe::Mailbox => listing.mailboxes.push(user),
                Probe::NoMailbox(reason) => listing.skipped.push((user.label().to_string(), format!("no mailbox ({reason})"))),
                Probe::Deferred => {
                    listing.unprobed.insert(user.id.clone());
                    listing.mailboxes.push(user);
                }
            }
        }
        Ok(listing)
    }

    /// `Source::probe_mailbox`: `Some(reason)` when the user has no mailbox.
    pub(super) async fn probe_user(&self, user: &Mailbox) -> Result<Option<String>, SourceError> {
        Ok(match self.probe(user).await? {
            Probe::NoMailbox(reason) => Some(format!("no mailbox ({reason})")),
            Probe::Mailbox | Probe::Deferred => None,
        })
    }

    /// Whether a discovered user has a mailbox.
    async fn probe(&self, user: &Mailbox) -> Result<Probe, SourceError> {
        let spec = RequestSpec { url: urls::probe_inbox(&self.opts.graph_url, &user.id), kind: RequestKind::Probe, mailbox_key: &user.id, discovered: true };
        // A probe succeeds on a readable folder, not on any 200: a truncated body is retried.
        let readable = |body: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(body)
                .map(|_| ())
                .map_err(|e| BodyError::Retry(format!("response body is truncated or not valid JSON: {e}")))
        };
        match self.client.get(&spec, readable).await {
            Ok(()) => Ok(Probe::Mailbox),
            Err(e) if e.kind == SourceErrorKind::NoMailbox => Ok(Probe::NoMailbox(e.code.unwrap_or(e.message))),
            // A refused mailbox (access policy, quota) is listed: it fails later with its reason.
            Err(e) if e.kind == SourceErrorKind::Mailbox => Ok(Probe::Mailbox),
            Err(e) => Err(e),
        }
    }
}

/// Glob entries of a mailbox list: users of the directory they match by id or UPN
/// (case-insensitive), except those listed by id or UPN already.
struct Globs<'a> {
    patterns: &'a [glob::Pattern],
    listed: &'a HashSet<String>,
}

impl Globs<'_> {
    fn select(&self, user: &Mailbox) -> bool {
        let opts = glob::MatchOptions { case_sensitive: false, ..Default::default() };
        !self.listed.contains(&user.id)
            && self.patterns.iter().any(|p| p.matches_with(&user.id, opts) || user.upn.as_deref().is_some_and(|n| p.matches_with(n, opts)))
    }
}

/// `work` over every item of `items`, `concurrency` at once, the results it keeps (`Some`) in
/// the items' order (a slow item does not hold the others' slots, as it would with `buffered`).
/// The first error ends it.
async fn in_order<T, U, Fut>(
    items: impl futures::Stream<Item = Result<T, SourceError>>,
    concurrency: usize,
    work: impl Fn(T) -> Fut,
) -> Result<Vec<U>, SourceError>
where
    Fut: std::future::Future<Output = Result<Option<U>, SourceError>>,
{
    let mut done: Vec<(usize, Option<U>)> = items
        .enumerate()
        .map(|(i, item)| {
            let fut = item.map(&work);
            async move { fut?.await.map(|u| (i, u)) }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().filter_map(|(_, u)| u).collect())
}

/// The mailbox of a user from `/users/{x}` or `/me`.
pub(super) fn user_of(body: &[u8]) -> Result<Mailbox, BodyError> {
    let user: User<'_> = serde_json::from_slice(body).map_err(json_error)?;
    let id = user.id.as_deref().ok_or_else(|| BodyError::Fail(SourceError::new(SourceErrorKind::Fatal, None, "user has no `id` in Graph's answer")))?;
    Ok(mailbox_of(id, &user))
}

/// A mailbox from a user of Graph's answer, with what the `mailboxes` table keeps of it.
fn mailbox_of(id: &str, user: &User<'_>) -> Mailbox {
    Mailbox {
        id: id.to_string(),
        upn: user.user_principal_name.as_deref().map(str::to_string),
        via_me: false,
        mail: user.mail.as_deref().map(str::to_string),
        display_name: user.display_name.as_deref().map(str::to_string),
        account_enabled: user.account_enabled.0,
    }
}

pub(super) fn json_error(e: serde_json::Error) -> BodyError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => BodyError::Fail(SourceError::new(SourceErrorKind::Fatal, None, format!("Graph's answer about users is not what was expected: {e}"))),
        _ => BodyError::Retry(format!("response body is truncated or not valid JSON: {e}")),
    }
}
