//! Classify a failed request once; the client acts on the class in one place.
//!
//! | Observation | Class |
//! |---|---|
//! | 429, 502, 503, 504; connection error, timeout, reset mid-body; truncated or invalid JSON on a 200 | [`Class::Retry`] (same URL; `Retry-After` when given, else backoff) |
//! | 401 `InvalidAuthenticationToken` (first time) | [`Class::RefreshToken`] |
//! | 410, or code `SyncStateNotFound` / `SyncStateInvalid` / `ResyncRequired` | `SyncStateExpired` |
//! | 404 `ErrorItemNotFound` / `ErrorSyncFolderNotFound` / `itemNotFound` on a folder's message delta or a calendar's calendarView delta | `FolderGone` |
//! | 404 `MailboxNotEnabledForRESTAPI` / `ErrorInvalidUser` / `ResourceNotFound` | `NoMailbox` when mailboxes were discovered, else `Mailbox` |
//! | 403, other 4xx on mailbox requests | `Mailbox`, naming the code and the fix |
//! | 401 after one refresh; 400 `BadRequest` on `/me` ([`RequestKind::Me`]) | `Auth` |
//! | 401/403 on directory requests (`/users`, `/users/{x}`) | `Auth` (the app lacks `User.Read.All`: nothing can proceed) |
//! | anything else | `Partition` |
//!
//! Codes compare case-insensitively. When retries run out, the last retryable cause becomes a
//! `Partition` error.
//!
//! Decisions use the status, Graph's error code and the [`RequestKind`] the caller names; never
//! the text of the URL or of Graph's message (a user `megan@contoso.com` is not `/me`).

use std::time::{Duration, SystemTime};

use outlake_pipeline::source::{SourceError, SourceErrorKind};
use reqwest::StatusCode;

use super::errors::{GraphError, mailbox_advice};

/// What a request was for; the same status means different things on different requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    FolderDelta,
    MessageDelta,
    EventDelta,
    /// `GET /users` pages (directory).
    Users,
    /// `GET /users/{id or UPN}`: resolve a mailbox listed in the config.
    Resolve,
    /// `GET /me`: the signed-in user (delegated auth only; app-only tokens get 400 `BadRequest`).
    Me,
    /// `GET /users/{id}/mailFolders/inbox` to learn whether a discovered user has a mailbox.
    Probe,
    /// `GET …/mailFolders/{well-known name}` to resolve a folder pattern.
    Folder,
    /// `GET …/calendars` pages: a mailbox's calendars listing (a mailbox-level read).
    Calendars,
}

/// The one decision made about a failed attempt.
#[derive(Debug, Clone)]
pub enum Class {
    /// Try the same URL again, after `after` when the server said so.
    Retry { after: Option<Duration>, throttled: bool },
    /// The access token was refused: get a new one and try once more.
    RefreshToken,
    /// Give up with this error.
    Fail(SourceError),
}

pub const SYNC_STATE_CODES: &[&str] = &["SyncStateNotFound", "SyncStateInvalid", "ResyncRequired"];
pub const FOLDER_GONE_CODES: &[&str] = &["ErrorItemNotFound", "ErrorSyncFolderNotFound", "itemNotFound"];
pub const NO_MAILBOX_CODES: &[&str] = &["MailboxNotEnabledForRESTAPI", "ErrorInvalidUser", "ResourceNotFound", "Request_ResourceNotFound"];

/// The request an error answer belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// What the request was for: decides what a status means.
    pub kind: RequestKind,
    /// The mailbox came from `mailboxes = "all"` or a glob: a missing mailbox is skipped, not
    /// failed.
    pub discovered: bool,
    /// The token was already renewed for this request: another 401 is final.
    pub refreshed: bool,
    /// `GET <redacted url>`, for messages only; never inspected.
    pub what: &'a str,
}

