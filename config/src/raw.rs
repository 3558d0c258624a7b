//! The configuration exactly as users write it: TOML sections and keys, all optional here so
//! that figment can merge defaults, a file and the environment.
//!
//! [`crate::load`] checks the raw trees against [`crate::keys::KEYS`] before serde sees them, so
//! that every unknown key and every value of the wrong kind is reported, in words, at once;
//! `deny_unknown_fields` stays as the backstop for other callers. A field added here must be
//! added to `KEYS` too (a unit test compares them). The date keys are strings here; the check
//! turns TOML date literals into their text first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Secret;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub source: RawSource,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub sink: RawSink,
    #[serde(default)]
    pub checkpoint: RawCheckpoint,
}

/// `mailboxes = "all"` or a list of user ids / UPNs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawMailboxes {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<String>,
    pub authority_url: Option<String>,
    pub graph_url: Option<String>,
    pub auth: Option<String>,
    pub mailboxes: Option<RawMailboxes>,
    /// Glob patterns (ids or UPNs) of mailboxes to leave out.
    pub exclude_mailboxes: Option<Vec<String>>,
    /// Folder paths (well-known names, display-name paths, globs) whose messages to sync.
    pub include_folders: Option<Vec<String>>,
    /// Folder paths whose messages to leave out; wins over `include_folders`.
    pub exclude_folders: Option<Vec<String>>,
    /// Only messages received at or after this instant (RFC 3339 or a date, quoted or a TOML literal).
    pub received_after: Option<String>,
    pub streams: Option<Vec<String>>,
    pub page_size: Option<i64>,
    /// The calendarView window: an offset from now (`-365d`, `+18mo`), a date or an RFC 3339
    /// timestamp (dates and timestamps quoted or as TOML literals).
    pub calendar_start: Option<String>,
    pub calendar_end: Option<String>,
    /// How often a window with offsets moves: `month` (default), `week` or `day`.
    pub calendar_roll: Option<String>,
    /// `"owned"` (default), `"all"`, or a list of calendar names / globs.
    pub calendars: Option<RawCalendars>,
    pub fetch_bodies: Option<bool>,
    pub redirect_uri: Option<String>,
    pub scopes: Option<RawScopes>,
    pub token_cache: Option<String>,
}

/// `scopes = "a b c"` or `scopes = ["a", "b"]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawScopes {
    Spaced(String),
    List(Vec<String>),
}

/// `calendars = "owned"` / `"all"`, or a list of calendar names and globs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawCalendars {
    Keyword(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_window: Option<i64>,
    pub window_secs: Option<f64>,
    pub max_concurrent_per_mailbox: Option<i64>,
    pub max_in_flight: Option<i64>,
    pub max_parallel_mailboxes: Option<i64>,
    pub retry_max_attempts: Option<i64>,
    pub retry_max_wait_secs: Option<f64>,
    pub retry_max_total_secs: Option<f64>,
    pub request_timeout_secs: Option<f64>,
    pub max_page_mb: Option<i64>,
    pub max_buffered_mb: Option<i64>,
    /// Requests per second over all mailboxes; absent: no cap.
    pub max_requests_per_sec: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    pub url: Option<String>,
    pub options: Option<BTreeMap<String, String>>,
    pub row_group_rows: Option<i64>,
    pub target_file_mb: Option<i64>,
    pub zstd_level: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckpoint {
    pub url: Option<String>,
    pub commit_every_pages: Option<i64>,
    pub commit_every_secs: Option<f64>,
    /// How long a mailbox lease holds without a renewal.
    pub lease_ttl_secs: Option<f64>,
}
