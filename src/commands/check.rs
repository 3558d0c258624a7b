//! `outlake check`: is this configuration good enough to sync? One line per check, ok or
//! FAILED with a fix; exit 0 when all pass, 2 for configuration, credential or permission
//! problems, 1 for anything else (storage or Graph or the token endpoint unreachable, 5xx after
//! retries).
//!
//! Checks, in order, each cheap (pages of one item, `Prefer: odata.maxpagesize=1`):
//! 1. the configuration loads and validates;
//! 2. storage, as a sync opens it: the sink and checkpoint URLs and `[sink.options]` are
//!    accepted ([`exit::check_storage_config`], exit 2 if not), the lake opens exactly as a
//!    sync opens it ([`crate::wiring::open_lake`]), and one object is written and deleted under
//!    `_staging/` of the sink, and of `checkpoint.url` when set ([`outlake_sinks::probe_store`],
//!    exit 1 if that fails: the store is unreachable, refuses the credentials or is read-only);
//! 3. an access token (client credentials: tenant, client id and secret; delegated: the token
//!    cache and its refresh token);
//! 4. the mailboxes can be found: `mailboxes = "all"` reads one page of `/users` (User.Read.All)
//!    and probes users' inboxes until one has a mailbox; a list resolves its first entry; `/me`
//!    for delegated sign-in;
//! 5. per configured stream, the first page of its delta query for that one mailbox:
//!    `mailFolders/delta` (Mail.Read), `mailFolders/inbox/messages/delta` (Mail.Read),
//!    `calendarView/delta` (Calendars.Read). A 403 names the permission to grant;
//! 6. when `include_folders` / `exclude_folders` are set, that mailbox's whole folder tree: each
//!    pattern that names no folder fails (exit 2), with the folder names it could have meant.
//!
//! Transport failures (connection refused, DNS, TLS, timeout) are told from refusals by the
//! error's kind, never its text, and get advice about the URL and the network, not credentials.

use std::time::Duration;

use outlake_config::folders::WELL_KNOWN_FOLDERS;
use outlake_config::{AuthKind, Config};
use outlake_connectors::{CheckError, CheckMailbox, DIRECTORY_PERMISSION, GraphSource, Refusal, stream_permission};
use outlake_pipeline::model::{Mailbox, Stream};
use outlake_pipeline::scope::{FolderNode, FolderScope};
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
    check_storage(&mut c, &cfg).await;
    let source = match build_source(&cfg, 1) {
        Ok(s) => s,
        Err(e) => {
            c.fail("token", &e, "sign in with `outlake auth login --config …`, or fix the [source] keys named above", Severity::Setup);
            return c.code();
        }
    };
    let delegated = cfg.source.auth.is_delegated();

    // 3. A token.
    match source.check_token().await {
        Ok(()) => {
            c.ok("token", &format!("access token from {} for tenant {}, client {}", cfg.source.authority_url, cfg.source.tenant_id, cfg.source.client_id))
        }
        Err(CheckError { error: e, .. }) => {
            let (sev, fix) = match e.kind {
                SourceErrorKind::Auth => (Severity::Setup, token_fix(&e, delegated)),
                _ => (
                    Severity::Other,
                    format!(
                        "the token endpoint did not answer (a network problem, not the credentials): check that source.authority_url ({}) is right and reachable from this machine, the proxy settings (HTTPS_PROXY, NO_PROXY) and the firewall",
                        cfg.source.authority_url
                    ),
                ),
            };
            c.fail("token", &describe(&e), &fix, sev);
            skip_rest(&mut c, &cfg, "no access token");
            return c.code();
        }
    }

    // 4. One mailbox to try the streams on.
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

    // 5. One cheap call per stream.
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

    // 6. The folder scope, on the same mailbox.
    check_folder_scope(&mut c, &cfg, &mailbox).await;
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

