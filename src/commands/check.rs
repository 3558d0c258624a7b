//! `outlake check`: is this configuration good enough to sync? One line per check, ok or
//! FAILED with a fix; exit 0 when all pass, 2 for configuration, credential or permission
//! problems, 1 for anything else (Graph unreachable, 5xx after retries).
//!
//! Checks, in order, each cheap (pages of one item, `Prefer: odata.maxpagesize=1`):
//! 1. the configuration loads and validates;
//! 2. an access token (client credentials: tenant, client id and secret; delegated: the token
//!    cache and its refresh token);
//! 3. the mailboxes can be found: `mailboxes = "all"` reads one page of `/users` (User.Read.All)
//!    and probes users' inboxes until one has a mailbox; a list resolves its first entry; `/me`
//!    for delegated sign-in;
//! 4. per configured stream, the first page of its delta query for that one mailbox:
//!    `mailFolders/delta` (Mail.Read), `mailFolders/inbox/messages/delta` (Mail.Read),
//!    `calendarView/delta` (Calendars.Read). A 403 names the permission to grant.

use std::time::Duration;

use outlake_config::{AuthKind, Config, Mailboxes};
use outlake_connectors::graph::retry::RequestKind;
use outlake_connectors::graph::{GraphSource, urls};
use outlake_pipeline::model::Mailbox;
use outlake_pipeline::source::{SourceError, SourceErrorKind};
use serde_json::Value;

use crate::cli::ConfigArg;
use crate::exit;

/// How a failed check counts towards the exit code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    /// Config, credentials or permissions: exit 2.
    Setup,
    /// Anything else: exit 1.
    Other,
}

struct Checks {
    failed: Option<Severity>,
}

impl Checks {
    fn ok(&mut self, name: &str, detail: &str) {
        println!("ok      {name:<13} {detail}");
    }

    fn fail(&mut self, name: &str, detail: &str, fix: &str, sev: Severity) {
        println!("FAILED  {name:<13} {detail}");
        if !fix.is_empty() {
            println!("        {:<13} fix: {fix}", "");
        }
        self.failed = Some(match self.failed {
            Some(s) => s.min(sev),
            None => sev,
        });
    }

    fn skip(&mut self, name: &str, why: &str) {
        println!("skipped {name:<13} {why}");
    }

    fn code(&self) -> u8 {
        match self.failed {
            None => exit::OK,
            Some(Severity::Setup) => exit::CONFIG_OR_AUTH,
            Some(Severity::Other) => exit::FAILURE,
        }
    }
}

