//! Options of the Graph source. The binary maps the validated config into [`GraphOptions`];
//! nothing here reads files or the environment.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use outlake_config::Secret;
use outlake_pipeline::limiter::LimiterConfig;
use outlake_pipeline::source::SourceError;

/// Delegated (user) tokens come from the binary's token cache: it owns sign-in, storage and the
/// refresh-token grant. The connector only asks for a current access token, and forces a
/// refresh once when Graph answers 401 `InvalidAuthenticationToken`.
#[async_trait]
pub trait DelegatedTokens: Send + Sync {
    /// A valid access token. With `force_refresh`, the cached one was refused: get a new one.
    /// A refused refresh token must come back as `SourceErrorKind::Auth` naming the fix
    /// ("sign in again: outlake auth login").
    async fn access_token(&self, force_refresh: bool) -> Result<Secret, SourceError>;
}

/// How the source gets access tokens.
#[derive(Clone)]
pub enum AuthMode {
    /// App-only: `client_credentials` grant with `client_secret`, scope
    /// `https://graph.microsoft.com/.default`.
    ClientCredentials,
    /// A signed-in user's tokens, provided by the binary.
    Delegated { tokens: Arc<dyn DelegatedTokens> },
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::ClientCredentials => f.write_str("ClientCredentials"),
            AuthMode::Delegated { .. } => f.write_str("Delegated"),
        }
    }
}

/// Which mailboxes to sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxSelection {
    /// Every user of the directory that has a mailbox (users without one are skipped).
    All,
    /// These users, by object id or userPrincipalName. A listed user without a mailbox, or one
    /// that cannot be resolved, fails alone (it is never silently skipped).
    List(Vec<String>),
    /// The signed-in user (delegated auth), through `/me`.
    Me,
}

#[derive(Debug, Clone)]
pub struct GraphOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// Identity platform root; the token endpoint is `{authority}/{tenant}/oauth2/v2.0/token`.
    pub authority_url: url::Url,
    /// Graph root; the API is under `{graph}/v1.0/`.
    pub graph_url: url::Url,
    pub auth: AuthMode,
    pub mailboxes: MailboxSelection,
    /// `Prefer: odata.maxpagesize` (never `$top`).
    pub page_size: u32,
    /// Select `body` on messages and fill `body_content_type` / `body_content`.
    pub fetch_bodies: bool,
    /// The calendarView window of a new events round.
    pub calendar_start: DateTime<Utc>,
    pub calendar_end: DateTime<Utc>,
    pub requests_per_window: u32,
    pub window: Duration,
    pub max_concurrent_per_mailbox: u32,
    pub max_in_flight_total: u32,
    /// Requests per second over all mailboxes (`limits.max_requests_per_sec`); `None`: no cap.
    pub max_requests_per_sec: Option<std::num::NonZeroU32>,
    /// Attempts per request, the first included.
    pub retry_max_attempts: u32,
    /// Cap of one computed backoff wait.
    pub retry_max_wait: Duration,
    /// Cap of all waits of one request (Retry-After included).
    pub retry_max_total: Duration,
    /// Larger response bodies are refused (Content-Length and while streaming).
    pub max_page_bytes: u64,
    /// Whole-request timeout (connect, headers and body).
    pub request_timeout: Duration,
    /// The run these requests belong to: named in every request's `User-Agent`
    /// ([`GraphOptions::user_agent`]) so that Graph's logs (and the simulator's) trace a request
    /// to its worker. `None` outside a sync run (`check`, `estimate`).
    pub run_id: Option<String>,
}

impl GraphOptions {
    /// Options with Graph's public endpoints and the documented limits (10,000 requests per
    /// 10 minutes and 4 in flight per mailbox), app-only auth, all mailboxes.
    pub fn new(tenant_id: impl Into<String>, client_id: impl Into<String>, client_secret: Option<Secret>) -> Self {
        let now = Utc::now();
        GraphOptions {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            client_secret,
            authority_url: url::Url::parse("https://login.microsoftonline.com").expect("static url"),
            graph_url: url::Url::parse("https://graph.microsoft.com").expect("static url"),
            auth: AuthMode::ClientCredentials,
            mailboxes: MailboxSelection::All,
            page_size: 200,
            fetch_bodies: false,
            calendar_start: now - chrono::Duration::days(30),
            calendar_end: now + chrono::Duration::days(365),
            requests_per_window: 9_600,
            window: Duration::from_secs(600),
            max_concurrent_per_mailbox: 4,
            max_in_flight_total: 64,
            max_requests_per_sec: None,
            retry_max_attempts: 8,
            retry_max_wait: Duration::from_secs(60),
            retry_max_total: Duration::from_secs(600),
            max_page_bytes: 64 * 1024 * 1024,
            request_timeout: Duration::from_secs(120),
            run_id: None,
        }
    }

    /// The `User-Agent` of every request, token requests included: `outlake/<version>`, and
    /// ` (run <run id>)` during a run.
    pub fn user_agent(&self) -> String {
        match &self.run_id {
            Some(run) => format!("outlake/{} (run {run})", env!("CARGO_PKG_VERSION")),
            None => format!("outlake/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn limiter_config(&self) -> LimiterConfig {
        LimiterConfig {
            requests_per_window: self.requests_per_window,
            window: self.window,
            max_concurrent_per_mailbox: self.max_concurrent_per_mailbox,
            max_in_flight_total: self.max_in_flight_total,
            max_requests_per_sec: self.max_requests_per_sec,
        }
    }
}
