//! The validated configuration: typed values only, produced by the pure [`validate`].
//!
//! [`validate`] runs every check and returns every [`Problem`] at once (in a [`ConfigError`]);
//! each names the key (as users write it: `source.page_size`), says what is wrong with the
//! value, and shows a valid example. A check that depends on another key (the client secret on
//! `auth`) is skipped when that key is itself wrong, so one mistake is reported once.
//!
//! Settings that contradict each other are refused rather than one silently winning:
//! `client_secret` together with `client_secret_file` (an empty value counts as unset, so the
//! environment can clear a file's setting). The delegated-only keys (`scopes`, `redirect_uri`,
//! `token_cache`) are allowed under app-only sign-in, which does not read them, so that one file
//! can switch `auth` back and forth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use crate::Secret;
use crate::calendar::{CalendarSelection, CalendarWindowConfig};
use crate::folders::FolderPattern;
use crate::raw::{RawConfig, RawMailboxes, RawScopes};

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:48444/callback";
pub const DEFAULT_SCOPES: &str = "offline_access Mail.Read Calendars.Read";
pub const STREAM_NAMES: [&str; 3] = ["messages", "events", "mail_folders"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    ClientCredentials,
    AuthorizationCode,
    DeviceCode,
}

impl AuthKind {
    pub fn is_delegated(self) -> bool {
        !matches!(self, AuthKind::ClientCredentials)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::ClientCredentials => "client_credentials",
            AuthKind::AuthorizationCode => "authorization_code",
            AuthKind::DeviceCode => "device_code",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mailboxes {
    /// Every user of the tenant (app-only).
    All,
    /// The signed-in user's own mailbox through `/me` (delegated default).
    Me,
    /// These user ids or UPNs.
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    pub limits: LimitsConfig,
    pub sink: SinkConfig,
    pub checkpoint: CheckpointConfig,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub authority_url: Url,
    pub graph_url: Url,
    pub auth: AuthKind,
    pub mailboxes: Mailboxes,
    pub exclude_mailboxes: Vec<glob::Pattern>,
    /// Folders whose messages are synced (empty: all), and folders left out.
    pub include_folders: Vec<FolderPattern>,
    pub exclude_folders: Vec<FolderPattern>,
    /// Messages received before this instant are left out of the output.
    pub received_after: Option<DateTime<Utc>>,
    /// In the order mail_folders, messages, events (deduplicated).
    pub streams: Vec<String>,
    pub page_size: u32,
    /// The calendarView window as written; resolve it with [`CalendarWindowConfig::resolve`].
    pub calendar_window: CalendarWindowConfig,
    /// Which calendars of a mailbox to copy.
    pub calendars: CalendarSelection,
    pub fetch_bodies: bool,
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
    pub token_cache: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub requests_per_window: u32,
    pub window: Duration,
    pub max_concurrent_per_mailbox: u32,
    pub max_in_flight: u32,
    pub max_parallel_mailboxes: u32,
    pub retry_max_attempts: u32,
    pub retry_max_wait: Duration,
    pub retry_max_total: Duration,
    pub request_timeout: Duration,
    pub max_page_bytes: u64,
    /// Memory for normalized pages in flight across all partitions.
    pub max_buffered_bytes: u64,
    /// Requests per second over all mailboxes (`None`: no cap), for an app registration shared
    /// with other tools under Graph's app-wide limit.
    pub max_requests_per_sec: Option<std::num::NonZeroU32>,
}

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub url: String,
    pub options: BTreeMap<String, String>,
    pub row_group_rows: usize,
    pub target_file_bytes: u64,
    pub zstd_level: i32,
}

#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// `None`: `<sink url>/_state`.
    pub url: Option<String>,
    pub commit_every_pages: u32,
    pub commit_every: Duration,
    /// How long a mailbox lease holds without a renewal (renewed every third of it); a dead
    /// worker's mailboxes can be taken over after this long.
    pub lease_ttl: Duration,
}

pub use crate::problem::{ConfigError, Problem};

pub(crate) fn err(key: &str, message: impl Into<String>, example: &str) -> Problem {
    Problem::new(key, message, example)
}