pub async fn run(config: ConfigArg) -> u8 {
    let mut c = Checks { failed: None };
    let cfg = match outlake_config::load(config.config.as_deref()) {
        Ok(cfg) => {
            let streams = cfg.source.streams.join(", ");
            c.ok("config", &format!("valid ({} auth, streams: {streams}, sink {})", auth_name(cfg.source.auth), cfg.sink.url));
            cfg
        }
        Err(e) => {
            c.fail("config", &e.to_string(), "correct the key named above (see the Configuration table in the README)", Severity::Setup);
            return c.code();
        }
    };
    let source = match build_source(&cfg) {
        Ok(s) => s,
        Err(e) => {
            c.fail("token", &e, "sign in with `outlake auth login --config …`, or fix the [source] keys named above", Severity::Setup);
            return c.code();
        }
    };
    let delegated = cfg.source.auth.is_delegated();

    // 2. A token.
    match source.check_token().await {
        Ok(()) => {
            c.ok("token", &format!("access token from {} for tenant {}, client {}", cfg.source.authority_url, cfg.source.tenant_id, cfg.source.client_id))
        }
        Err(e) => {
            let (sev, fix) = match e.kind {
                SourceErrorKind::Auth => (Severity::Setup, token_fix(&e, delegated)),
                _ => (Severity::Other, "check that source.authority_url is reachable from this machine".to_string()),
            };
            c.fail("token", &describe(&e), &fix, sev);
            skip_rest(&mut c, &cfg, "no access token");
            return c.code();
        }
    }

    // 3. One mailbox to try the streams on.
    let mailbox = match find_mailbox(&source, &cfg).await {
        Ok(Ok((mb, detail))) => {
            c.ok("mailboxes", &detail);
            mb
        }
        Ok(Err(detail)) => {
            c.fail(
                "mailboxes",
                &detail,
                "list mailboxes explicitly in source.mailboxes, or check that the users have Exchange Online licences",
                Severity::Setup,
            );
            skip_rest(&mut c, &cfg, "no mailbox to try");
            return c.code();
        }
        Err(e) => {
            let (sev, fix) = classify(&e, "User.Read.All", delegated);
            c.fail("mailboxes", &describe(&e), &fix, sev);
            skip_rest(&mut c, &cfg, "no mailbox to try");
            return c.code();
        }
    };

    // 4. One cheap call per stream.
    let g = &cfg.source.graph_url;
    for stream in &cfg.source.streams {
        let (url, kind, permission) = match stream.as_str() {
            "mail_folders" => (urls::folder_delta(g, &mailbox), RequestKind::FolderDelta, "Mail.Read"),
            "messages" => (inbox_message_delta(g, &mailbox), RequestKind::MessageDelta, "Mail.Read"),
            "events" => (urls::event_delta(g, &mailbox, cfg.source.calendar_start, cfg.source.calendar_end), RequestKind::EventDelta, "Calendars.Read"),
            other => {
                c.skip(other, "unknown stream");
                continue;
            }
        };
        match source.get_json(url, kind, &mailbox.id).await {
            Ok(v) => {
                let n = v.get("value").and_then(Value::as_array).map(|a| a.len()).unwrap_or(0);
                c.ok(stream, &format!("{permission}: first delta page of {} read ({n} item{})", mailbox.label(), if n == 1 { "" } else { "s" }));
            }
            Err(e) => {
                let (sev, fix) = classify(&e, permission, delegated);
                c.fail(stream, &describe(&e), &fix, sev);
            }
        }
    }
    match c.failed {
        None => println!("all checks passed"),
        Some(_) => println!("some checks failed"),
    }
    c.code()
}

fn auth_name(a: AuthKind) -> &'static str {
    match a {
        AuthKind::ClientCredentials => "client_credentials",
        AuthKind::AuthorizationCode => "authorization_code",
        AuthKind::DeviceCode => "device_code",
    }
}

fn build_source(cfg: &Config) -> Result<GraphSource, String> {
    let mut opts = crate::wiring::graph_options(cfg).map_err(|e| format!("{e:#}"))?;
    // Cheap: one item per page, few retries, little waiting.
    opts.page_size = 1;
    opts.retry_max_attempts = opts.retry_max_attempts.min(3);
    opts.retry_max_total = opts.retry_max_total.min(Duration::from_secs(20));
    opts.retry_max_wait = opts.retry_max_wait.min(Duration::from_secs(5));
    GraphSource::new(opts).map_err(|e| describe(&e))
}

fn describe(e: &SourceError) -> String {
    match &e.code {
        Some(code) if !e.message.contains(code.as_str()) => format!("{code}: {}", e.message),
        _ => e.message.clone(),
    }
}

fn token_fix(e: &SourceError, delegated: bool) -> String {
    let code = e.code.as_deref().unwrap_or("");
    let fix = match code {
        "AADSTS7000215" | "AADSTS7000222" => {
            "set source.client_secret (or client_secret_file / OUTLAKE_SOURCE__CLIENT_SECRET) to the secret's Value, not its Secret ID; create a new secret if it expired"
        }
        "AADSTS700016" => "set source.client_id to the Application (client) ID of an app registered in this tenant",
        "AADSTS90002" | "AADSTS900023" | "AADSTS90023" => "set source.tenant_id to the Directory (tenant) ID or a verified domain of the tenant",
        "AADSTS7000218" => "this app is a confidential client: set source.client_secret (or client_secret_file)",
        "AADSTS700082" | "AADSTS50173" | "AADSTS70008" | "AADSTS50076" => "sign in again: outlake auth login --config …",
        _ if delegated => "sign in again: outlake auth login --config …",
        _ => "check source.tenant_id, source.client_id and source.client_secret against the app registration",
    };
    fix.to_string()
}

