//! First-round URLs and link validation.
//!
//! Contract:
//! - First-round URLs carry every query option (Graph encodes them into the links that follow);
//!   ids are percent-encoded path segments; messages delta never carries `$top` (on delta it
//!   caps the whole round, not the page); calendarView delta carries only the window.
//! - Links (`@odata.nextLink`/`@odata.deltaLink`) are followed exactly as returned, but only if
//!   they are absolute URLs on the same scheme, host and port as `graph_url`, and `https` unless
//!   the host is loopback. A bearer token is never sent anywhere else.

use chrono::{DateTime, SecondsFormat, Utc};
use outlake_pipeline::model::Mailbox;
use outlake_pipeline::source::{SourceError, SourceErrorKind};
use url::{Host, Url};

/// Graph message properties stored in `messages` (`body` is added when bodies are fetched).
pub const MESSAGE_SELECT: &[&str] = &[
    "id",
    "subject",
    "bodyPreview",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "conversationId",
    "internetMessageId",
    "parentFolderId",
    "importance",
    "isRead",
    "isDraft",
    "hasAttachments",
    "categories",
    "flag",
    "inferenceClassification",
    "webLink",
];

/// True for 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A configured base URL must be https (or http on loopback, for the simulator).
pub fn validate_base(url: &Url, what: &str) -> Result<(), SourceError> {
    let ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(url),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(SourceError::new(SourceErrorKind::Fatal, None, format!("{what} `{url}` must be an https URL (plain http is allowed only on localhost)")))
    }
}

/// Check a link Graph returned before sending a token to it.
pub fn validate_link(link: &str, graph_url: &Url) -> Result<Url, SourceError> {
    let bad = |why: String| SourceError::new(SourceErrorKind::Partition, None, format!("refusing to follow link: {why}"));
    let url = Url::parse(link).map_err(|e| bad(format!("not an absolute URL ({e})")))?;
    if url.scheme() != graph_url.scheme()
        || url.host_str().map(str::to_ascii_lowercase) != graph_url.host_str().map(str::to_ascii_lowercase)
        || url.port_or_known_default() != graph_url.port_or_known_default()
    {
        return Err(bad(format!(
            "it points to {}://{}, not to graph_url {}://{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            graph_url.scheme(),
            graph_url.host_str().unwrap_or("")
        )));
    }
    if url.scheme() != "https" && !is_loopback(&url) {
        return Err(bad("it is not https".to_string()));
    }
    Ok(url)
}

/// `{graph}/v1.0/` + segments, each percent-encoded.
pub fn api(graph: &Url, segments: &[&str]) -> Url {
    let mut url = graph.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut p = url.path_segments_mut().expect("https base URLs have paths");
        p.pop_if_empty();
        p.push("v1.0");
        p.extend(segments);
    }
    url
}

/// `users/{id}` or `me`.
fn owner(mailbox: &Mailbox) -> Vec<&str> {
    if mailbox.via_me { vec!["me"] } else { vec!["users", mailbox.id.as_str()] }
}

pub fn folder_delta(graph: &Url, mailbox: &Mailbox) -> Url {
    let mut s = owner(mailbox);
    s.extend(["mailFolders", "delta"]);
    api(graph, &s)
}

pub fn message_delta(graph: &Url, mailbox: &Mailbox, folder_id: &str, fetch_bodies: bool) -> Url {
    let mut s = owner(mailbox);
    s.extend(["mailFolders", folder_id, "messages", "delta"]);
    let mut url = api(graph, &s);
    let mut select = MESSAGE_SELECT.join(",");
    if fetch_bodies {
        select.push_str(",body");
    }
    url.set_query(Some(&format!("$select={select}")));
    url
}

/// `calendarView/delta` with the window: the calendar `calendar_id`'s
/// (`calendars/{id}/calendarView/delta`), or the default calendar's for `None` (the URL of the
/// legacy single events partition).
pub fn event_delta(graph: &Url, mailbox: &Mailbox, calendar_id: Option<&str>, start: DateTime<Utc>, end: DateTime<Utc>) -> Url {
    let mut s = owner(mailbox);
    if let Some(cal) = calendar_id {
        s.extend(["calendars", cal]);
    }
    s.extend(["calendarView", "delta"]);
    let mut url = api(graph, &s);
    let f = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    url.set_query(Some(&format!("startDateTime={}&endDateTime={}", f(start), f(end))));
    url
}

