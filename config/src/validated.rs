//! The validated configuration: typed values only, produced by the pure [`validate`].
//!
//! Every error names the key (as users write it: `source.page_size`), says what is wrong with
//! the value, and shows a valid example.

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
}

/// A configuration problem, phrased for the person who wrote the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {problem} (example: {example})")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub example: String,
}

pub(crate) fn err(key: &str, problem: impl Into<String>, example: &str) -> ConfigError {
    ConfigError { key: key.to_string(), problem: problem.into(), example: example.to_string() }
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

/// Turn the raw configuration into typed values, or say which key is wrong and how to fix it.
pub fn validate(raw: &RawConfig, secrets: &dyn SecretFileReader) -> Result<Config, ConfigError> {
    let s = &raw.source;
    let auth = match s.auth.as_deref().unwrap_or("client_credentials") {
        "client_credentials" => AuthKind::ClientCredentials,
        "authorization_code" => AuthKind::AuthorizationCode,
        "device_code" => AuthKind::DeviceCode,
        other => {
            return Err(err(
                "source.auth",
                format!("unknown auth kind {other:?}; use client_credentials, authorization_code or device_code"),
                "auth = \"client_credentials\"",
            ));
        }
    };
    let tenant_id = required(&s.tenant_id, "source.tenant_id", "tenant_id = \"contoso.onmicrosoft.com\" (or the tenant GUID)")?;
    if auth == AuthKind::ClientCredentials && matches!(tenant_id.as_str(), "common" | "organizations" | "consumers") {
        return Err(err(
            "source.tenant_id",
            format!("{tenant_id:?} cannot issue app-only tokens; name your tenant"),
            "tenant_id = \"00000000-0000-0000-0000-000000000000\"",
        ));
    }
    let client_id = required(&s.client_id, "source.client_id", "client_id = \"00000000-0000-0000-0000-000000000000\" (Application (client) ID)")?;

    let client_secret = match (&s.client_secret, &s.client_secret_file) {
        (Some(sec), _) if !sec.is_empty() => Some(sec.clone()),
        (_, Some(path)) => {
            let text = secrets
                .read(path)
                .map_err(|e| err("source.client_secret_file", format!("cannot read {path:?}: {e}"), "client_secret_file = \"/run/secrets/outlake\""))?;
            let text = text.trim_end_matches(['\r', '\n']).to_string();
            if text.is_empty() {
                return Err(err("source.client_secret_file", format!("{path:?} is empty"), "a file holding the secret value"));
            }
            Some(Secret::new(text))
        }
        _ => None,
    };
    if auth == AuthKind::ClientCredentials && client_secret.is_none() {
        return Err(err(
            "source.client_secret",
            "app-only sign-in needs the client secret value; set it in the file, in OUTLAKE_SOURCE__CLIENT_SECRET, or point client_secret_file at a file",
            "OUTLAKE_SOURCE__CLIENT_SECRET=…",
        ));
    }

    let authority_url = endpoint(s.authority_url.as_deref().unwrap_or(DEFAULT_AUTHORITY), "source.authority_url", DEFAULT_AUTHORITY)?;
    let graph_url = endpoint(s.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH), "source.graph_url", DEFAULT_GRAPH)?;

    let mailboxes = match &s.mailboxes {
        None if auth.is_delegated() => Mailboxes::Me,
        None => Mailboxes::All,
        Some(RawMailboxes::Keyword(k)) if k == "all" => {
            if auth.is_delegated() {
                return Err(err(
                    "source.mailboxes",
                    "\"all\" needs app-only access (auth = \"client_credentials\"); with delegated sign-in leave it out (your own mailbox) or list shared mailboxes",
                    "mailboxes = [\"shared@contoso.com\"]",
                ));
            }
            Mailboxes::All
        }
        Some(RawMailboxes::Keyword(k)) if k == "me" => Mailboxes::Me,
        Some(RawMailboxes::Keyword(k)) => {
            return Err(err("source.mailboxes", format!("{k:?} is not a keyword; use \"all\" or a list"), "mailboxes = [\"adele@contoso.com\"]"));
        }
        Some(RawMailboxes::List(list)) => {
            if list.is_empty() || list.iter().any(|m| m.trim().is_empty()) {
                return Err(err("source.mailboxes", "the list is empty or holds an empty name", "mailboxes = [\"adele@contoso.com\"]"));
            }
            for m in list.iter().filter(|m| is_glob(m)) {
                glob::Pattern::new(m).map_err(|e| {
                    err("source.mailboxes", format!("{m:?} is not a glob: {e}"), "mailboxes = [\"sales-*@contoso.com\", \"adele@contoso.com\"]")
                })?;
            }
            Mailboxes::List(list.clone())
        }
    };
    let exclude_mailboxes = s
        .exclude_mailboxes
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            glob::Pattern::new(p)
                .map_err(|e| err("source.exclude_mailboxes", format!("{p:?} is not a glob: {e}"), "exclude_mailboxes = [\"room-*@contoso.com\"]"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let include_folders = folder_patterns(&s.include_folders, "source.include_folders", "include_folders = [\"inbox\", \"sentitems\", \"Projects/2024\"]")?;
    let exclude_folders =
        folder_patterns(&s.exclude_folders, "source.exclude_folders", "exclude_folders = [\"junkemail\", \"deleteditems\", \"inbox/Newsletters\"]")?;
    let received_after = match s.received_after.as_deref() {
        None => None,
        Some(v) => Some(date_or_timestamp(v, "source.received_after")?),
    };

    let mut streams: Vec<String> = Vec::new();
    let wanted = s.streams.clone().unwrap_or_else(|| STREAM_NAMES.iter().map(|x| x.to_string()).collect());
    if wanted.is_empty() {
        return Err(err("source.streams", "the list is empty", "streams = [\"messages\", \"events\", \"mail_folders\"]"));
    }
    for st in &wanted {
        if !STREAM_NAMES.contains(&st.as_str()) {
            return Err(err(
                "source.streams",
                format!("unknown stream {st:?}; streams are messages, events, mail_folders"),
                "streams = [\"messages\", \"events\", \"mail_folders\"]",
            ));
        }
    }
    for name in ["mail_folders", "messages", "events"] {
        if wanted.iter().any(|w| w == name) {
            streams.push(name.to_string());
        }
    }

    let page_size = s.page_size.unwrap_or(1000);
    if !(1..=1000).contains(&page_size) {
        return Err(err("source.page_size", format!("{page_size} is outside 1..=1000"), "page_size = 1000"));
    }
    let calendar_window = CalendarWindowConfig::parse(s.calendar_start.as_deref(), s.calendar_end.as_deref(), s.calendar_roll.as_deref())?;
    // A window that is invalid today is refused now rather than at the first calendarView request.
    calendar_window.resolve(Utc::now())?;
    let calendars = CalendarSelection::parse(s.calendars.as_ref())?;

    let redirect_uri = s.redirect_uri.as_deref().unwrap_or(DEFAULT_REDIRECT_URI);
    let redirect_uri = Url::parse(redirect_uri).map_err(|e| err("source.redirect_uri", format!("{redirect_uri:?} is not a URL: {e}"), DEFAULT_REDIRECT_URI))?;
    if redirect_uri.scheme() != "http" || !is_loopback_host(redirect_uri.host_str().unwrap_or("")) || redirect_uri.port().is_none() {
        return Err(err(
            "source.redirect_uri",
            "must be an http URL on localhost or 127.0.0.1 with a port (outlake listens there for the sign-in redirect)",
            DEFAULT_REDIRECT_URI,
        ));
    }
    let scopes: Vec<String> = match &s.scopes {
        None => DEFAULT_SCOPES.split_whitespace().map(String::from).collect(),
        Some(RawScopes::Spaced(x)) => x.split_whitespace().map(String::from).collect(),
        Some(RawScopes::List(l)) => l.clone(),
    };
    if scopes.is_empty() {
        return Err(err("source.scopes", "no scopes", &format!("scopes = \"{DEFAULT_SCOPES}\"")));
    }

    let l = &raw.limits;
    let requests_per_window = positive(l.requests_per_window, 10_000, "limits.requests_per_window", "requests_per_window = 10000")?;
    let window = seconds(l.window_secs, 600.0, "limits.window_secs", "window_secs = 600")?;
    let max_concurrent_per_mailbox = positive(l.max_concurrent_per_mailbox, 4, "limits.max_concurrent_per_mailbox", "max_concurrent_per_mailbox = 4")?;
    let max_in_flight = positive(l.max_in_flight, 64, "limits.max_in_flight", "max_in_flight = 64")?;
    let max_parallel_mailboxes = positive(l.max_parallel_mailboxes, 16, "limits.max_parallel_mailboxes", "max_parallel_mailboxes = 16")?;
    let retry_max_attempts = positive(l.retry_max_attempts, 8, "limits.retry_max_attempts", "retry_max_attempts = 8")?;
    let retry_max_wait = seconds(l.retry_max_wait_secs, 60.0, "limits.retry_max_wait_secs", "retry_max_wait_secs = 60")?;
    let retry_max_total = seconds(l.retry_max_total_secs, 900.0, "limits.retry_max_total_secs", "retry_max_total_secs = 900")?;
    let request_timeout = seconds(l.request_timeout_secs, 120.0, "limits.request_timeout_secs", "request_timeout_secs = 120")?;
    let max_page_mb = positive(l.max_page_mb, 256, "limits.max_page_mb", "max_page_mb = 256")?;
    let max_buffered_mb = positive(l.max_buffered_mb, 64, "limits.max_buffered_mb", "max_buffered_mb = 64")?;

    let k = &raw.sink;
    let url = required(&k.url, "sink.url", "url = \"file:///var/lib/outlake/out\" (or s3://bucket/prefix, az://container/prefix, gs://bucket/prefix)")?;
    storage_url(&url, "sink.url")?;
    let row_group_rows = positive(k.row_group_rows, 131_072, "sink.row_group_rows", "row_group_rows = 131072")? as usize;
    let target_file_mb = positive(k.target_file_mb, 256, "sink.target_file_mb", "target_file_mb = 256")?;
    // Level 1 writes ~1.4× faster than 3 for ~1 % larger files (benches/README.md, write bench).
    let zstd_level = k.zstd_level.unwrap_or(1);
    if !(1..=22).contains(&zstd_level) {
        return Err(err("sink.zstd_level", format!("{zstd_level} is outside 1..=22"), "zstd_level = 1"));
    }

    let c = &raw.checkpoint;
    if let Some(u) = &c.url {
        storage_url(u, "checkpoint.url")?;
    }
    let commit_every_pages = positive(c.commit_every_pages, 50, "checkpoint.commit_every_pages", "commit_every_pages = 50")?;
    let commit_every = seconds(c.commit_every_secs, 60.0, "checkpoint.commit_every_secs", "commit_every_secs = 60")?;

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
        },
        sink: SinkConfig {
            url,
            options: k.options.clone().unwrap_or_default(),
            row_group_rows,
            target_file_bytes: target_file_mb as u64 * 1024 * 1024,
            zstd_level: zstd_level as i32,
        },
        checkpoint: CheckpointConfig { url: c.url.clone(), commit_every_pages, commit_every },
    })
}