/// Severity and fix for a failed Graph call that needed `permission`.
fn classify(e: &SourceError, permission: &str, delegated: bool) -> (Severity, String) {
    let code = e.code.as_deref().unwrap_or("");
    let denied = code.eq_ignore_ascii_case("ErrorAccessDenied")
        || code.eq_ignore_ascii_case("Authorization_RequestDenied")
        || code.eq_ignore_ascii_case("AccessDenied")
        || e.message.contains("403");
    if code.contains("AADSTS") || (e.kind == SourceErrorKind::Auth && !denied) {
        return (Severity::Setup, token_fix(e, delegated));
    }
    if denied {
        let policy = e.message.contains("AccessPolicy") || e.message.contains("RAOP");
        let fix = if policy {
            "an Exchange application access policy blocks this mailbox: add it to the policy's group, or list other mailboxes in source.mailboxes".to_string()
        } else if delegated {
            format!(
                "missing delegated permission {permission}: add it to source.scopes (and to the app registration), then sign in again with `outlake auth login`"
            )
        } else {
            format!(
                "missing application permission {permission}: Entra admin center → App registrations → your app → API permissions → Add a permission → Microsoft Graph → Application permissions → {permission}, then Grant admin consent"
            )
        };
        return (Severity::Setup, fix);
    }
    match e.kind {
        SourceErrorKind::NoMailbox => (Severity::Setup, "this user has no Exchange Online mailbox: list mailboxes explicitly in source.mailboxes".into()),
        _ => (Severity::Other, "Graph did not answer as expected; try again, and check source.graph_url and the network".into()),
    }
}

fn skip_rest(c: &mut Checks, cfg: &Config, why: &str) {
    for s in &cfg.source.streams {
        c.skip(s, why);
    }
}

fn inbox_message_delta(g: &url::Url, mailbox: &Mailbox) -> url::Url {
    let mut url = urls::message_delta(g, mailbox, "inbox", false);
    url.set_query(Some("$select=id"));
    url
}

/// A mailbox to try the streams on, with a line saying how it was found; `Ok(Err(_))` when
/// no user has a mailbox.
async fn find_mailbox(source: &GraphSource, cfg: &Config) -> Result<Result<(Mailbox, String), String>, SourceError> {
    let g = &cfg.source.graph_url;
    let key = outlake_connectors::graph::source::DIRECTORY_KEY;
    match &cfg.source.mailboxes {
        Mailboxes::Me => {
            let v = source.get_json(urls::me(g), RequestKind::Resolve, key).await?;
            let mb = user_mailbox(&v, true).ok_or_else(|| SourceError::new(SourceErrorKind::Fatal, None, "/me has no id"))?;
            let d = format!("signed in as {}", mb.label());
            Ok(Ok((mb, d)))
        }
        Mailboxes::List(list) => {
            let first = list.first().cloned().unwrap_or_default();
            let v = source.get_json(urls::resolve_user(g, &first), RequestKind::Resolve, key).await?;
            let mb = user_mailbox(&v, false).ok_or_else(|| SourceError::new(SourceErrorKind::Fatal, None, "user has no id"))?;
            let d = format!("User.Read.All: resolved `{first}` ({} configured; trying streams on the first)", list.len());
            Ok(Ok((mb, d)))
        }
        Mailboxes::All => {
            let mut url = urls::api(g, &["users"]);
            url.set_query(Some("$select=id,userPrincipalName&$top=20"));
            let v = source.get_json(url, RequestKind::Users, key).await?;
            let users: Vec<Mailbox> =
                v.get("value").and_then(Value::as_array).map(|a| a.iter().filter_map(|u| user_mailbox(u, false)).collect()).unwrap_or_default();
            let mut tried = 0;
            for u in users {
                tried += 1;
                match source.get_json(urls::probe_inbox(g, &u.id), RequestKind::Probe, &u.id).await {
                    Ok(_) => {
                        let d = format!("User.Read.All: listed users; {} has a mailbox (streams are tried on it)", u.label());
                        return Ok(Ok((u, d)));
                    }
                    Err(e) if e.kind == SourceErrorKind::NoMailbox => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(Err(format!("none of the first {tried} users listed has a mailbox")))
        }
    }
}

fn user_mailbox(v: &Value, via_me: bool) -> Option<Mailbox> {
    Some(Mailbox { id: v.get("id")?.as_str()?.to_string(), upn: v.get("userPrincipalName").and_then(Value::as_str).map(str::to_string), via_me })
}