/// Reads a secret from a file (trailing newline trimmed). The only I/O validation does, and
/// only when `client_secret_file` is set.
pub trait SecretFileReader {
    fn read(&self, path: &str) -> std::io::Result<String>;
}

pub struct FsSecretReader;
impl SecretFileReader for FsSecretReader {
    fn read(&self, path: &str) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Every problem found so far; a failed check records its problem and hands back a stand-in
/// value so the remaining checks still run. The stand-ins are never seen: [`validate`] returns
/// the problems when there are any.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, p: Problem) {
        self.0.push(p);
    }

    fn ok<T>(&mut self, r: Result<T, Problem>) -> Option<T> {
        r.map_err(|p| self.push(p)).ok()
    }

    fn or<T>(&mut self, r: Result<T, Problem>, stand_in: T) -> T {
        self.ok(r).unwrap_or(stand_in)
    }
}

/// Turn the raw configuration into typed values, or list every key that is wrong and how to
/// fix it. Each check runs whatever the others found; a check that depends on another key's
/// value (the client secret on `auth`) is skipped when that key is itself wrong.
pub fn validate(raw: &RawConfig, secrets: &dyn SecretFileReader) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let s = &raw.source;
    let auth = match s.auth.as_deref().unwrap_or("client_credentials") {
        "client_credentials" => Some(AuthKind::ClientCredentials),
        "authorization_code" => Some(AuthKind::AuthorizationCode),
        "device_code" => Some(AuthKind::DeviceCode),
        other => {
            p.push(err(
                "source.auth",
                format!("unknown auth kind {other:?}; use client_credentials, authorization_code or device_code"),
                "auth = \"client_credentials\"",
            ));
            None
        }
    };
    let app_only = auth == Some(AuthKind::ClientCredentials);
    let tenant_id = p.or(required(&s.tenant_id, "source.tenant_id", "tenant_id = \"contoso.onmicrosoft.com\" (or the tenant GUID)"), String::new());
    if app_only && matches!(tenant_id.as_str(), "common" | "organizations" | "consumers") {
        p.push(err(
            "source.tenant_id",
            format!("{tenant_id:?} cannot issue app-only tokens; name your tenant"),
            "tenant_id = \"00000000-0000-0000-0000-000000000000\"",
        ));
    }
    let client_id =
        p.or(required(&s.client_id, "source.client_id", "client_id = \"00000000-0000-0000-0000-000000000000\" (Application (client) ID)"), String::new());

    // An empty value counts as unset, so `OUTLAKE_SOURCE__CLIENT_SECRET_FILE=` clears a file's setting.
    let inline_secret = s.client_secret.as_ref().filter(|x| !x.is_empty());
    let secret_file = s.client_secret_file.as_deref().filter(|x| !x.trim().is_empty());
    let client_secret = match (inline_secret, secret_file) {
        (Some(_), Some(_)) => {
            p.push(err(
                "source.client_secret",
                "is set together with `source.client_secret_file`, and only one can be used; remove one of them (from the file or the environment)",
                "client_secret_file = \"/run/secrets/outlake\" alone, or OUTLAKE_SOURCE__CLIENT_SECRET alone",
            ));
            None
        }
        (Some(sec), None) => Some(sec.clone()),
        (None, Some(path)) => p.ok(secret_from_file(path, secrets)),
        (None, None) => {
            if app_only {
                p.push(err(
                    "source.client_secret",
                    "app-only sign-in needs the client secret value; set it in the file, in OUTLAKE_SOURCE__CLIENT_SECRET, or point client_secret_file at a file",
                    "OUTLAKE_SOURCE__CLIENT_SECRET=<the secret's value>",
                ));
            }
            None
        }
    };
    let default_authority = Url::parse(DEFAULT_AUTHORITY).expect("a URL");
    let default_graph = Url::parse(DEFAULT_GRAPH).expect("a URL");
    let authority_url = p.or(
        endpoint(s.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY), "source.authority_url", &format!("authority_url = \"{DEFAULT_AUTHORITY}\"")),
        default_authority,
    );
    let graph_url =
        p.or(endpoint(s.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH), "source.graph_url", &format!("graph_url = \"{DEFAULT_GRAPH}\"")), default_graph);

    let delegated = auth.is_some_and(AuthKind::is_delegated);
    let mailboxes = match &s.mailboxes {
        None if delegated => Mailboxes::Me,
        None => Mailboxes::All,
        Some(RawMailboxes::Keyword(k)) if k == "all" => {
            if delegated {
                p.push(err(
                    "source.mailboxes",
                    "\"all\" needs app-only access (auth = \"client_credentials\"); with delegated sign-in leave it out (your own mailbox) or list shared mailboxes",
                    "mailboxes = [\"shared@contoso.com\"]",
                ));
            }
            Mailboxes::All
        }
        Some(RawMailboxes::Keyword(k)) if k == "me" => Mailboxes::Me,
        Some(RawMailboxes::Keyword(k)) => {
            p.push(err("source.mailboxes", format!("{k:?} is not a keyword; use \"all\" or a list"), "mailboxes = [\"adele@contoso.com\"]"));
            Mailboxes::All
        }
        Some(RawMailboxes::List(list)) => {
            if list.is_empty() || list.iter().any(|m| m.trim().is_empty()) {
                p.push(err("source.mailboxes", "the list is empty or holds an empty name", "mailboxes = [\"adele@contoso.com\"]"));
            }
            for m in list.iter().filter(|m| is_glob(m)) {
                if let Err(e) = glob::Pattern::new(m) {
                    p.push(err("source.mailboxes", format!("{m:?} is not a glob: {e}"), "mailboxes = [\"sales-*@contoso.com\", \"adele@contoso.com\"]"));
                }
            }
            Mailboxes::List(list.clone())
        }
    };
    let exclude_mailboxes = s
        .exclude_mailboxes
        .iter()
        .flatten()
        .filter_map(|pat| {
            p.ok(glob::Pattern::new(pat)
                .map_err(|e| err("source.exclude_mailboxes", format!("{pat:?} is not a glob: {e}"), "exclude_mailboxes = [\"room-*@contoso.com\"]")))
        })
        .collect();

    let include_folders =
        folder_patterns(&mut p, &s.include_folders, "source.include_folders", "include_folders = [\"inbox\", \"sentitems\", \"Projects/2024\"]");
    let exclude_folders =
        folder_patterns(&mut p, &s.exclude_folders, "source.exclude_folders", "exclude_folders = [\"junkemail\", \"deleteditems\", \"inbox/Newsletters\"]");
    let received_after = s.received_after.as_deref().and_then(|v| p.ok(date_or_timestamp(v, "source.received_after")));

    let mut streams: Vec<String> = Vec::new();
    let wanted = s.streams.clone().unwrap_or_else(|| STREAM_NAMES.iter().map(|x| x.to_string()).collect());
    if wanted.is_empty() {
        p.push(err("source.streams", "the list is empty", "streams = [\"messages\", \"events\", \"mail_folders\"]"));
    }
    for st in wanted.iter().filter(|st| !STREAM_NAMES.contains(&st.as_str())) {
        p.push(err(
            "source.streams",
            format!("unknown stream {st:?}; streams are messages, events, mail_folders"),
            "streams = [\"messages\", \"events\", \"mail_folders\"]",
        ));
    }
    for name in ["mail_folders", "messages", "events"] {
        if wanted.iter().any(|w| w == name) {
            streams.push(name.to_string());
        }
    }

    let page_size = s.page_size.unwrap_or(1000);
    if !(1..=1000).contains(&page_size) {
        p.push(err("source.page_size", format!("{page_size} is outside 1..=1000"), "page_size = 1000"));
    }
    let calendar_window = match CalendarWindowConfig::parse(s.calendar_start.as_deref(), s.calendar_end.as_deref(), s.calendar_roll.as_deref()) {
        Ok(w) => {
            // A window that is invalid today is refused now rather than at the first calendarView request.
            p.ok(w.resolve(Utc::now()));
            w
        }
        Err(problems) => {
            problems.into_iter().for_each(|x| p.push(x));
            CalendarWindowConfig::default()
        }
    };
    let calendars = p.or(CalendarSelection::parse(s.calendars.as_ref()), CalendarSelection::Owned);

    let redirect_example = format!("redirect_uri = \"{DEFAULT_REDIRECT_URI}\"");
    let redirect_uri = s.redirect_uri.as_deref().unwrap_or(DEFAULT_REDIRECT_URI);
    let redirect_uri = match Url::parse(redirect_uri) {
        Ok(u) if u.scheme() != "http" || !is_loopback_host(u.host_str().unwrap_or("")) || u.port().is_none() => {
            p.push(err(
                "source.redirect_uri",
                "must be an http URL on localhost or 127.0.0.1 with a port (outlake listens there for the sign-in redirect)",
                &redirect_example,
            ));
            u
        }
        Ok(u) => u,
        Err(e) => {
            p.push(err("source.redirect_uri", format!("{redirect_uri:?} is not a URL: {e}"), &redirect_example));
            Url::parse(DEFAULT_REDIRECT_URI).expect("a URL")
        }
    };
    let scopes: Vec<String> = match &s.scopes {
        None => DEFAULT_SCOPES.split_whitespace().map(String::from).collect(),
        Some(RawScopes::Spaced(x)) => x.split_whitespace().map(String::from).collect(),
        Some(RawScopes::List(l)) => l.clone(),
    };
    if scopes.is_empty() {
        p.push(err("source.scopes", "no scopes", &format!("scopes = \"{DEFAULT_SCOPES}\"")));
    }

    let l = &raw.limits;
    let requests_per_window = p.or(positive(l.requests_per_window, 10_000, "limits.requests_per_window", "requests_per_window = 10000"), 1);
    let window = p.or(seconds(l.window_secs, 600.0, "limits.window_secs", "window_secs = 600"), Duration::ZERO);
    let max_concurrent_per_mailbox = p.or(positive(l.max_concurrent_per_mailbox, 4, "limits.max_concurrent_per_mailbox", "max_concurrent_per_mailbox = 4"), 1);
    let max_in_flight = p.or(positive(l.max_in_flight, 64, "limits.max_in_flight", "max_in_flight = 64"), 1);
    // One mailbox per request slot by default: a mailbox often has a single request in flight (its
    // folder tree, its calendars listing), so fewer mailboxes than slots leaves slots idle when
    // Graph is slow (issue 15: 16 mailboxes kept 35 of 64 slots busy at 250 ms per request).
    let max_parallel_mailboxes = p.or(positive(l.max_parallel_mailboxes, max_in_flight, "limits.max_parallel_mailboxes", "max_parallel_mailboxes = 64"), 1);
    let retry_max_attempts = p.or(positive(l.retry_max_attempts, 8, "limits.retry_max_attempts", "retry_max_attempts = 8"), 1);
    let retry_max_wait = p.or(seconds(l.retry_max_wait_secs, 60.0, "limits.retry_max_wait_secs", "retry_max_wait_secs = 60"), Duration::ZERO);
    let retry_max_total = p.or(seconds(l.retry_max_total_secs, 900.0, "limits.retry_max_total_secs", "retry_max_total_secs = 900"), Duration::ZERO);
    let request_timeout = p.or(seconds(l.request_timeout_secs, 120.0, "limits.request_timeout_secs", "request_timeout_secs = 120"), Duration::ZERO);
    let max_page_mb = p.or(positive(l.max_page_mb, 256, "limits.max_page_mb", "max_page_mb = 256"), 1);
    let max_buffered_mb = p.or(positive(l.max_buffered_mb, 64, "limits.max_buffered_mb", "max_buffered_mb = 64"), 1);
    let max_requests_per_sec = match l.max_requests_per_sec {
        None => None,
        Some(v) => std::num::NonZeroU32::new(p.or(positive(Some(v), 1, "limits.max_requests_per_sec", "max_requests_per_sec = 2000"), 1)),
    };

    let (sink, checkpoint) = storage(&mut p, raw);

    let Some(auth) = auth else { return Err(ConfigError::new(p.0)) };
    if !p.0.is_empty() {
        return Err(ConfigError::new(p.0));
    }
    Ok(Config {
        source: SourceConfig {
            tenant_id,
            client_id,
            client_secret,
            authority_url,
            graph_url,
            auth,
            mailboxes,
            exclude_mailboxes,
            include_folders,
            exclude_folders,
            received_after,
            streams,
            page_size: page_size as u32,
            calendar_window,
            calendars,
            fetch_bodies: s.fetch_bodies.unwrap_or(false),
            redirect_uri,
            scopes,
            token_cache: s.token_cache.as_ref().map(PathBuf::from),
        },
        limits: LimitsConfig {
            requests_per_window,
            window,
            max_concurrent_per_mailbox,
            max_in_flight,
            max_parallel_mailboxes,
            retry_max_attempts,
            retry_max_wait,
            retry_max_total,
            request_timeout,
            max_page_bytes: max_page_mb as u64 * 1024 * 1024,
            max_buffered_bytes: max_buffered_mb as u64 * 1024 * 1024,
            max_requests_per_sec,
        },
        sink,
        checkpoint,
    })
}