/// Calendars listed per page of `calendars`.
pub const CALENDARS_TOP: u32 = 100;

/// `calendars?$top=100`: the first page of a mailbox's calendars listing.
pub fn calendars(graph: &Url, mailbox: &Mailbox) -> Url {
    let mut s = owner(mailbox);
    s.push("calendars");
    let mut url = api(graph, &s);
    url.set_query(Some(&format!("$top={CALENDARS_TOP}")));
    url
}

/// `mailFolders/{well-known name}?$select=id`: the id of a well-known folder.
pub fn well_known_folder(graph: &Url, mailbox: &Mailbox, name: &str) -> Url {
    let mut s = owner(mailbox);
    s.extend(["mailFolders", name]);
    let mut url = api(graph, &s);
    url.set_query(Some("$select=id"));
    url
}

pub fn users(graph: &Url) -> Url {
    let mut url = api(graph, &["users"]);
    url.set_query(Some(&format!("$select={USER_SELECT}&$top=999")));
    url
}

/// The first `top` users of the directory (operator checks).
pub fn users_first_page(graph: &Url, top: u32) -> Url {
    let mut url = api(graph, &["users"]);
    url.set_query(Some(&format!("$select=id,userPrincipalName&$top={top}")));
    url
}

pub fn resolve_user(graph: &Url, id_or_upn: &str) -> Url {
    let mut url = api(graph, &["users", id_or_upn]);
    url.set_query(Some(&format!("$select={USER_SELECT}")));
    url
}

pub fn me(graph: &Url) -> Url {
    let mut url = api(graph, &["me"]);
    url.set_query(Some(&format!("$select={USER_SELECT}")));
    url
}

/// The user properties read when mailboxes are listed or resolved (the `mailboxes` table).
pub const USER_SELECT: &str = "id,userPrincipalName,mail,displayName,accountEnabled";

pub fn probe_inbox(graph: &Url, user_id: &str) -> Url {
    let mut url = api(graph, &["users", user_id, "mailFolders", "inbox"]);
    url.set_query(Some("$select=id"));
    url
}

/// `{authority}/{tenant}/oauth2/v2.0/token`.
pub fn token_endpoint(authority: &Url, tenant: &str) -> Url {
    let mut url = authority.clone();
    url.set_query(None);
    {
        let mut p = url.path_segments_mut().expect("https base URLs have paths");
        p.pop_if_empty();
        p.extend([tenant, "oauth2", "v2.0", "token"]);
    }
    url
}

