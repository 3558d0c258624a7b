//! Configuration: the contract keys, env overrides, and errors that name the key — all of them
//! at once, each with its key path, what is wrong in words, and an example.

use std::io::Write;

use outlake_config::{AuthKind, CalendarRoll, CalendarSelection, CalendarWindowConfig, LoadError, Mailboxes, OffsetUnit, Problem, WindowBound, load};

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

/// Holds [`ENV_LOCK`] and sets `OUTLAKE_` variables that are removed again on drop, even when
/// the test fails (a failed test does not poison the others).
struct EnvVars(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>, Vec<&'static str>);

fn env_vars(vars: &[(&'static str, &str)]) -> EnvVars {
    let guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (k, v) in vars {
        unsafe { std::env::set_var(k, v) };
    }
    EnvVars(guard, vars.iter().map(|(k, _)| *k).collect())
}

impl Drop for EnvVars {
    fn drop(&mut self) {
        for k in &self.1 {
            unsafe { std::env::remove_var(k) };
        }
    }
}

fn problems(e: &LoadError) -> Vec<(&str, &str)> {
    e.problems().iter().map(|p| (p.key.as_str(), p.message.as_str())).collect()
}

fn problem<'a>(e: &'a LoadError, key: &str) -> &'a Problem {
    e.problems().iter().find(|p| p.key == key).unwrap_or_else(|| panic!("no problem with {key}: {e}"))
}

#[test]
fn contract_keys_load_exactly_as_written() {
    let _g = env_vars(&[]);
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

/// `limits.max_requests_per_sec` is off unless set; when set it is a positive whole number
/// (issue 15).
#[test]
fn the_global_request_rate_is_off_unless_set() {
    let _g = env_vars(&[]);
    assert_eq!(load(Some(file(GOOD).path())).unwrap().limits.max_requests_per_sec, None);
    let with = |line: &str| file(&GOOD.replace("max_concurrent_per_mailbox = 4", &format!("max_concurrent_per_mailbox = 4\n{line}")));
    let c = load(Some(with("max_requests_per_sec = 2000").path())).unwrap();
    assert_eq!(c.limits.max_requests_per_sec.map(|n| n.get()), Some(2000));
    let e = load(Some(with("max_requests_per_sec = 0").path())).unwrap_err();
    let p = problem(&e, "limits.max_requests_per_sec");
    assert!(p.message.contains("positive") && p.example == "max_requests_per_sec = 2000", "{e}");
}

/// One mailbox per request slot unless set: `max_parallel_mailboxes` follows `max_in_flight`
/// (issue 15).
#[test]
fn parallel_mailboxes_follow_the_in_flight_limit_by_default() {
    let _g = env_vars(&[]);
    let c = load(Some(file(GOOD).path())).unwrap();
    assert_eq!((c.limits.max_in_flight, c.limits.max_parallel_mailboxes), (64, 64));
    let with = |lines: &str| file(&GOOD.replace("max_concurrent_per_mailbox = 4", &format!("max_concurrent_per_mailbox = 4\n{lines}")));
    let c = load(Some(with("max_in_flight = 512").path())).unwrap();
    assert_eq!(c.limits.max_parallel_mailboxes, 512);
    let c = load(Some(with("max_in_flight = 512\nmax_parallel_mailboxes = 100").path())).unwrap();
    assert_eq!(c.limits.max_parallel_mailboxes, 100);
}

#[test]
fn env_overrides_any_key() {
    let f = file(GOOD);
    let _env = env_vars(&[
        ("OUTLAKE_SOURCE__CLIENT_SECRET", "from-env"),
        ("OUTLAKE_SOURCE__PAGE_SIZE", "250"),
        ("OUTLAKE_SOURCE__MAILBOXES", "[\"a@contoso.com\", \"b@contoso.com\"]"),
    ]);
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.client_secret.unwrap().expose(), "from-env");
    assert_eq!(c.source.page_size, 250);
    assert_eq!(c.source.mailboxes, Mailboxes::List(vec!["a@contoso.com".into(), "b@contoso.com".into()]));
}

/// figment parses environment values as data, so a secret of digits arrived as a number and
/// failed as "expected a string"; a key that takes text now gets the variable's text as written.
#[test]
fn env_text_is_kept_for_string_keys() {
    let f = file(GOOD);
    let _env = env_vars(&[("OUTLAKE_SOURCE__CLIENT_SECRET", "007"), ("OUTLAKE_SOURCE__TENANT_ID", "12345")]);
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.client_secret.unwrap().expose(), "007");
    assert_eq!(c.source.tenant_id, "12345");
}
#[test]
fn calendar_keys_load_and_default() {
    let _g = env_vars(&[]);
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
    let f = file(GOOD);
    let _env = env_vars(&[
        ("OUTLAKE_SOURCE__CALENDARS", "all"),
        ("OUTLAKE_SOURCE__CALENDAR_START", "-1y"),
        ("OUTLAKE_SOURCE__CALENDAR_END", "+0d"),
        ("OUTLAKE_SOURCE__CALENDAR_ROLL", "day"),
    ]);
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.calendars, CalendarSelection::All);
    assert_eq!(c.source.calendar_window.describe(), "-1y … +0d (rolls daily)");
}