/// Where the lake lives: `[sink]` and `[checkpoint]` only. What the commands that only read or
/// tidy storage (`status`, `reset`, `vacuum`) need; they run without a tenant or a secret.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub sink: SinkConfig,
    pub checkpoint: CheckpointConfig,
}

/// [`validate`] for `[sink]` and `[checkpoint]` only: the other sections' values are neither
/// checked nor required (a missing `source.tenant_id` is no problem here).
pub fn validate_storage(raw: &RawConfig) -> Result<StorageConfig, ConfigError> {
    let mut p = Problems::default();
    let (sink, checkpoint) = storage(&mut p, raw);
    if !p.0.is_empty() {
        return Err(ConfigError::new(p.0));
    }
    Ok(StorageConfig { sink, checkpoint })
}

/// The `[sink]` and `[checkpoint]` checks, shared by [`validate`] and [`validate_storage`].
fn storage(p: &mut Problems, raw: &RawConfig) -> (SinkConfig, CheckpointConfig) {
    let k = &raw.sink;
    let url = p.or(
        required(&k.url, "sink.url", "url = \"file:///var/lib/outlake/out\" (or s3://bucket/prefix, az://container/prefix, gs://bucket/prefix)")
            .and_then(|u| storage_url(&u, "sink.url").map(|()| u)),
        String::new(),
    );
    let row_group_rows = p.or(positive(k.row_group_rows, 131_072, "sink.row_group_rows", "row_group_rows = 131072"), 1) as usize;
    let target_file_mb = p.or(positive(k.target_file_mb, 256, "sink.target_file_mb", "target_file_mb = 256"), 1);
    // Level 1 writes ~1.4× faster than 3 for ~1 % larger files (benches/README.md, write bench).
    let zstd_level = k.zstd_level.unwrap_or(1);
    if !(1..=22).contains(&zstd_level) {
        p.push(err("sink.zstd_level", format!("{zstd_level} is outside 1..=22"), "zstd_level = 1"));
    }

    let c = &raw.checkpoint;
    if let Some(u) = &c.url {
        p.ok(storage_url(u, "checkpoint.url"));
    }
    let commit_every_pages = p.or(positive(c.commit_every_pages, 50, "checkpoint.commit_every_pages", "commit_every_pages = 50"), 1);
    let commit_every = p.or(seconds(c.commit_every_secs, 60.0, "checkpoint.commit_every_secs", "commit_every_secs = 60"), Duration::ZERO);
    let lease_ttl = p.or(seconds(c.lease_ttl_secs, 300.0, "checkpoint.lease_ttl_secs", "lease_ttl_secs = 300"), Duration::from_secs(300));
    if lease_ttl < Duration::from_secs(3) {
        p.push(err(
            "checkpoint.lease_ttl_secs",
            format!("{} s is too short: a lease is renewed every third of it, and a commit needs a sixth of it left", lease_ttl.as_secs_f64()),
            "lease_ttl_secs = 300",
        ));
    }

    let sink = SinkConfig {
        url,
        options: k.options.clone().unwrap_or_default(),
        row_group_rows,
        target_file_bytes: target_file_mb as u64 * 1024 * 1024,
        zstd_level: zstd_level as i32,
    };
    (sink, CheckpointConfig { url: c.url.clone(), commit_every_pages, commit_every, lease_ttl })
}