/// Classify an HTTP error response (non-2xx) to `attempt`.
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>, err: &GraphError, attempt: &Attempt<'_>) -> Class {
    let Attempt { kind, discovered, refreshed, what } = *attempt;
    let code = err.code.clone();
    let fail = |k: SourceErrorKind, msg: String| Class::Fail(SourceError::new(k, code.clone(), msg));
    let s = status.as_u16();
    match s {
        429 => return Class::Retry { after: retry_after, throttled: true },
        502..=504 => return Class::Retry { after: retry_after, throttled: retry_after.is_some() },
        _ => {}
    }
    if s == 410 || err.is_any(SYNC_STATE_CODES) {
        return fail(
            SourceErrorKind::SyncStateExpired,
            format!("{what}: the delta sync state expired (HTTP {s} {}); restarting the round without a token", err.describe()),
        );
    }
    if s == 401 {
        if !refreshed && (err.is("InvalidAuthenticationToken") || err.code.is_none()) {
            return Class::RefreshToken;
        }
        return fail(
            SourceErrorKind::Auth,
            format!("{what}: Graph refused the access token after a refresh (HTTP 401 {}); check the app's permissions and admin consent", err.describe()),
        );
    }
    if s == 404 && matches!(kind, RequestKind::MessageDelta | RequestKind::Folder | RequestKind::EventDelta) && err.is_any(FOLDER_GONE_CODES) {
        let gone = if kind == RequestKind::EventDelta { "calendar" } else { "folder" };
        return fail(SourceErrorKind::FolderGone, format!("{what}: the {gone} no longer exists ({})", err.describe()));
    }
    if s == 404 && err.is_any(NO_MAILBOX_CODES) {
        let k = if discovered { SourceErrorKind::NoMailbox } else { SourceErrorKind::Mailbox };
        return fail(k, format!("{what}: {} ({})", mailbox_advice(err, s), err.describe()));
    }
    if s == 400 && err.is("BadRequest") && kind == RequestKind::Me {
        return fail(
            SourceErrorKind::Auth,
            format!("{what}: /me needs delegated sign-in ({}); use mailboxes = \"all\" or a list with app-only auth", err.describe()),
        );
    }
    if matches!(kind, RequestKind::Users | RequestKind::Resolve) && (s == 401 || s == 403) {
        let act = if kind == RequestKind::Users { "listing users" } else { "reading a user" };
        return fail(
            SourceErrorKind::Auth,
            format!("{what}: {act} was refused (HTTP {s} {}); grant the User.Read.All application permission with admin consent", err.describe()),
        );
    }
    if (400..500).contains(&s) {
        return fail(SourceErrorKind::Mailbox, format!("{what}: HTTP {s} {}: {}", err.describe(), mailbox_advice(err, s)));
    }
    fail(SourceErrorKind::Partition, format!("{what}: HTTP {s} {}", err.describe()))
}