/// The Graph source of a sync, made cheap: `page_size` items per page (1 for the stream
/// checks), few retries, little waiting.
fn build_source(cfg: &Config, page_size: u32) -> Result<GraphSource, String> {
    let window = crate::wiring::run_now().and_then(|now| crate::wiring::calendar_window(cfg, now)).map_err(|e| format!("{e:#}"))?;
    let mut opts = crate::wiring::graph_options(cfg, window).map_err(|e| format!("{e:#}"))?;
    opts.page_size = page_size;
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
        Refusal::Unreachable => (
            Severity::Other,
            "Graph could not be reached (a network problem, not a permission): check source.graph_url, the proxy settings (HTTPS_PROXY, NO_PROXY) and the firewall".into(),
        ),
        Refusal::Other => (Severity::Other, "Graph did not answer as expected; try again, and check source.graph_url and the network".into()),
    }
}

fn skip_rest(c: &mut Checks, cfg: &Config, why: &str) {
    for s in &cfg.source.streams {
        c.skip(s, why);
    }
    if !folder_scope(cfg).is_everything() {
        c.skip("folders", why);
    }
}

/// Storage, as a sync will use it (module docs, step 2).
async fn check_storage(c: &mut Checks, cfg: &Config) {
    if let Err(m) = exit::check_storage_config(cfg) {
        let key = if m.starts_with("checkpoint.url") { "checkpoint.url" } else { "sink.url" };
        c.fail(
            if key == "sink.url" { "sink" } else { "checkpoints" },
            &m,
            &format!(
                "correct {key} (file:///absolute/path with three slashes, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix) or the [sink.options] key named above"
            ),
            Severity::Setup,
        );
        return;
    }
    // Exactly what a sync opens (this creates a local root folder, as a sync would).
    if let Err(e) = crate::wiring::open_lake(cfg).await {
        c.fail("sink", &format!("{e:#}"), &storage_fix("sink.url", &cfg.sink.url), Severity::Other);
        return;
    }
    let roots = [("sink", "sink.url", Some(&cfg.sink.url)), ("checkpoints", "checkpoint.url", cfg.checkpoint.url.as_ref())];
    for (name, key, url) in roots {
        let Some(url) = url else { continue };
        match outlake_sinks::probe_store(url, &cfg.sink.options).await {
            Ok(at) => c.ok(name, &format!("{url}: wrote and deleted {at}")),
            Err(e) => c.fail(name, &e.message, &storage_fix(key, url), Severity::Other),
        }
    }
}

/// What to do about a store that a sync could not write to.
fn storage_fix(key: &str, url: &str) -> String {
    if url.starts_with("file:") {
        format!("create the folder {key} names and make it writable by the user that runs outlake, or set {key} to a writable folder")
    } else {
        format!(
            "check that {key} ({url}) names an existing bucket or container, the endpoint and credentials in [sink.options] or the environment (AWS_*, AZURE_*, GOOGLE_*), and that this machine can reach it (proxy, firewall)"
        )
    }
}

fn folder_scope(cfg: &Config) -> FolderScope {
    FolderScope { include: cfg.source.include_folders.clone(), exclude: cfg.source.exclude_folders.clone() }
}

/// `include_folders` / `exclude_folders` against the mailbox's folder tree (module docs, step 6).
async fn check_folder_scope(c: &mut Checks, cfg: &Config, mailbox: &Mailbox) {
    let scope = folder_scope(cfg);
    if scope.is_everything() {
        return;
    }
    // The whole tree is read: pages of the configured size, not of one item.
    let source = match build_source(cfg, cfg.source.page_size.max(1)) {
        Ok(s) => s,
        Err(e) => {
            c.fail("folders", &e, "fix the [source] keys named above", Severity::Setup);
            return;
        }
    };
    let (folders, well_known) = match source.check_folders(mailbox, &scope).await {
        Ok(t) => t,
        Err(e) => {
            let (sev, fix) = advise(&e, stream_permission(Stream::MailFolders), cfg.source.auth.is_delegated());
            c.fail("folders", &describe(&e.error), &fix, sev);
            return;
        }
    };
    let selection = scope.select(&folders, &well_known);
    if selection.unmatched.is_empty() {
        c.ok("folders", &format!("{} of {} folders of {} selected by the folder patterns", selection.selected.len(), folders.len(), mailbox.label()));
        return;
    }
    for raw in &selection.unmatched {
        let key = if cfg.source.include_folders.iter().any(|p| &p.raw == raw) { "source.include_folders" } else { "source.exclude_folders" };
        let meant = could_have_meant(raw, &folders);
        let detail = if meant.is_empty() {
            let top: Vec<String> = top_level(&folders).into_iter().map(|n| format!("\"{n}\"")).collect();
            format!("{key}: \"{raw}\" names no folder of {}; its top-level folders are {}", mailbox.label(), top.join(", "))
        } else {
            let quoted: Vec<String> = meant.iter().map(|n| format!("\"{n}\"")).collect();
            format!("{key}: \"{raw}\" names no folder of {}; did you mean {}?", mailbox.label(), quoted.join(" or "))
        };
        c.fail(
            "folders",
            &detail,
            &format!(
                "correct \"{raw}\" in {key}: a pattern is a folder path from the top by display name, or starts with a well-known name (inbox, sentitems, drafts, deleteditems, junkemail, archive, …), e.g. \"inbox/Projects\""
            ),
            Severity::Setup,
        );
    }
}