/// A URL for messages: scheme, host, port and path (no query, no user info), so sync tokens
/// stay out of error text while the endpoint is still named exactly.
pub fn redact(url: &Url) -> String {
    let origin = url.host_str().map(|h| match url.port() {
        Some(port) => format!("{}://{h}:{port}", url.scheme()),
        None => format!("{}://{h}", url.scheme()),
    });
    format!("{}{}", origin.unwrap_or_default(), url.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(id: &str, via_me: bool) -> Mailbox {
        Mailbox { id: id.into(), via_me, ..Mailbox::default() }
    }

    #[test]
    fn redaction_keeps_the_endpoint_and_drops_the_token() {
        let u = Url::parse("http://127.0.0.1:8765/v1.0/users/u1/mailFolders/delta?$deltatoken=SECRET").unwrap();
        assert_eq!(redact(&u), "http://127.0.0.1:8765/v1.0/users/u1/mailFolders/delta");
        let u = Url::parse("https://user:pw@graph.microsoft.com/v1.0/users?$skiptoken=SECRET").unwrap();
        assert_eq!(redact(&u), "https://graph.microsoft.com/v1.0/users");
    }

    #[test]
    fn first_round_urls() {
        let g = Url::parse("https://graph.microsoft.com").unwrap();
        assert_eq!(folder_delta(&g, &mb("u1", false)).as_str(), "https://graph.microsoft.com/v1.0/users/u1/mailFolders/delta");
        assert_eq!(folder_delta(&g, &mb("u1", true)).as_str(), "https://graph.microsoft.com/v1.0/me/mailFolders/delta");
        let m = message_delta(&g, &mb("u1", false), "AAMk/a+b=", false);
        assert!(m.as_str().starts_with("https://graph.microsoft.com/v1.0/users/u1/mailFolders/AAMk%2Fa+b=/messages/delta?$select=id,subject,"), "{m}");
        assert!(!m.as_str().contains("$top"));
        assert!(!m.as_str().contains("body,") && !m.as_str().ends_with(",body"));
        assert!(message_delta(&g, &mb("u1", false), "f", true).as_str().ends_with(",webLink,body"));
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().to_utc();
        let end = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().to_utc();
        assert_eq!(
            event_delta(&g, &mb("u1", false), None, start, end).as_str(),
            "https://graph.microsoft.com/v1.0/users/u1/calendarView/delta?startDateTime=2024-01-01T00:00:00Z&endDateTime=2025-01-01T00:00:00Z"
        );
        assert_eq!(
            event_delta(&g, &mb("u1", false), Some("AAMkAG/c+d=="), start, end).as_str(),
            "https://graph.microsoft.com/v1.0/users/u1/calendars/AAMkAG%2Fc+d==/calendarView/delta?startDateTime=2024-01-01T00:00:00Z&endDateTime=2025-01-01T00:00:00Z"
        );
        assert_eq!(
            event_delta(&g, &mb("u1", true), Some("cal 1"), start, end).as_str(),
            "https://graph.microsoft.com/v1.0/me/calendars/cal%201/calendarView/delta?startDateTime=2024-01-01T00:00:00Z&endDateTime=2025-01-01T00:00:00Z"
        );
        assert_eq!(calendars(&g, &mb("u/1", false)).as_str(), "https://graph.microsoft.com/v1.0/users/u%2F1/calendars?$top=100");
        assert_eq!(calendars(&g, &mb("u1", true)).as_str(), "https://graph.microsoft.com/v1.0/me/calendars?$top=100");
        let sim = Url::parse("http://127.0.0.1:4000/").unwrap();
        assert_eq!(users(&sim).as_str(), "http://127.0.0.1:4000/v1.0/users?$select=id,userPrincipalName,mail,displayName,accountEnabled&$top=999");
        assert_eq!(token_endpoint(&sim, "t1").as_str(), "http://127.0.0.1:4000/t1/oauth2/v2.0/token");
    }

    #[test]
    fn link_validation() {
        let g = Url::parse("https://graph.microsoft.com").unwrap();
        assert!(validate_link("https://graph.microsoft.com/v1.0/me/mailfolders('x')/messages/delta?$skiptoken=a", &g).is_ok());
        assert!(validate_link("https://GRAPH.microsoft.com:443/v1.0/x", &g).is_ok());
        let e = validate_link("https://evil.example/v1.0/x", &g).unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Partition);
        assert!(e.message.contains("evil.example"));
        assert!(validate_link("http://graph.microsoft.com/v1.0/x", &g).is_err());
        assert!(validate_link("https://graph.microsoft.com:8443/v1.0/x", &g).is_err());
        assert!(validate_link("/v1.0/users?$skiptoken=x", &g).is_err());
        let sim = Url::parse("http://127.0.0.1:4000").unwrap();
        assert!(validate_link("http://127.0.0.1:4000/v1.0/x", &sim).is_ok());
        assert!(validate_link("http://127.0.0.1:4001/v1.0/x", &sim).is_err());
    }

    #[test]
    fn base_urls_must_be_https_unless_loopback() {
        for ok in ["https://graph.microsoft.com", "http://localhost:3000", "http://127.0.0.2:1", "http://[::1]:80"] {
            assert!(validate_base(&Url::parse(ok).unwrap(), "graph_url").is_ok(), "{ok}");
        }
        for bad in ["http://graph.microsoft.com", "ftp://x", "http://10.0.0.1"] {
            let e = validate_base(&Url::parse(bad).unwrap(), "graph_url").unwrap_err();
            assert_eq!(e.kind, SourceErrorKind::Fatal);
        }
    }
}
