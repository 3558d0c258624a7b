//! Configuration: the contract keys, env overrides, and errors that name the key.

use std::io::Write;

use outlake_config::{AuthKind, CalendarRoll, CalendarSelection, CalendarWindowConfig, Mailboxes, OffsetUnit, WindowBound, load};

const GOOD: &str = r#"
[source]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cr3t-value"
authority_url = "https://login.microsoftonline.com"
graph_url = "https://graph.microsoft.com"
auth = "client_credentials"
mailboxes = "all"
streams = ["messages", "events", "mail_folders"]
page_size = 1000
calendar_start = "2024-01-01T00:00:00Z"
calendar_end = "2026-12-31T00:00:00Z"
include_folders = ["inbox", "Projects/20*"]
exclude_folders = ["inbox/Newsletters"]
received_after = "2024-06-01"

[limits]
requests_per_window = 10000
window_secs = 600
max_concurrent_per_mailbox = 4

[sink]
url = "file:///tmp/outlake/out"

[checkpoint]
url = "file:///tmp/outlake/state"
"#;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// figment reads the process environment; tests that set OUTLAKE_ variables must not overlap.
static ENV_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn contract_keys_load_exactly_as_written() {
    let _g = ENV_LOCK.lock().unwrap();
    let f = file(GOOD);
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.tenant_id, "contoso.onmicrosoft.com");
    assert_eq!(c.source.client_secret.as_ref().unwrap().expose(), "s3cr3t-value");
    assert_eq!(c.source.auth, AuthKind::ClientCredentials);
    assert_eq!(c.source.mailboxes, Mailboxes::All);
    assert_eq!(c.source.streams, vec!["mail_folders", "messages", "events"]);
    assert_eq!(c.source.page_size, 1000);
    assert_eq!(c.source.calendar_window.resolve(chrono::Utc::now()).unwrap().0.to_rfc3339(), "2024-01-01T00:00:00+00:00");
    let raw = |v: &[outlake_config::FolderPattern]| v.iter().map(|p| p.raw.clone()).collect::<Vec<_>>();
    assert_eq!(raw(&c.source.include_folders), vec!["inbox", "Projects/20*"]);
    assert_eq!(c.source.include_folders[0].well_known.as_deref(), Some("inbox"));
    assert_eq!(raw(&c.source.exclude_folders), vec!["inbox/Newsletters"]);
    assert_eq!(c.source.received_after.unwrap().to_rfc3339(), "2024-06-01T00:00:00+00:00");
    assert_eq!(c.limits.requests_per_window, 10_000);
    assert_eq!(c.limits.window.as_secs(), 600);
    assert_eq!(c.limits.max_concurrent_per_mailbox, 4);
    assert_eq!(c.sink.url, "file:///tmp/outlake/out");
    assert_eq!(c.checkpoint.url.as_deref(), Some("file:///tmp/outlake/state"));
    // The secret never prints.
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("s3cr3t-value"), "{dbg}");
}

#[test]
fn env_overrides_any_key() {
    let _g = ENV_LOCK.lock().unwrap();
    let f = file(GOOD);
    unsafe {
        std::env::set_var("OUTLAKE_SOURCE__CLIENT_SECRET", "from-env");
        std::env::set_var("OUTLAKE_SOURCE__PAGE_SIZE", "250");
        std::env::set_var("OUTLAKE_SOURCE__MAILBOXES", "[\"a@contoso.com\", \"b@contoso.com\"]");
    }
    let c = load(Some(f.path()));
    unsafe {
        std::env::remove_var("OUTLAKE_SOURCE__CLIENT_SECRET");
        std::env::remove_var("OUTLAKE_SOURCE__PAGE_SIZE");
        std::env::remove_var("OUTLAKE_SOURCE__MAILBOXES");
    }
    let c = c.unwrap();
    assert_eq!(c.source.client_secret.unwrap().expose(), "from-env");
    assert_eq!(c.source.page_size, 250);
    assert_eq!(c.source.mailboxes, Mailboxes::List(vec!["a@contoso.com".into(), "b@contoso.com".into()]));
}

#[test]
fn calendar_keys_load_and_default() {
    let _g = ENV_LOCK.lock().unwrap();
    let text = GOOD
        .replace("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = \"-30d\"\ncalendar_roll = \"week\"\ncalendars = [\"Calendar\", \"Team *\"]")
        .replace("calendar_end = \"2026-12-31T00:00:00Z\"", "calendar_end = \"+18mo\"");
    let before = chrono::Utc::now();
    let c = load(Some(file(&text).path())).unwrap();
    let after = chrono::Utc::now();
    let w = c.source.calendar_window;
    assert_eq!(w.start, WindowBound::Offset { amount: -30, unit: OffsetUnit::Day });
    assert_eq!(w.end, WindowBound::Offset { amount: 18, unit: OffsetUnit::Month });
    assert_eq!(w.roll, CalendarRoll::Week);
    assert_eq!(w.describe(), "-30d … +18mo (rolls weekly)");
    // A relative window resolves from the instant it is asked at.
    assert!(w.resolve(before).unwrap().0 <= w.resolve(after).unwrap().0);
    assert!(c.source.calendars.matches_name("team berlin") && !c.source.calendars.matches_name("Birthdays"));

    let text = GOOD.replace("calendar_start = \"2024-01-01T00:00:00Z\"\n", "").replace("calendar_end = \"2026-12-31T00:00:00Z\"\n", "");
    let c = load(Some(file(&text).path())).unwrap();
    assert_eq!(c.source.calendar_window, CalendarWindowConfig::default());
    assert_eq!(c.source.calendar_window.describe(), "-365d … +365d (rolls monthly)");
    assert_eq!(c.source.calendars, CalendarSelection::Owned);
}

