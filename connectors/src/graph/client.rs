//! The Graph HTTP client: headers, the limiter, token refresh, bounded bodies, and retries.
//!
//! Contract:
//! - Every request carries `Authorization: Bearer …`, `Prefer: odata.maxpagesize=<n>,
//!   IdType="ImmutableId"` (on links too: Graph does not encode headers into links), a fresh
//!   `client-request-id` (a UUID v4 per attempt, as Microsoft asks clients to send, so one
//!   attempt can be found in Graph's logs), `User-Agent: outlake/<version> (run <run id>)` (set
//!   on the HTTP client, token requests included: [`super::options::GraphOptions::user_agent`]),
//!   and `Accept: application/json`; gzip is accepted.
//! - Every request first takes a [`Limiter`] permit for its mailbox (bucket + in-flight caps).
//!   A 429 pauses that mailbox in the limiter for `Retry-After`, so all of its streams wait.
//! - Failures are classified once ([`super::retry`]) and acted on here: retryable ones are sent
//!   again to the same URL, after `Retry-After` when given, else after an exponential backoff
//!   with jitter capped at `retry_max_wait`; at most `retry_max_attempts` attempts and
//!   `retry_max_total` of waiting, after which the last cause is returned as a `Partition` error.
//!   A 401 `InvalidAuthenticationToken` gets a new token and another try (up to
//!   `MAX_TOKEN_REFRESHES` times for one request).
//! - Bodies larger than `max_page_bytes` are refused (by `Content-Length`, and while streaming).
//! - A metered request ([`GraphClient::get_metered`]) grows the memory lease the runner reserved
//!   for it to what the response takes: to `Content-Length` before reading the body, else chunk
//!   by chunk as it arrives, and to twice the body (the body and the batch made from it) before
//!   the body is handed over. Growing may wait for pages in flight to be written
//!   (`outlake_pipeline::budget`).
//! - Counters per mailbox: requests, 429s, retries, bytes, and time spent waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use outlake_pipeline::budget::PageLease;
use outlake_pipeline::limiter::Limiter;
use outlake_pipeline::source::{RequestStats, SourceError, SourceErrorKind};
use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue, RETRY_AFTER};
use url::Url;

use super::auth::TokenProvider;
use super::errors::GraphError;
use super::retry::{Attempt, Class, RequestKind, classify_status, parse_retry_after};
use super::urls;

/// How a successful body is turned into a value; `Retry` means the body was unusable in a way
/// that another fetch may fix (truncated JSON).
pub enum BodyError {
    Retry(String),
    Fail(SourceError),
}

/// One request to make.
pub struct RequestSpec<'a> {
    pub url: Url,
    pub kind: RequestKind,
    /// The mailbox whose limits and counters this request uses.
    pub mailbox_key: &'a str,
    /// The mailbox came from `mailboxes = "all"` (a missing mailbox is skipped, not failed).
    pub discovered: bool,
}

#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub page_size: u32,
    pub retry_max_attempts: u32,
    pub retry_max_wait: Duration,
    pub retry_max_total: Duration,
    pub max_page_bytes: u64,
}

pub struct GraphClient {
    http: reqwest::Client,
    tokens: TokenProvider,
    limiter: Arc<Limiter>,
    settings: ClientSettings,
    prefer: HeaderValue,
    stats: Mutex<HashMap<String, RequestStats>>,
}

/// What came back for the last attempt of a request that failed.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Graph answered with an HTTP error status.
    Status { status: StatusCode, error: GraphError },
    /// No answer: Graph could not be reached (connection refused, DNS, TLS, timeout), as
    /// reqwest's error kind tells ([`super::auth::is_transport`]).
    Unreachable,
}

impl Answer {
    /// The HTTP status Graph answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Answer::Status { status, .. } => Some(*status),
            Answer::Unreachable => None,
        }
    }
}

/// A request that failed for good: the classified error, and what came back for its last
/// attempt when that decided the failure (none for token refusals and unusable bodies).
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: SourceError,
    pub answer: Option<Answer>,
}

struct AttemptError {
    class: Class,
    cause: String,
    answer: Option<Answer>,
}

impl AttemptError {
    fn fail(e: SourceError) -> Self {
        AttemptError { cause: e.message.clone(), class: Class::Fail(e), answer: None }
    }

    fn retry(cause: String) -> Self {
        AttemptError { class: Class::Retry { after: None, throttled: false }, cause, answer: None }
    }
}