#[test]
fn unknown_key_is_named() {
    let _g = env_vars(&[]);
    let f = file(&GOOD.replace("page_size = 1000", "page_sise = 1000"));
    let e = load(Some(f.path())).unwrap_err();
    assert_eq!(problems(&e), vec![("source.page_sise", "unknown key; did you mean `source.page_size`?")]);
    assert_eq!(e.problems()[0].example, "page_size = 1000");
}

#[test]
fn bad_values_name_key_problem_and_example() {
    let _g = env_vars(&[]);
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
        let e = load(Some(f.path())).unwrap_err();
        assert_eq!(e.problems().len(), 1, "only the one mistake, for {to:?}: {e}");
        let p = &e.problems()[0];
        assert!(p.key == key && p.message.contains(needle) && !p.example.is_empty(), "for {to:?}: {e}");
        assert!(e.to_string().contains(&format!("\n- {key}: ")) && e.to_string().contains("; e.g. "), "for {to:?}: {e}");
    }
}

#[test]
fn loopback_http_endpoints_are_allowed() {
    let _g = env_vars(&[]);
    let f = file(&GOOD.replace("https://graph.microsoft.com", "http://127.0.0.1:8080").replace("https://login.microsoftonline.com", "http://localhost:9"));
    let c = load(Some(f.path())).unwrap();
    assert_eq!(c.source.graph_url.as_str(), "http://127.0.0.1:8080/");
}

#[test]
fn secret_from_file() {
    let _g = env_vars(&[]);
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

/// A user's file with many mistakes took one run per mistake to fix: every problem, from the
/// key check and from validation, now comes back in one error, each with its key and example.
#[test]
fn every_mistake_is_reported_at_once() {
    let _g = env_vars(&[]);
    let text = r#"
[source]
clientid = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cr3t-value"
client_secret_file = "/run/secrets/outlake"
calender_start = "-30d"
page_size = "1000"
streams = ["messages", "mail"]

[limits]
max_inflight = 3
window_secs = "600"

[sink]
foo = 1
url = "ftp://x/y"
"#;
    let f = file(text);
    let e = load(Some(f.path())).unwrap_err();
    assert_eq!(
        problems(&e),
        vec![
            ("source.tenant_id", "is missing"),
            (
                "source.client_secret",
                "is set together with `source.client_secret_file`, and only one can be used; remove one of them (from the file or the environment)"
            ),
            ("source.streams", "unknown stream \"mail\"; streams are messages, events, mail_folders"),
            ("source.page_size", "expected a whole number, found the string \"1000\""),
            ("source.calender_start", "unknown key; did you mean `source.calendar_start`?"),
            ("source.clientid", "unknown key; did you mean `source.client_id`?"),
            ("limits.window_secs", "expected a number, found the string \"600\""),
            ("limits.max_inflight", "unknown key; did you mean `limits.max_in_flight`?"),
            ("sink.url", "scheme \"ftp\" is not supported; use file, s3, az, abfss or gs"),
            ("sink.foo", "unknown key; the keys of [sink] are url, options, row_group_rows, target_file_mb, zstd_level"),
        ],
        "{e}"
    );
    // `client_id` is not also reported missing: the suggestion for `clientid` already says so.
    assert!(e.problems().iter().all(|p| p.key != "source.client_id"), "{e}");
    for p in e.problems().iter().filter(|p| p.key != "sink.foo") {
        assert!(!p.example.is_empty(), "{p}");
    }
    assert_eq!(problem(&e, "source.page_size").example, "page_size = 1000");
    assert_eq!(problem(&e, "limits.max_inflight").example, "max_in_flight = 64");
    assert!(problem(&e, "source.client_secret").example.contains("client_secret_file"));
    assert!(e.problems().iter().all(|p| p.env_var.is_none()));

    let text = e.to_string();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(format!("config file {} has 10 problems:", f.path().display()).as_str()));
    assert_eq!(lines.next(), Some("- source.tenant_id: is missing; e.g. tenant_id = \"contoso.onmicrosoft.com\" (or the tenant GUID)"));
    assert_eq!(lines.clone().count(), 9);
    assert!(lines.all(|l| l.starts_with("- ")));
    for rust in ["i64", "u32", "f64", "map", "sequence", "sink.foo.foo"] {
        assert!(!text.contains(rust), "{rust} in {text}");
    }
}