#[test]
fn calendar_keys_from_env() {
    let _g = ENV_LOCK.lock().unwrap();
    let f = file(GOOD);
    unsafe {
        std::env::set_var("OUTLAKE_SOURCE__CALENDARS", "all");
        std::env::set_var("OUTLAKE_SOURCE__CALENDAR_START", "-1y");
        std::env::set_var("OUTLAKE_SOURCE__CALENDAR_END", "+0d");
        std::env::set_var("OUTLAKE_SOURCE__CALENDAR_ROLL", "day");
    }
    let c = load(Some(f.path()));
    unsafe {
        std::env::remove_var("OUTLAKE_SOURCE__CALENDARS");
        std::env::remove_var("OUTLAKE_SOURCE__CALENDAR_START");
        std::env::remove_var("OUTLAKE_SOURCE__CALENDAR_END");
        std::env::remove_var("OUTLAKE_SOURCE__CALENDAR_ROLL");
    }
    let c = c.unwrap();
    assert_eq!(c.source.calendars, CalendarSelection::All);
    assert_eq!(c.source.calendar_window.describe(), "-1y … +0d (rolls daily)");
}

#[test]
fn unknown_key_is_named() {
    let _g = ENV_LOCK.lock().unwrap();
    let f = file(&GOOD.replace("page_size = 1000", "page_sise = 1000"));
    let e = load(Some(f.path())).unwrap_err().to_string();
    assert!(e.contains("source.page_sise"), "{e}");
}

#[test]
fn bad_values_name_key_problem_and_example() {
    let _g = ENV_LOCK.lock().unwrap();
    for (from, to, key, needle) in [
        ("page_size = 1000", "page_size = 5000", "source.page_size", "1..=1000"),
        ("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = \"2020-01-01T00:00:00Z\"", "source.calendar_end", "1825"),
        ("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = \"yesterday\"", "source.calendar_start", "RFC 3339"),
        ("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = \"-6m\"", "source.calendar_start", "`mo` for months"),
        ("calendar_end = \"2026-12-31T00:00:00Z\"", "calendar_end = \"+2h\"", "source.calendar_end", "units are d (days)"),
        ("calendar_end = \"2026-12-31T00:00:00Z\"", "calendar_end = \"2023-12-31\"", "source.calendar_end", "after it starts"),
        ("page_size = 1000", "page_size = 1000\ncalendar_roll = \"hourly\"", "source.calendar_roll", "\"month\", \"week\" or \"day\""),
        ("page_size = 1000", "page_size = 1000\ncalendars = []", "source.calendars", "the list is empty"),
        ("page_size = 1000", "page_size = 1000\ncalendars = \"mine\"", "source.calendars", "\"owned\", \"all\""),
        ("graph_url = \"https://graph.microsoft.com\"", "graph_url = \"http://graph.example.com\"", "source.graph_url", "https"),
        ("auth = \"client_credentials\"", "auth = \"password\"", "source.auth", "unknown auth"),
        ("client_secret = \"s3cr3t-value\"", "", "source.client_secret", "OUTLAKE_SOURCE__CLIENT_SECRET"),
        ("url = \"file:///tmp/outlake/out\"", "url = \"ftp://x/y\"", "sink.url", "not supported"),
        ("requests_per_window = 10000", "requests_per_window = 0", "limits.requests_per_window", "positive"),
        ("mailboxes = \"all\"", "mailboxes = [\"[sales\"]", "source.mailboxes", "not a glob"),
        ("received_after = \"2024-06-01\"", "received_after = \"June\"", "source.received_after", "YYYY-MM-DD"),
        ("exclude_folders = [\"inbox/Newsletters\"]", "exclude_folders = [\"inbox//x\"]", "source.exclude_folders", "empty path segment"),
        ("include_folders = [\"inbox\", \"Projects/20*\"]", "include_folders = [\"[a\"]", "source.include_folders", "not a glob"),
    ] {
        let f = file(&GOOD.replace(from, to));
        let e = load(Some(f.path())).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(needle) && e.contains("example"), "for {to:?}: {e}");
    }
}

#[test]
fn loopback_http_endpoints_are_allowed() {
    let _g = ENV_LOCK.lock().unwrap();
    let f = file(&GOOD.replace("https://graph.microsoft.com", "http://127.0.0.1:8080").replace("https://login.microsoftonline.com", "http://localhost:9"));
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.graph_url.as_str(), "http://127.0.0.1:8080/");
}

#[test]
fn secret_from_file() {
    let _g = ENV_LOCK.lock().unwrap();
    let secret = file("from-file\n");
    let text = GOOD.replace("client_secret = \"s3cr3t-value\"", &format!("client_secret_file = \"{}\"", secret.path().display()));
    let c = load(Some(file(&text).path())).unwrap();
    assert_eq!(c.source.client_secret.unwrap().expose(), "from-file");
}

#[test]
fn missing_file_says_how_to_fix() {
    let e = load(Some(std::path::Path::new("/nonexistent/outlake.toml"))).unwrap_err().to_string();
    assert!(e.contains("--config"), "{e}");
}