impl GraphClient {
    pub fn new(http: reqwest::Client, tokens: TokenProvider, limiter: Arc<Limiter>, settings: ClientSettings) -> Self {
        let prefer = HeaderValue::from_str(&format!("odata.maxpagesize={}, IdType=\"ImmutableId\"", settings.page_size)).expect("ascii header value");
        GraphClient { http, tokens, limiter, settings, prefer, stats: Mutex::new(HashMap::new()) }
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    pub fn stats(&self, mailbox_key: &str) -> RequestStats {
        self.stats.lock().get(mailbox_key).cloned().unwrap_or_default()
    }

    fn count(&self, key: &str, f: impl FnOnce(&mut RequestStats)) {
        let mut map = self.stats.lock();
        if let Some(s) = map.get_mut(key) {
            f(s);
            return;
        }
        f(map.entry(key.to_string()).or_default());
    }

    /// GET `spec.url` and hand the body of a 2xx answer to `handle`, retrying as the module
    /// contract says.
    pub async fn get<T>(&self, spec: &RequestSpec<'_>, handle: impl Fn(&[u8]) -> Result<T, BodyError>) -> Result<T, SourceError> {
        self.fetch(spec, handle).await.map_err(|f| f.error)
    }

    /// Like [`GraphClient::get`], keeping Graph's answer to a failed request (operator checks
    /// tell a missing permission from other refusals by its status).
    pub async fn fetch<T>(&self, spec: &RequestSpec<'_>, handle: impl Fn(&[u8]) -> Result<T, BodyError>) -> Result<T, Failure> {
        self.fetch_metered(spec, None, handle).await
    }

    /// Like [`GraphClient::get`], accounting the response in `memory` (module contract).
    pub async fn get_metered<T>(&self, spec: &RequestSpec<'_>, memory: &PageLease, handle: impl Fn(&[u8]) -> Result<T, BodyError>) -> Result<T, SourceError> {
        self.fetch_metered(spec, Some(memory), handle).await.map_err(|f| f.error)
    }

    async fn fetch_metered<T>(&self, spec: &RequestSpec<'_>, memory: Option<&PageLease>, handle: impl Fn(&[u8]) -> Result<T, BodyError>) -> Result<T, Failure> {
        let s = &self.settings;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(s.retry_max_wait)
            .with_max_times(s.retry_max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        let mut waited = Duration::ZERO;
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let result = (|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.attempt(spec, memory, &handle)
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &AttemptError| matches!(e.class, Class::Retry { .. }))
        .adjust(|e: &AttemptError, computed: Option<Duration>| {
            // The backoff decides whether attempts remain; Retry-After decides how long to wait.
            let computed = computed?;
            let delay = match e.class {
                Class::Retry { after: Some(after), .. } => after,
                _ => computed,
            };
            if waited + delay > s.retry_max_total {
                return None;
            }
            waited += delay;
            Some(delay)
        })
        .notify(|e: &AttemptError, delay: Duration| {
            let throttled = matches!(e.class, Class::Retry { throttled: true, .. });
            self.count(spec.mailbox_key, |st| {
                st.retries += 1;
                if throttled {
                    st.throttle_wait_ms += delay.as_millis() as u64;
                }
            });
            tracing::debug!(mailbox = spec.mailbox_key, url = %urls::redact(&spec.url), cause = %e.cause, ?delay, "retrying Graph request");
        })
        .await;
        result.map_err(|e| match e.class {
            Class::Fail(error) => Failure { error, answer: e.answer },
            _ => {
                let hint = match e.answer {
                    Some(Answer::Unreachable) => {
                        "; Graph could not be reached: check source.graph_url, the proxy settings (HTTPS_PROXY, NO_PROXY) and the firewall"
                    }
                    _ => "",
                };
                Failure {
                    answer: e.answer,
                    error: SourceError::new(
                        SourceErrorKind::Partition,
                        None,
                        format!(
                            "GET {}: gave up after {} attempts and {:.1}s of waiting: {}{hint}",
                            urls::redact(&spec.url),
                            attempts.load(std::sync::atomic::Ordering::Relaxed),
                            waited.as_secs_f64(),
                            e.cause
                        ),
                    ),
                }
            }
        })
    }

    async fn attempt<T>(&self, spec: &RequestSpec<'_>, memory: Option<&PageLease>, handle: &impl Fn(&[u8]) -> Result<T, BodyError>) -> Result<T, AttemptError> {
        let fail = AttemptError::fail;
        let key = spec.mailbox_key;
        let what = format!("GET {}", urls::redact(&spec.url));
        let permit = match spec.kind {
            // The directory is limited per tenant and app, not per mailbox.
            RequestKind::Users | RequestKind::Resolve | RequestKind::Me => self.limiter.acquire_unkeyed(key).await,
            _ => self.limiter.acquire(key).await,
        };
        if permit.waited >= Duration::from_millis(1) {
            self.count(key, |st| st.throttle_wait_ms += permit.waited.as_millis() as u64);
        }
        let mut token = self.tokens.token().await.map_err(fail)?;
        // A revoked or expired token is replaced; a token refused again right after being
        // issued a few times over means a permission problem, not an expiry.
        let mut refreshes = 0u32;
        loop {
            self.count(key, |st| st.requests += 1);
            let sent = self
                .http
                .get(spec.url.clone())
                .bearer_auth(token.expose())
                .header("Prefer", self.prefer.clone())
                .header("client-request-id", uuid::Uuid::new_v4().to_string())
                .header(ACCEPT, "application/json")
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    let unreachable = super::auth::is_transport(&e).then_some(Answer::Unreachable);
                    return Err(AttemptError { answer: unreachable, ..AttemptError::retry(format!("{what}: {}", describe_reqwest(e))) });
                }
            };
            let status = resp.status();
            let retry_after = resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| parse_retry_after(v, SystemTime::now()));
            let body = self.read_body(resp, &what, memory).await?;
            self.count(key, |st| st.bytes += body.len() as u64);
            if status.is_success() {
                if let Some(m) = memory {
                    // The body and the batch normalized from it, about as large (normalize's rule).
                    m.grow(2 * body.len() as u64).await;
                }
                return handle(&body).map_err(|e| match e {
                    BodyError::Retry(cause) => AttemptError::retry(format!("{what}: {cause}")),
                    BodyError::Fail(err) => fail(err),
                });
            }
            let error = GraphError::parse(&body);
            let attempt = Attempt { kind: spec.kind, discovered: spec.discovered, refreshed: refreshes >= MAX_TOKEN_REFRESHES, what: &what };
            let answer = Some(Answer::Status { status, error: error.clone() });
            match classify_status(status, retry_after, &error, &attempt) {
                Class::RefreshToken => {
                    token = self.tokens.refresh(&token).await.map_err(fail)?;
                    refreshes += 1;
                }
                Class::Retry { after, throttled } => {
                    if throttled {
                        self.count(key, |st| st.throttled += 1);
                        if let Some(after) = after {
                            self.limiter.pause(key, tokio::time::Instant::now() + after);
                        }
                    }
                    return Err(AttemptError {
                        class: Class::Retry { after, throttled },
                        cause: format!("{what}: HTTP {} {}", status.as_u16(), error.describe()),
                        answer,
                    });
                }
                Class::Fail(e) => return Err(AttemptError { answer, ..fail(e) }),
            }
        }
    }

    async fn read_body(&self, mut resp: reqwest::Response, what: &str, memory: Option<&PageLease>) -> Result<Bytes, AttemptError> {
        let max = self.settings.max_page_bytes;
        let too_big = |n: u64| {
            let e = SourceError::new(
                SourceErrorKind::Partition,
                None,
                format!(
                    "{what}: the response body ({n} bytes or more) exceeds limits.max_page_mb ({max} bytes) and was refused; lower source.page_size or raise limits.max_page_mb"
                ),
            );
            AttemptError::fail(e)
        };
        if let Some(len) = resp.content_length()
            && len > max
        {
            return Err(too_big(len));
        }
        if let (Some(m), Some(len)) = (memory, resp.content_length()) {
            m.grow(len).await;
        }
        let cap = resp.content_length().unwrap_or(64 * 1024).min(max) as usize;
        let mut buf = BytesMut::with_capacity(cap);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if (buf.len() + chunk.len()) as u64 > max {
                        return Err(too_big((buf.len() + chunk.len()) as u64));
                    }
                    if let Some(m) = memory {
                        m.grow((buf.len() + chunk.len()) as u64).await;
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(buf.freeze()),
                Err(e) => return Err(AttemptError::retry(format!("{what}: the connection failed while reading the body: {}", describe_reqwest(e)))),
            }
        }
    }
}

/// New tokens one request may get after 401s before the refusal counts as final.
const MAX_TOKEN_REFRESHES: u32 = 3;

/// A transport error with its causes, without the URL (links carry long sync tokens).
fn describe_reqwest(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