fn required(v: &Option<String>, key: &str, example: &str) -> Result<String, Problem> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(err(key, "is missing", example)),
    }
}

fn secret_from_file(path: &str, secrets: &dyn SecretFileReader) -> Result<Secret, Problem> {
    let example = "client_secret_file = \"/run/secrets/outlake\"";
    let text = secrets.read(path).map_err(|e| err("source.client_secret_file", format!("cannot read {path:?}: {e}"), example))?;
    let text = text.trim_end_matches(['\r', '\n']).to_string();
    if text.is_empty() {
        return Err(err("source.client_secret_file", format!("{path:?} is empty; it should hold the secret's value"), example));
    }
    Ok(Secret::new(text))
}

fn positive(v: Option<i64>, default: u32, key: &str, example: &str) -> Result<u32, Problem> {
    let v = v.unwrap_or(default as i64);
    if v < 1 || v > u32::MAX as i64 {
        return Err(err(key, format!("{v} must be a positive whole number"), example));
    }
    Ok(v as u32)
}

fn seconds(v: Option<f64>, default: f64, key: &str, example: &str) -> Result<Duration, Problem> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 || v > 1.0e7 {
        return Err(err(key, format!("{v} must be a positive number of seconds"), example));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The entries that parse; a problem for each that does not.
fn folder_patterns(p: &mut Problems, v: &Option<Vec<String>>, key: &str, example: &str) -> Vec<FolderPattern> {
    v.iter().flatten().filter_map(|entry| p.ok(FolderPattern::parse(entry).map_err(|problem| err(key, problem, example)))).collect()
}

/// An RFC 3339 timestamp, or a date (midnight UTC).
fn date_or_timestamp(v: &str, key: &str) -> Result<DateTime<Utc>, Problem> {
    parse_instant(v.trim()).ok_or_else(|| {
        let problem = no_offset_hint(v.trim()).unwrap_or_else(|| format!("{v:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp"));
        err(key, problem, "received_after = 2024-01-01 (or \"2024-01-01\", 2024-01-01T00:00:00Z)")
    })
}

/// For a date and time without a UTC offset (`2024-01-01T09:00:00`, which a TOML "local
/// date-time" literal is): say that the offset is missing rather than guess a time zone.
pub(crate) fn no_offset_hint(v: &str) -> Option<String> {
    let t = v.replacen(' ', "T", 1);
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"].iter().find_map(|f| chrono::NaiveDateTime::parse_from_str(&t, f).ok()).map(|naive| {
        let utc = naive.and_utc().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        format!("{v:?} has no UTC offset, so the instant it names is unclear; add one: {utc} for UTC, or an offset such as +02:00")
    })
}

