//! Delegated access tokens for `sync`: [`CachedTokens`] serves the cached access token and
//! refreshes it 5 minutes before expiry, or at once when Graph answered 401
//! (`force_refresh`). Each refresh stores the rotated refresh token **before** the new access
//! token is handed out, so a crash never leaves the cache holding a spent refresh token.
//!
//! A dead grant (`invalid_grant`: AADSTS70008, 700082, 50173…; `interaction_required`) ends
//! with [`SourceErrorKind::Auth`] and "sign in again: outlake auth login"; it is never retried.
//! Only `temporarily_unavailable` and transport failures are retried, a bounded number of times.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use oauth2::{RefreshToken, RequestTokenError, Scope};
use outlake_config::{Config, Secret};
use outlake_pipeline::source::{SourceError, SourceErrorKind};

use super::cache::{self, TokenCache};
use super::client::{self, MsClient, TokenFailure};
use super::http::OAuthHttp;

/// Refresh this long before the access token expires.
pub const REFRESH_EARLY: Duration = Duration::from_secs(5 * 60);
/// Attempts for one refresh when the failure is transient.
const REFRESH_ATTEMPTS: u32 = 4;

const SIGN_IN_AGAIN: &str = "sign in again: outlake auth login";

pub struct CachedTokens {
    path: PathBuf,
    oauth: MsClient,
    http: OAuthHttp,
    scopes: Vec<String>,
    state: tokio::sync::Mutex<Inner>,
    /// Bumped on every refresh: callers that queued behind a refresh reuse its result.
    generation: AtomicU64,
    retry_base: Duration,
}

struct Inner {
    cache: TokenCache,
    /// Set when the grant was refused for good: later refreshes answer this without asking
    /// the identity platform again (no loops on a dead refresh token).
    dead: Option<SourceError>,
}

impl std::fmt::Debug for CachedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedTokens").field("path", &self.path).field("generation", &self.generation).finish_non_exhaustive()
    }
}

/// Open the token cache for this configuration: it must exist (made by `outlake auth login`)
/// and belong to the configured tenant and app.
pub fn open(cfg: &Config) -> Result<CachedTokens, String> {
    let path = cache::cache_path(cfg)?;
    let cached = cache::load(&path)?.ok_or_else(|| format!("not signed in: no token cache at {}; {SIGN_IN_AGAIN}", path.display()))?;
    if cached.tenant_id != cfg.source.tenant_id || cached.client_id != cfg.source.client_id {
        return Err(format!(
            "the token cache {} was made for another tenant or app (tenant {}, client {}); {SIGN_IN_AGAIN}",
            path.display(),
            cached.tenant_id,
            cached.client_id
        ));
    }
    if cached.authority_url.trim_end_matches('/') != cfg.source.authority_url.as_str().trim_end_matches('/') {
        return Err(format!("the token cache {} was made against another authority ({}); {SIGN_IN_AGAIN}", path.display(), cached.authority_url));
    }
    Ok(CachedTokens {
        path,
        oauth: client::ms_client(cfg)?,
        http: super::http::new_client()?,
        scopes: client::refresh_scopes(cfg),
        state: tokio::sync::Mutex::new(Inner { cache: cached, dead: None }),
        generation: AtomicU64::new(0),
        retry_base: Duration::from_millis(500),
    })
}

impl CachedTokens {
    /// A valid access token. Without `force_refresh` the cached one is returned while it has
    /// more than [`REFRESH_EARLY`] left; with it (after a 401) a new one is fetched, unless a
    /// refresh finished while this call waited for the lock.
    pub async fn access_token(&self, force_refresh: bool) -> Result<Secret, SourceError> {
        let seen = self.generation.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        let fresh_enough = state.cache.access_expires_at - chrono::Duration::from_std(REFRESH_EARLY).unwrap_or_default() > Utc::now();
        let refreshed_meanwhile = self.generation.load(Ordering::Acquire) != seen;
        if (!force_refresh && fresh_enough) || (force_refresh && refreshed_meanwhile) {
            return Ok(state.cache.access_token.clone());
        }
        if let Some(e) = &state.dead {
            return Err(e.clone());
        }
        let next = match self.refresh(&state.cache).await {
            Ok(n) => n,
            Err(e) => {
                if e.kind == SourceErrorKind::Auth {
                    state.dead = Some(e.clone());
                }
                return Err(e);
            }
        };
        // Save first: the old refresh token may be spent; the new one must be on disk before
        // anything uses the new access token.
        cache::save(&self.path, &next).map_err(|e| SourceError::new(SourceErrorKind::Fatal, None, format!("{e}; the new tokens could not be kept")))?;
        state.cache = next;
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::debug!(expires_at = %state.cache.access_expires_at, forced = force_refresh, "refreshed the delegated access token");
        Ok(state.cache.access_token.clone())
    }