/// `received_after = 2024-01-01` (unquoted) is a TOML date literal, which figment held as a map:
/// users saw "found map". The three date keys take literals and quoted strings alike.
#[test]
fn toml_date_literals_are_accepted_for_the_date_keys() {
    let _g = env_vars(&[]);
    let text = GOOD
        .replace("received_after = \"2024-06-01\"", "received_after = 2024-06-01")
        .replace("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = 2024-01-01T00:00:00Z")
        .replace("calendar_end = \"2026-12-31T00:00:00Z\"", "calendar_end = 2026-12-31T02:00:00+02:00");
    let c = load(Some(file(&text).path())).unwrap();
    assert_eq!(c.source.received_after.unwrap().to_rfc3339(), "2024-06-01T00:00:00+00:00");
    assert_eq!(c.source.calendar_window.start, WindowBound::At("2024-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(c.source.calendar_window.end, WindowBound::At("2026-12-31T00:00:00Z".parse().unwrap()));

    let text = GOOD
        .replace("calendar_start = \"2024-01-01T00:00:00Z\"", "calendar_start = 2024-01-01")
        .replace("calendar_end = \"2026-12-31T00:00:00Z\"", "calendar_end = 2026-12-31T00:00:00")
        .replace("received_after = \"2024-06-01\"", "received_after = 2024-06-01 12:00:00Z");
    let e = load(Some(file(&text).path())).unwrap_err();
    // A local date-time (no offset) names no instant: refused with the fix, not guessed.
    assert_eq!(e.problems().len(), 1, "{e}");
    let end = problem(&e, "source.calendar_end");
    assert!(end.message.contains("has no UTC offset") && end.message.contains("2026-12-31T00:00:00Z"), "{end}");

    // Elsewhere a date literal is a mistake, said in words.
    let e = load(Some(file(&GOOD.replace("tenant_id = \"contoso.onmicrosoft.com\"", "tenant_id = 2024-01-01")).path())).unwrap_err();
    assert_eq!(problem(&e, "source.tenant_id").message, "expected a string, found the date 2024-01-01 (a TOML date literal)");
}

#[test]
fn near_misses_get_did_you_mean() {
    let _g = env_vars(&[]);
    let text = GOOD
        .replace("client_id =", "clientid =")
        .replace("calendar_start =", "calender_start =")
        .replace("max_concurrent_per_mailbox = 4", "max_inflight = 4\nMax_Concurrent_Per_Mailbox = 4")
        .replace("[sink]\n", "[sink]\nurl_ = \"x\"\nrow_groups = 3\n")
        .replace("[checkpoint]\n", "[checkpoint]\ncommit_every_page = 5\nwindow_secs = 9\n");
    let e = load(Some(file(&text).path())).unwrap_err();
    let meant = |key: &str| problem(&e, key).message.clone();
    assert_eq!(meant("source.clientid"), "unknown key; did you mean `source.client_id`?");
    assert_eq!(meant("source.calender_start"), "unknown key; did you mean `source.calendar_start`?");
    assert_eq!(meant("limits.max_inflight"), "unknown key; did you mean `limits.max_in_flight`?");
    assert_eq!(meant("limits.Max_Concurrent_Per_Mailbox"), "unknown key; did you mean `limits.max_concurrent_per_mailbox`?");
    assert_eq!(meant("sink.url_"), "unknown key; did you mean `sink.url`?");
    assert!(meant("sink.row_groups").contains("the keys of [sink] are url, options"), "{e}");
    assert_eq!(meant("checkpoint.commit_every_page"), "unknown key; did you mean `checkpoint.commit_every_pages`?");
    assert_eq!(meant("checkpoint.window_secs"), "unknown key in [checkpoint]; did you mean `limits.window_secs`? It belongs in [limits]");
    assert_eq!(e.problems().len(), 8, "{e}");
}

/// Problems in the environment name the variable as well as the key path.
#[test]
fn env_problems_are_named_by_key_path_and_variable() {
    let f = file(GOOD);
    let _env = env_vars(&[
        ("OUTLAKE_LIMITS__MAX_IN_FLIGHT", "lots"),
        ("OUTLAKE_SOURCE__CLIENTID", "x"),
        ("OUTLAKE_SINK__URL", "ftp://x/y"),
        ("OUTLAKE_SOURCE__FETCH_BODIES", "yes"),
    ]);
    let e = load(Some(f.path())).unwrap_err();
    let env = |key: &str| problem(&e, key).env_var.clone();
    assert_eq!(e.problems().len(), 4, "{e}");
    assert_eq!(env("limits.max_in_flight").as_deref(), Some("OUTLAKE_LIMITS__MAX_IN_FLIGHT"));
    assert_eq!(env("source.clientid").as_deref(), Some("OUTLAKE_SOURCE__CLIENTID"));
    assert_eq!(env("sink.url").as_deref(), Some("OUTLAKE_SINK__URL"), "validation problems are attributed too");
    assert_eq!(problem(&e, "source.fetch_bodies").message, "expected true or false, found the string \"yes\"");
    assert_eq!(problem(&e, "source.fetch_bodies").example, "OUTLAKE_SOURCE__FETCH_BODIES=true");
    assert!(problem(&e, "source.clientid").message.contains("did you mean `source.client_id` (`OUTLAKE_SOURCE__CLIENT_ID`)?"), "{e}");
    assert!(
        e.to_string().contains(
            "- limits.max_in_flight (OUTLAKE_LIMITS__MAX_IN_FLIGHT): expected a whole number, found the string \"lots\"; e.g. OUTLAKE_LIMITS__MAX_IN_FLIGHT=64"
        ),
        "{e}"
    );
}

/// With both `client_secret` and `client_secret_file`, one silently won. Now both are named,
/// wherever each was set.
#[test]
fn conflicting_secret_keys_are_refused() {
    let secret = file("from-file\n");
    let with_file = GOOD.replace("client_secret = \"s3cr3t-value\"", &format!("client_secret_file = \"{}\"", secret.path().display()));
    let f = file(&with_file);
    {
        let _env = env_vars(&[("OUTLAKE_SOURCE__CLIENT_SECRET", "from-env")]);
        let e = load(Some(f.path())).unwrap_err();
        let p = problem(&e, "source.client_secret");
        assert!(p.message.contains("`source.client_secret_file`"), "{p}");
        assert_eq!(p.env_var.as_deref(), Some("OUTLAKE_SOURCE__CLIENT_SECRET"));
        assert_eq!(e.problems().len(), 1, "{e}");
    }
    {
        // An empty value counts as unset: the environment can clear the file's setting.
        let _env = env_vars(&[("OUTLAKE_SOURCE__CLIENT_SECRET", "from-env"), ("OUTLAKE_SOURCE__CLIENT_SECRET_FILE", "")]);
        assert_eq!(load(Some(f.path())).unwrap().source.client_secret.unwrap().expose(), "from-env");
    }
}

/// Keys only delegated sign-in reads are allowed under app-only sign-in (one file can switch
/// `auth` back and forth).
#[test]
fn delegated_only_keys_are_allowed_under_app_only_sign_in() {
    let _g = env_vars(&[]);
    let text = GOOD.replace("page_size = 1000", "page_size = 1000\nscopes = \"Mail.Read.Shared\"\ntoken_cache = \"/tmp/t.json\"");
    let c = load(Some(file(&text).path())).unwrap();
    assert_eq!(c.source.scopes, vec!["Mail.Read.Shared"]);
}

#[test]
fn without_a_file_the_error_says_none_was_read() {
    let _g = env_vars(&[]);
    let e = load(None).unwrap_err();
    assert!(e.file().is_none());
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, vec!["source.tenant_id", "source.client_id", "source.client_secret", "sink.url"], "{e}");
    assert!(e.to_string().starts_with("the configuration (no config file was read; only OUTLAKE_* environment variables) has 4 problems:\n"), "{e}");
}

#[test]
fn toml_syntax_errors_name_the_file_and_line() {
    let f = file("[source]\ntenant_id = \"x\nclient_id = 1\n");
    let e = load(Some(f.path())).unwrap_err();
    assert!(matches!(e, LoadError::File { .. }));
    let text = e.to_string();
    assert!(text.contains("is not valid TOML") && text.contains("line 2"), "{text}");
}

/// `status`, `reset` and `vacuum` only touch storage: a file with only `[sink]` loads.
#[test]
fn storage_load_needs_only_sink_and_checkpoint() {
    let _g = env_vars(&[]);
    let f = file("[sink]\nurl = \"file:///tmp/outlake/out\"\nzstd_level = 3\n\n[checkpoint]\nurl = \"file:///tmp/outlake/state\"\n");
    let s = outlake_config::load_storage(Some(f.path())).unwrap();
    assert_eq!(s.sink.url, "file:///tmp/outlake/out");
    assert_eq!(s.sink.zstd_level, 3);
    assert_eq!(s.checkpoint.url.as_deref(), Some("file:///tmp/outlake/state"));
    // The full load still wants the source.
    let keys: Vec<String> = load(Some(f.path())).unwrap_err().problems().iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys, ["source.tenant_id", "source.client_id", "source.client_secret"]);
    // The whole good config loads for storage too.
    let g = file(GOOD);
    assert_eq!(outlake_config::load_storage(Some(g.path())).unwrap().sink.url, "file:///tmp/outlake/out");
}

