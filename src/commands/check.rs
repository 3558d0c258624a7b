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

use outlake_config::{AuthKind, Config};
use outlake_connectors::{CheckError, CheckMailbox, DIRECTORY_PERMISSION, GraphSource, Refusal, stream_permission};
use outlake_pipeline::model::{Mailbox, Stream};
use outlake_pipeline::source::{SourceError, SourceErrorKind};

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
        Err(CheckError { error: e, .. }) => {
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
    let mailbox = match source.check_mailbox().await.map(found) {
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
            let (sev, fix) = advise(&e, DIRECTORY_PERMISSION, delegated);
            c.fail("mailboxes", &describe(&e.error), &fix, sev);
            skip_rest(&mut c, &cfg, "no mailbox to try");
            return c.code();
        }
    };

    // 4. One cheap call per stream.
    for name in &cfg.source.streams {
        let Some(stream) = Stream::parse(name) else {
            c.skip(name, "unknown stream");
            continue;
        };
        let permission = stream_permission(stream);
        match source.check_stream(&mailbox, stream).await {
            Ok(n) => {
                c.ok(name, &format!("{permission}: first delta page of {} read ({n} item{})", mailbox.label(), if n == 1 { "" } else { "s" }));
            }
            Err(e) => {
                let (sev, fix) = advise(&e, permission, delegated);
                c.fail(name, &describe(&e.error), &fix, sev);
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
    let window = crate::wiring::run_now().and_then(|now| crate::wiring::calendar_window(cfg, now)).map_err(|e| format!("{e:#}"))?;
    let mut opts = crate::wiring::graph_options(cfg, window).map_err(|e| format!("{e:#}"))?;
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
fn advise(e: &CheckError, permission: &str, delegated: bool) -> (Severity, String) {
    match e.refusal {
        Refusal::Credentials => (Severity::Setup, token_fix(&e.error, delegated)),
        Refusal::AccessPolicy => (
            Severity::Setup,
            "an Exchange application access policy blocks this mailbox: add it to the policy's group, or list other mailboxes in source.mailboxes".to_string(),
        ),
        Refusal::Permission if delegated => (
            Severity::Setup,
            format!(
                "missing delegated permission {permission}: add it to source.scopes (and to the app registration), then sign in again with `outlake auth login`"
            ),
        ),
        Refusal::Permission => (
            Severity::Setup,
            format!(
                "missing application permission {permission}: Entra admin center → App registrations → your app → API permissions → Add a permission → Microsoft Graph → Application permissions → {permission}, then Grant admin consent"
            ),
        ),
        Refusal::NoMailbox => (Severity::Setup, "this user has no Exchange Online mailbox: list mailboxes explicitly in source.mailboxes".into()),
        Refusal::Other => (Severity::Other, "Graph did not answer as expected; try again, and check source.graph_url and the network".into()),
    }
}

fn skip_rest(c: &mut Checks, cfg: &Config, why: &str) {
    for s in &cfg.source.streams {
        c.skip(s, why);
    }
}

/// The mailbox to try the streams on, with a line saying how it was found; `Err` when no user
/// has a mailbox.
fn found(m: CheckMailbox) -> Result<(Mailbox, String), String> {
    match m {
        CheckMailbox::Me(mb) => {
            let d = format!("signed in as {}", mb.label());
            Ok((mb, d))
        }
        CheckMailbox::Listed { entry, listed, mailbox } => {
            Ok((mailbox, format!("{DIRECTORY_PERMISSION}: resolved `{entry}` ({listed} configured; trying streams on the first)")))
        }
        CheckMailbox::Discovered(mb) => {
            let d = format!("{DIRECTORY_PERMISSION}: listed users; {} has a mailbox (streams are tried on it)", mb.label());
            Ok((mb, d))
        }
        CheckMailbox::NoneFound { tried } => Err(format!("none of the first {tried} users listed has a mailbox")),
    }
}