    async fn refresh(&self, current: &TokenCache) -> Result<TokenCache, SourceError> {
        let Some(rt) = current.refresh_token.as_ref() else {
            return Err(SourceError::new(
                SourceErrorKind::Auth,
                None,
                format!("the access token expired and the cache holds no refresh token (was offline_access granted?); {SIGN_IN_AGAIN}"),
            ));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .oauth
                .exchange_refresh_token(&RefreshToken::new(rt.expose().to_string()))
                .add_scopes(self.scopes.iter().cloned().map(Scope::new))
                .request_async(&self.http)
                .await;
            let retryable_msg = match result {
                Ok(resp) => return Ok(client::cache_after_refresh(current, &resp, &self.scopes, Utc::now())),
                Err(RequestTokenError::ServerResponse(r)) => match client::classify_basic(&r) {
                    TokenFailure::SignInAgain { code } => {
                        return Err(SourceError::new(
                            SourceErrorKind::Auth,
                            Some(code.clone()),
                            format!("the refresh token was refused ({code}): the sign-in expired or was revoked; {SIGN_IN_AGAIN}"),
                        ));
                    }
                    TokenFailure::Client { code, hint } => {
                        return Err(SourceError::new(
                            SourceErrorKind::Auth,
                            Some(code.clone()),
                            format!("the token endpoint refused the app ({code}): {hint}"),
                        ));
                    }
                    TokenFailure::Other { code } => {
                        return Err(SourceError::new(
                            SourceErrorKind::Auth,
                            Some(code.clone()),
                            format!("the token endpoint refused the refresh ({code}); {SIGN_IN_AGAIN}"),
                        ));
                    }
                    TokenFailure::Transient { code } => format!("the identity platform is temporarily unavailable ({code})"),
                },
                Err(RequestTokenError::Request(e)) => format!("cannot reach the token endpoint: {}", super::http::error_chain(&e)),
                Err(RequestTokenError::Parse(e, _)) => {
                    return Err(SourceError::new(
                        SourceErrorKind::Fatal,
                        None,
                        format!("the token endpoint's answer to a refresh is not a token response ({})", e.path()),
                    ));
                }
                Err(RequestTokenError::Other(m)) => {
                    return Err(SourceError::new(SourceErrorKind::Fatal, None, format!("the token endpoint's answer to a refresh is unusable: {m}")));
                }
            };
            if attempt >= REFRESH_ATTEMPTS {
                return Err(SourceError::new(
                    SourceErrorKind::Fatal,
                    None,
                    format!("could not refresh the access token after {attempt} attempts: {retryable_msg}"),
                ));
            }
            let wait = self.retry_base * 2u32.pow(attempt - 1);
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, "refreshing the access token failed, retrying: {retryable_msg}");
            tokio::time::sleep(wait).await;
        }
    }
}

/// What `sync` asks for: the connector calls this before each Graph request, and with
/// `force_refresh = true` once after a 401.
#[async_trait::async_trait]
impl outlake_connectors::DelegatedTokens for CachedTokens {
    async fn access_token(&self, force_refresh: bool) -> Result<Secret, SourceError> {
        CachedTokens::access_token(self, force_refresh).await
    }
}

#[cfg(test)]
mod tests {
    //! Refresh behaviour against the simulator's identity platform: rotation, early refresh,
    //! forced refresh, dead grants. Signs in with the device-code flow auto-approved.
    use super::*;
    use outlake_simulator::{SimConfig, Simulator};

    struct Fixture {
        sim: Simulator,
        _dir: tempfile::TempDir,
        cfg: Config,
    }