/// The display names of the top-level folders (those whose parent is not in the tree), sorted.
fn top_level(folders: &[FolderNode]) -> Vec<String> {
    let ids: std::collections::HashSet<&str> = folders.iter().map(|f| f.id.as_str()).collect();
    let mut names: Vec<String> = folders.iter().filter(|f| f.parent_id.as_deref().is_none_or(|p| !ids.contains(p))).map(|f| f.display_name.clone()).collect();
    names.sort_by_key(|n| n.to_lowercase());
    names
}

/// Every folder's path from the top (`Inbox/Projects/2024`).
fn folder_paths(folders: &[FolderNode]) -> Vec<String> {
    let by_id: std::collections::HashMap<&str, &FolderNode> = folders.iter().map(|f| (f.id.as_str(), f)).collect();
    folders
        .iter()
        .map(|f| {
            let mut names = vec![f.display_name.as_str()];
            let mut cur = f;
            // Bounded: a damaged tree with a parent cycle still ends.
            while let Some(parent) = cur.parent_id.as_deref().and_then(|p| by_id.get(p)).filter(|_| names.len() < 32) {
                names.push(parent.display_name.as_str());
                cur = parent;
            }
            names.reverse();
            names.join("/")
        })
        .collect()
}

/// Up to three folder paths or well-known names close to `raw` (edit distance, ignoring case).
fn could_have_meant(raw: &str, folders: &[FolderNode]) -> Vec<String> {
    let want = raw.trim().trim_matches('/').to_lowercase();
    let limit = (want.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = WELL_KNOWN_FOLDERS
        .iter()
        .map(|s| s.to_string())
        .chain(folder_paths(folders))
        .map(|cand| (edit_distance(&want, &cand.to_lowercase()), cand))
        .filter(|(d, _)| *d <= limit)
        .collect();
    // Closest first; of equals, a well-known name (listed first) wins.
    scored.sort_by_key(|(d, _)| *d);
    let mut out: Vec<String> = Vec::new();
    for (_, cand) in scored {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&cand)) {
            out.push(cand);
        }
    }
    out.truncate(3);
    out
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: &str, name: &str) -> FolderNode {
        FolderNode { id: id.into(), parent_id: Some(parent.into()), display_name: name.into() }
    }

    #[test]
    fn a_misspelt_folder_pattern_gets_the_names_it_could_have_meant() {
        let tree = vec![node("in", "root", "Inbox"), node("p", "in", "Projects"), node("s", "root", "Sent Items"), node("a", "root", "Archive")];
        assert_eq!(could_have_meant("inbx", &tree), vec!["inbox"]);
        assert_eq!(could_have_meant("Inbox/Projcts", &tree), vec!["Inbox/Projects"]);
        assert_eq!(could_have_meant("Archiv", &tree), vec!["archive"]);
        assert!(could_have_meant("Customers", &tree).is_empty());
        assert_eq!(top_level(&tree), vec!["Archive", "Inbox", "Sent Items"]);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
