//! `outlake auth`: delegated sign-in (authorization code + PKCE on a loopback redirect, or
//! device code), the token cache, and the access tokens `sync` uses with delegated auth.
//!
//! - [`login_code`]: `auth login` (browser, loopback listener).
//! - [`device`]: `auth login --device-code`.
//! - [`cache`]: the token cache file (0600, atomic replace, default under the user's config dir).
//! - [`tokens`]: [`tokens::CachedTokens`], refreshes before expiry and on 401, rotates the
//!   refresh token.
//!
//! Secrets (client secret, codes, PKCE verifier, tokens) are held in `Secret` or oauth2's
//! redacting types; no message, log line or Debug output carries one.

pub mod cache;
mod client;
pub mod device;
mod http;
pub mod login_code;
pub mod tokens;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use outlake_config::AuthKind;

use crate::cli::ConfigArg;
use crate::exit;

#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Sign in as a user (delegated access): opens the identity platform's sign-in page and
    /// waits for its redirect on the configured loopback redirect URI, or uses the device-code
    /// flow. Stores the tokens in the token cache.
    #[command(after_help = "Examples:
  outlake auth login --config outlake.toml
  outlake auth login --config outlake.toml --no-browser      # print the sign-in address (e.g. over SSH)
  outlake auth login --config outlake.toml --device-code     # enter a code on another device")]
    Login {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the sign-in address without trying to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Sign in on another device: print a code to enter at the verification page
        /// (for machines without a browser). Also used when source.auth = "device_code".
        #[arg(long)]
        device_code: bool,
        /// Give up waiting for the sign-in after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Show who is signed in, the granted scopes and token lifetimes (never a token).
    #[command(after_help = "Examples:
  outlake auth status --config outlake.toml")]
    Status {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Forget the signed-in user: remove the token cache.
    #[command(after_help = "Examples:
  outlake auth logout --config outlake.toml")]
    Logout {
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Why a sign-in ended without tokens; each maps to an exit code.
#[derive(Debug)]
pub enum LoginError {
    /// The configuration cannot work (exit 2).
    Config(String),
    /// The identity platform or the user said no, or the wait timed out (exit 2).
    Auth(String),
    /// Local trouble: the listener, the cache file, the network (exit 1).
    Failure(String),
}

impl LoginError {
    fn report(&self) -> u8 {
        match self {
            LoginError::Config(m) | LoginError::Auth(m) => {
                eprintln!("error: {m}");
                exit::CONFIG_OR_AUTH
            }
            LoginError::Failure(m) => {
                eprintln!("error: {m}");
                exit::FAILURE
            }
        }
    }
}

pub async fn run(cmd: AuthCommand) -> u8 {
    match cmd {
        AuthCommand::Login { config, no_browser, device_code, timeout_secs } => {
            let cfg = match crate::commands::load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !cfg.source.auth.is_delegated() {
                eprintln!(
                    "error: source.auth is \"client_credentials\" (app-only): there is no user to sign in; set auth = \"authorization_code\" or \"device_code\" for delegated access"
                );
                return exit::CONFIG_OR_AUTH;
            }
            let timeout = Duration::from_secs(timeout_secs.max(1));
            let result = if device_code || cfg.source.auth == AuthKind::DeviceCode {
                device::login(&cfg, no_browser, timeout).await
            } else {
                login_code::login(&cfg, no_browser, timeout).await
            };
            match result {
                Ok(()) => exit::OK,
                Err(e) => e.report(),
            }
        }
        AuthCommand::Status { config } => {
            let cfg = match crate::commands::load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            status(&cfg)
        }
        AuthCommand::Logout { config } => {
            let cfg = match crate::commands::load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let path = match cache::cache_path(&cfg) {
                Ok(p) => p,
                Err(m) => return LoginError::Config(m).report(),
            };
            match cache::remove(&path) {
                Ok(true) => {
                    println!("Signed out: removed {}", path.display());
                    exit::OK
                }
                Ok(false) => {
                    println!("Not signed in: there is no token cache at {}", path.display());
                    exit::OK
                }
                Err(m) => LoginError::Failure(m).report(),
            }
        }
    }
}

fn status(cfg: &outlake_config::Config) -> u8 {
    let path = match cache::cache_path(cfg) {
        Ok(p) => p,
        Err(m) => return LoginError::Config(m).report(),
    };
    let c = match cache::load(&path) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return LoginError::Auth(format!("not signed in: there is no token cache at {}; sign in with: outlake auth login", path.display())).report();
        }
        Err(m) => return LoginError::Auth(m).report(),
    };
    let now = Utc::now();
    println!("Signed in as:    {}", account_label(&c.account));
    if let Some(id) = &c.account.id {
        println!("User id:         {id}");
    }
    println!("Tenant:          {}", c.tenant_id);
    println!("App (client id): {}", c.client_id);
    if c.tenant_id != cfg.source.tenant_id || c.client_id != cfg.source.client_id {
        println!("                 (not the tenant/app in this configuration: sign in again: outlake auth login)");
    }
    println!("Signed in:       {} ({} ago, {})", c.signed_in_at.format("%Y-%m-%d %H:%M:%SZ"), ago(now - c.signed_in_at), c.flow);
    println!("Granted scopes:  {}", if c.scopes.is_empty() { "(none reported)".to_string() } else { c.scopes.join(" ") });
    let left = c.access_expires_at - now;
    if left > chrono::Duration::zero() {
        println!("Access token:    expires {} (in {})", c.access_expires_at.format("%Y-%m-%d %H:%M:%SZ"), ago(left));
    } else {
        println!("Access token:    expired {} ({} ago; sync refreshes it)", c.access_expires_at.format("%Y-%m-%d %H:%M:%SZ"), ago(-left));
    }
    match &c.refresh_token {
        Some(_) => println!(
            "Refresh token:   received {} ({} ago; it lapses after 90 days without use)",
            c.refresh_token_issued_at.format("%Y-%m-%d %H:%M:%SZ"),
            ago(now - c.refresh_token_issued_at)
        ),
        None => println!("Refresh token:   none (offline_access not granted: sign in again when the access token expires)"),
    }
    println!("Token cache:     {}", path.display());
    exit::OK
}

fn ago(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub(crate) fn account_label(a: &cache::Account) -> String {
    match (&a.name, &a.upn, &a.id) {
        (Some(n), Some(u), _) => format!("{n} <{u}>"),
        (None, Some(u), _) => u.clone(),
        (Some(n), None, Some(id)) => format!("{n} (id {id})"),
        (None, None, Some(id)) => format!("user id {id}"),
        _ => "(account unknown)".to_string(),
    }
}

pub(crate) fn report_signed_in(c: &cache::TokenCache, path: &Path) {
    eprintln!("Signed in as {}. Tokens saved to {}", account_label(&c.account), path.display());
    if c.refresh_token.is_none() {
        eprintln!("warning: no refresh token was issued (add offline_access to source.scopes); sync works until the access token expires");
    }
}

/// Best effort: hand the address to the desktop's opener. Failing to open is not an error;
/// the address is printed anyway.
pub(crate) fn open_browser(url: &str) {
    let candidates: &[(&str, &[&str])] = if cfg!(target_os = "macos") {
        &[("open", &[])]
    } else if cfg!(windows) {
        &[("rundll32", &["url.dll,FileProtocolHandler"])]
    } else {
        &[("xdg-open", &[]), ("sensible-browser", &[])]
    };
    for (prog, pre) in candidates {
        let spawned = std::process::Command::new(prog)
            .args(*pre)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
    tracing::debug!("no browser opener found; open the printed address by hand");
}