fn required(v: &Option<String>, key: &str, example: &str) -> Result<String, ConfigError> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(err(key, "is missing", example)),
    }
}

fn positive(v: Option<i64>, default: u32, key: &str, example: &str) -> Result<u32, ConfigError> {
    let v = v.unwrap_or(default as i64);
    if v < 1 || v > u32::MAX as i64 {
        return Err(err(key, format!("{v} must be a positive whole number"), example));
    }
    Ok(v as u32)
}

fn seconds(v: Option<f64>, default: f64, key: &str, example: &str) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if !v.is_finite() || v <= 0.0 || v > 1.0e7 {
        return Err(err(key, format!("{v} must be a positive number of seconds"), example));
    }
    Ok(Duration::from_secs_f64(v))
}

fn folder_patterns(v: &Option<Vec<String>>, key: &str, example: &str) -> Result<Vec<FolderPattern>, ConfigError> {
    v.iter().flatten().map(|p| FolderPattern::parse(p).map_err(|problem| err(key, problem, example))).collect()
}

/// An RFC 3339 timestamp, or a date (midnight UTC).
fn date_or_timestamp(v: &str, key: &str) -> Result<DateTime<Utc>, ConfigError> {
    parse_instant(v).ok_or_else(|| {
        err(key, format!("{v:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp"), "received_after = \"2024-01-01\" (or \"2024-01-01T00:00:00Z\")")
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

fn endpoint(v: &str, key: &str, example: &str) -> Result<Url, ConfigError> {
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

fn storage_url(v: &str, key: &str) -> Result<(), ConfigError> {
    let example = "url = \"file:///var/lib/outlake/out\"";
    let u = Url::parse(v).map_err(|e| err(key, format!("{v:?} is not a URL ({e}); local paths are written file:///absolute/path"), example))?;
    match u.scheme() {
        "file" | "s3" | "s3a" | "az" | "azure" | "abfs" | "abfss" | "gs" | "memory" => Ok(()),
        other => Err(err(key, format!("scheme {other:?} is not supported; use file, s3, az, abfss or gs"), example)),
    }
}