/// An RFC 3339 timestamp, or a date `YYYY-MM-DD` meaning midnight UTC.
pub(crate) fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(v) {
        return Some(d.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

/// An entry with glob characters (`*`, `?`, `[`): a pattern rather than a name.
pub fn is_glob(entry: &str) -> bool {
    entry.contains(['*', '?', '['])
}

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

fn endpoint(v: &str, key: &str, example: &str) -> Result<Url, Problem> {
    let u = Url::parse(v).map_err(|e| err(key, format!("{v:?} is not a URL: {e}"), example))?;
    let host = u.host_str().unwrap_or("");
    match u.scheme() {
        "https" => {}
        "http" if is_loopback_host(host) => {}
        _ => return Err(err(key, format!("{v:?} must use https (plain http is allowed only on localhost)"), example)),
    }
    if host.is_empty() {
        return Err(err(key, format!("{v:?} has no host"), example));
    }
    Ok(u)
}

fn storage_url(v: &str, key: &str) -> Result<(), Problem> {
    let example = "url = \"file:///var/lib/outlake/out\"";
    let u = Url::parse(v).map_err(|e| err(key, format!("{v:?} is not a URL ({e}); local paths are written file:///absolute/path"), example))?;
    match u.scheme() {
        "file" | "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss" | "gs" | "memory" => Ok(()),
        other => Err(err(key, format!("scheme {other:?} is not supported; use file, s3, az, abfss or gs"), example)),
    }
}