    async fn signed_in(sim_cfg: SimConfig) -> Fixture {
        let sim = Simulator::start(SimConfig { device_code_auto_approve: true, ..sim_cfg }).await.expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[source]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nauthority_url = \"{}\"\ngraph_url = \"{}\"\nauth = \"device_code\"\ntoken_cache = \"{}\"\n\n[sink]\nurl = \"file://{}\"\n",
            sim.tenant_id(),
            sim.client_id(),
            sim.url(),
            sim.url(),
            dir.path().join("tokens.json").display(),
            dir.path().join("lake").display()
        );
        let path = dir.path().join("outlake.toml");
        std::fs::write(&path, toml).unwrap();
        let cfg = outlake_config::load(Some(&path)).expect("config loads");
        crate::auth::device::login(&cfg, true, Duration::from_secs(30)).await.expect("device sign-in (auto-approved)");
        Fixture { sim, _dir: dir, cfg }
    }

    fn refreshes(sim: &Simulator) -> u64 {
        sim.stats()["token_requests"]["refresh_token"].as_u64().unwrap_or(0)
    }

    fn on_disk(cfg: &Config) -> TokenCache {
        cache::load(&cache::cache_path(cfg).unwrap()).unwrap().expect("cache exists")
    }

    async fn raw_refresh(sim: &Simulator, rt: &str) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/{}/oauth2/v2.0/token", sim.url(), sim.tenant_id()))
            .form(&[("grant_type", "refresh_token"), ("client_id", &sim.client_id()), ("refresh_token", rt)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    #[tokio::test]
    async fn fresh_token_is_served_from_the_cache() {
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(3600)), ..Default::default() }).await;
        let before = on_disk(&f.cfg);
        let t = open(&f.cfg).unwrap();
        let at = t.access_token(false).await.unwrap();
        assert_eq!(at.expose(), before.access_token.expose());
        assert_eq!(refreshes(&f.sim), 0);
    }

    #[tokio::test]
    async fn refreshes_before_expiry_and_rotates_the_refresh_token() {
        // 2-minute tokens are inside the 5-minute margin: every call refreshes.
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(120)), ..Default::default() }).await;
        let first = on_disk(&f.cfg);
        let t = open(&f.cfg).unwrap();

        let a1 = t.access_token(false).await.unwrap();
        let second = on_disk(&f.cfg);
        assert_ne!(a1.expose(), first.access_token.expose());
        assert_eq!(a1.expose(), second.access_token.expose(), "the new access token is saved before it is used");
        let rt1 = first.refresh_token.clone().unwrap();
        let rt2 = second.refresh_token.clone().unwrap();
        assert_ne!(rt1.expose(), rt2.expose(), "the refresh token rotated");

        let a2 = t.access_token(false).await.unwrap();
        let third = on_disk(&f.cfg);
        assert_eq!(a2.expose(), third.access_token.expose());
        let rt3 = third.refresh_token.clone().unwrap();
        assert_ne!(rt2.expose(), rt3.expose());
        assert_eq!(refreshes(&f.sim), 2);

        // The spent refresh tokens no longer work; the newest does.
        let (status, body) = raw_refresh(&f.sim, rt1.expose()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
        let (status, _) = raw_refresh(&f.sim, rt2.expose()).await;
        assert_eq!(status, 400);
        let (status, _) = raw_refresh(&f.sim, rt3.expose()).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn forced_refresh_after_401_and_coalescing() {
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(3600)), ..Default::default() }).await;
        let t = std::sync::Arc::new(open(&f.cfg).unwrap());
        let old = t.access_token(false).await.unwrap();
        let new = t.access_token(true).await.unwrap();
        assert_ne!(old.expose(), new.expose());
        assert_eq!(refreshes(&f.sim), 1);
        // Several callers hit 401 at once: one refresh serves them all... or at most one each
        // when they arrive one after another; never a loop.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.access_token(true).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let n = refreshes(&f.sim);
        assert!((2..=5).contains(&n), "{n} refreshes");
    }

    #[tokio::test]
    async fn revoked_refresh_token_is_an_auth_error_without_retries() {
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(3600)), ..Default::default() }).await;
        let t = open(&f.cfg).unwrap();
        f.sim.revoke_refresh_tokens();
        let e = t.access_token(true).await.unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Auth);
        assert!(e.message.contains("outlake auth login"), "{}", e.message);
        assert!(e.message.contains("AADSTS70008"), "{}", e.message);
        assert_eq!(refreshes(&f.sim), 1, "a dead grant is not retried");
        // Asked again: the same answer, without asking the identity platform again.
        let e2 = t.access_token(true).await.unwrap_err();
        assert_eq!(e2.kind, SourceErrorKind::Auth);
        assert_eq!(refreshes(&f.sim), 1, "a dead grant is not retried");
        let cache = on_disk(&f.cfg);
        let shown = format!("{e} {e:?} {cache:?}");
        assert!(!shown.contains(cache.refresh_token.unwrap().expose()));
        assert!(!shown.contains(cache.access_token.expose()));
    }

    #[tokio::test]
    async fn refresh_token_expired_by_inactivity() {
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(60)), ..Default::default() }).await;
        f.sim.reconfigure(|c| c.refresh_token_lifetime = Duration::ZERO);
        let t = open(&f.cfg).unwrap();
        let e = t.access_token(false).await.unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Auth);
        // AADSTS700082 (or 70008 should the first answer be lost in transit and the retry meet the
        // now-dead token).
        assert!(e.message.contains("AADSTS700") && e.message.contains("sign in again: outlake auth login"), "{}", e.message);
    }

    #[tokio::test]
    async fn cache_for_another_app_is_refused() {
        let f = signed_in(SimConfig::default()).await;
        let mut other = f.cfg.clone();
        other.source.client_id = "11111111-1111-1111-1111-111111111111".into();
        other.source.token_cache = f.cfg.source.token_cache.clone();
        let e = open(&other).unwrap_err();
        assert!(e.contains("outlake auth login"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_identity_platform_is_retried_then_fatal() {
        let f = signed_in(SimConfig { token_lifetime: Some(Duration::from_secs(3600)), ..Default::default() }).await;
        let mut t = open(&f.cfg).unwrap();
        t.retry_base = Duration::from_millis(1);
        // Point the refresher at a port nobody listens on.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let mut cfg = f.cfg.clone();
        cfg.source.authority_url = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        t.oauth = client::ms_client(&cfg).unwrap();
        let e = t.access_token(true).await.unwrap_err();
        assert_eq!(e.kind, SourceErrorKind::Fatal);
        assert!(e.message.contains(&format!("after {REFRESH_ATTEMPTS} attempts")), "{}", e.message);
    }
}