/// `Retry-After`: delta-seconds, possibly fractional (`2.128`), or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(86_400.0)));
        }
        return None;
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> Vec<u8> {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#).into_bytes()
    }

    fn kind_of(c: Class) -> Option<SourceErrorKind> {
        match c {
            Class::Fail(e) => Some(e.kind),
            _ => None,
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 2.128 ", now), Some(Duration::from_millis(2128)));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    fn classify(n: u16, body: &[u8], kind: RequestKind, discovered: bool, refreshed: bool, what: &str) -> Class {
        classify_status(StatusCode::from_u16(n).unwrap(), None, &GraphError::parse(body), &Attempt { kind, discovered, refreshed, what })
    }

    #[test]
    fn classification_table() {
        use RequestKind::*;
        use SourceErrorKind as K;
        let c = |n: u16, code: &str, kind: RequestKind, discovered: bool| classify(n, &body(code), kind, discovered, false, "GET x");
        assert!(matches!(c(429, "ApplicationThrottled", MessageDelta, false), Class::Retry { throttled: true, .. }));
        assert!(matches!(c(503, "", EventDelta, false), Class::Retry { .. }));
        assert!(matches!(c(504, "", EventDelta, false), Class::Retry { .. }));
        assert!(matches!(classify(503, b"", MessageDelta, false, false, "x"), Class::Retry { .. }));
        assert_eq!(kind_of(c(410, "SyncStateNotFound", MessageDelta, false)), Some(K::SyncStateExpired));
        assert_eq!(kind_of(c(410, "", EventDelta, false)), Some(K::SyncStateExpired));
        assert_eq!(kind_of(c(400, "syncStateInvalid", FolderDelta, false)), Some(K::SyncStateExpired));
        assert_eq!(kind_of(c(400, "resyncRequired", MessageDelta, false)), Some(K::SyncStateExpired));
        assert_eq!(kind_of(c(404, "ErrorItemNotFound", MessageDelta, false)), Some(K::FolderGone));
        assert_eq!(kind_of(c(404, "itemNotFound", MessageDelta, false)), Some(K::FolderGone));
        assert_eq!(kind_of(c(404, "ErrorSyncFolderNotFound", MessageDelta, false)), Some(K::FolderGone));
        assert_eq!(kind_of(c(404, "ErrorItemNotFound", FolderDelta, false)), Some(K::Mailbox));
        // A deleted calendar: its events partition is retired.
        assert_eq!(kind_of(c(404, "ErrorItemNotFound", EventDelta, false)), Some(K::FolderGone));
        assert_eq!(kind_of(c(404, "itemNotFound", EventDelta, true)), Some(K::FolderGone));
        assert_eq!(kind_of(c(404, "MailboxNotEnabledForRESTAPI", EventDelta, true)), Some(K::NoMailbox));
        // The calendars listing reads like any mailbox-level request.
        assert_eq!(kind_of(c(404, "ErrorItemNotFound", Calendars, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(403, "ErrorAccessDenied", Calendars, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(404, "MailboxNotEnabledForRESTAPI", Calendars, true)), Some(K::NoMailbox));
        assert!(matches!(c(429, "ApplicationThrottled", Calendars, false), Class::Retry { throttled: true, .. }));
        assert_eq!(kind_of(c(404, "MailboxNotEnabledForRESTAPI", MessageDelta, true)), Some(K::NoMailbox));
        assert_eq!(kind_of(c(404, "MailboxNotEnabledForRESTAPI", MessageDelta, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(404, "errorinvaliduser", Probe, true)), Some(K::NoMailbox));
        assert_eq!(kind_of(c(404, "Request_ResourceNotFound", Resolve, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(403, "ErrorQuotaExceeded", MessageDelta, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(403, "Authorization_RequestDenied", Users, false)), Some(K::Auth));
        assert_eq!(kind_of(c(403, "Authorization_RequestDenied", Resolve, false)), Some(K::Auth), "a directory refusal stops the run");
        assert_eq!(kind_of(c(400, "ErrorInvalidRequest", EventDelta, false)), Some(K::Mailbox));
        assert_eq!(kind_of(c(500, "InternalServerError", EventDelta, false)), Some(K::Partition));
        assert!(matches!(c(401, "InvalidAuthenticationToken", MessageDelta, false), Class::RefreshToken));
        assert_eq!(kind_of(classify(401, &body("InvalidAuthenticationToken"), MessageDelta, false, true, "x")), Some(K::Auth));
        // `/me` with an app-only token: nothing can proceed without delegated sign-in.
        assert_eq!(kind_of(c(400, "BadRequest", Me, false)), Some(K::Auth));
        assert_eq!(kind_of(c(400, "BadRequest", Resolve, false)), Some(K::Mailbox));
    }

    /// Regression (issue #13): "is this /me?" was decided by `what.contains("/me")`, and the
    /// request line of a configured user such as `GET …/v1.0/users/megan@contoso.com` contains
    /// `/me` too. A 400 while resolving her stopped the whole run as an authentication error with
    /// advice about delegated sign-in. The request kind decides now; the URL text never does.
    #[test]
    fn bad_request_resolving_a_user_named_me_something_is_not_the_me_endpoint() {
        let what = "GET https://graph.microsoft.com/v1.0/users/megan@contoso.com";
        let Class::Fail(e) = classify(400, &body("BadRequest"), RequestKind::Resolve, false, false, what) else { panic!("a 400 is not retried") };
        assert_eq!(e.kind, SourceErrorKind::Mailbox, "{}", e.message);
        assert!(!e.message.contains("delegated sign-in"), "{}", e.message);
        assert_eq!(e.code.as_deref(), Some("BadRequest"));
        // And the converse: the kind alone makes `/me` an auth problem, whatever the text says.
        let Class::Fail(e) = classify(400, &body("BadRequest"), RequestKind::Me, false, false, "GET x") else { panic!() };
        assert_eq!(e.kind, SourceErrorKind::Auth);
        assert!(e.message.contains("delegated sign-in"), "{}", e.message);
    }

    #[test]
    fn mailbox_messages_name_code_and_fix() {
        let Class::Fail(e) = classify(403, &body("ErrorQuotaExceeded"), RequestKind::MessageDelta, false, false, "GET x") else { panic!() };
        assert_eq!(e.code.as_deref(), Some("ErrorQuotaExceeded"));
        assert!(e.message.contains("over its size quota"), "{}", e.message);
        let Class::Fail(e) = classify(403, &body("ErrorAccessDenied"), RequestKind::MessageDelta, false, false, "GET x") else { panic!() };
        assert!(e.message.contains("application access policy"), "{}", e.message);
    }
}