/// The storage load still reports unknown keys and values of the wrong kind anywhere, and every
/// bad storage value, but neither a missing nor a bad source value.
#[test]
fn storage_load_reports_unknown_keys_everywhere_and_storage_values() {
    let _g = env_vars(&[("OUTLAKE_SINK__ZSTD_LEVEL", "99")]);
    let f = file(
        "[source]\ntenant_idd = \"x\"\npage_size = 5000\n\n[limits]\nmax_in_flight = \"64\"\n\n[sink]\nurl = \"ftp://x/y\"\n\n[checkpoint]\ncommit_every_pages = 0\n",
    );
    let e = outlake_config::load_storage(Some(f.path())).unwrap_err();
    let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["source.tenant_idd", "limits.max_in_flight", "sink.url", "sink.zstd_level", "checkpoint.commit_every_pages"], "{e}");
    assert_eq!(problem(&e, "sink.zstd_level").env_var.as_deref(), Some("OUTLAKE_SINK__ZSTD_LEVEL"));
    assert!(e.to_string().starts_with(&format!("config file {} has 5 problems:", f.path().display())), "{e}");
    // Without a file: only the sink URL is missing.
    drop(_g);
    let _g = env_vars(&[]);
    let e = outlake_config::load_storage(None).unwrap_err();
    assert_eq!(problems(&e), [("sink.url", "is missing")]);
}
