//! Access tokens for Graph.
//!
//! Contract:
//! - App-only (`client_credentials`): one token is cached and shared; it is renewed ahead of
//!   expiry (at `expires_in − min(5 min, 10 % of the lifetime)`), and on demand when Graph
//!   refuses it (401 `InvalidAuthenticationToken`) — at most once per refused token, however
//!   many requests saw the refusal at the same time.
//! - The token endpoint's refusals (`invalid_client`, `unauthorized_client`, `invalid_grant`,
//!   `invalid_request`, `invalid_scope`, …) are never retried: they become
//!   `SourceErrorKind::Auth` naming the AADSTS code and the setting to fix. Only
//!   `temporarily_unavailable`, transport failures and unreadable (non-JSON) answers are retried.
//! - Delegated: the binary's [`DelegatedTokens`] provides tokens; a refused token is replaced by
//!   asking it with `force_refresh = true`.
//! - Secrets and tokens stay in [`Secret`]; no error or log line contains one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RequestTokenError, Scope, TokenResponse, TokenUrl};
use outlake_config::Secret;
use outlake_pipeline::source::{SourceError, SourceErrorKind};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::errors::TokenError;
use super::oauth_http::OAuthHttp;
use super::options::{AuthMode, DelegatedTokens, GraphOptions};
use super::urls;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

type CcClient = BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

struct ClientCredentials {
    client: CcClient,
    http: OAuthHttp,
    cached: Mutex<Option<Cached>>,
}

enum Inner {
    /// Boxed: the oauth2 client is large, and one provider lives as long as the source.
    ClientCredentials(Box<ClientCredentials>),
    Delegated(Arc<dyn DelegatedTokens>),
}

/// Hands out access tokens; see the module contract.
pub struct TokenProvider {
    inner: Inner,
    /// Token-endpoint requests made (app-only), for reports and tests.
    requests: AtomicU64,
}

struct Failure {
    transient: bool,
    error: SourceError,
}

impl TokenProvider {
    pub fn new(opts: &GraphOptions, http: reqwest::Client) -> Result<Self, SourceError> {
        let inner = match &opts.auth {
            AuthMode::Delegated { tokens } => Inner::Delegated(tokens.clone()),
            AuthMode::ClientCredentials => {
                let secret = opts.client_secret.as_ref().filter(|s| !s.is_empty()).ok_or_else(|| {
                    SourceError::new(SourceErrorKind::Auth, None, "app-only auth needs a client secret: set client_secret or OUTLAKE_SOURCE__CLIENT_SECRET")
                })?;
                let endpoint = urls::token_endpoint(&opts.authority_url, &opts.tenant_id);
                let token_url = TokenUrl::from_url(endpoint);
                let client = BasicClient::new(ClientId::new(opts.client_id.clone()))
                    .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                    .set_auth_type(AuthType::RequestBody)
                    .set_token_uri(token_url);
                Inner::ClientCredentials(Box::new(ClientCredentials { client, http: OAuthHttp(http), cached: Mutex::new(None) }))
            }
        };
        Ok(TokenProvider { inner, requests: AtomicU64::new(0) })
    }

    /// Token-endpoint requests made so far (app-only).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A token that is valid now (cached, or renewed ahead of expiry).
    pub async fn token(&self) -> Result<Secret, SourceError> {
        match &self.inner {
            Inner::Delegated(t) => t.access_token(false).await,
            Inner::ClientCredentials(cc) => {
                let mut cached = cc.cached.lock().await;
                if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
                    return Ok(c.token.clone());
                }
                let fresh = self.fetch(cc).await?;
                let token = fresh.token.clone();
                *cached = Some(fresh);
                Ok(token)
            }
        }
    }

    /// Graph refused `rejected`: get a different token (unless another request already did).
    pub async fn refresh(&self, rejected: &Secret) -> Result<Secret, SourceError> {
        match &self.inner {
            Inner::Delegated(t) => t.access_token(true).await,
            Inner::ClientCredentials(cc) => {
                let mut cached = cc.cached.lock().await;
                if let Some(c) = cached.as_ref().filter(|c| c.token != *rejected && Instant::now() < c.refresh_at) {
                    return Ok(c.token.clone());
                }
                let fresh = self.fetch(cc).await?;
                let token = fresh.token.clone();
                *cached = Some(fresh);
                Ok(token)
            }
        }
    }

    async fn fetch(&self, cc: &ClientCredentials) -> Result<Cached, SourceError> {
        let once = || async {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let resp = cc
                .client
                .exchange_client_credentials()
                .add_scope(Scope::new(GRAPH_SCOPE.to_string()))
                .request_async(&cc.http)
                .await
                .map_err(classify_token_error)?;
            let lifetime = resp.expires_in().unwrap_or(Duration::from_secs(3599));
            let margin = (lifetime / 10).min(Duration::from_secs(300));
            Ok::<_, Failure>(Cached { token: Secret::new(resp.access_token().secret().clone()), refresh_at: started + lifetime.saturating_sub(margin) })
        };
        once.retry(
            ExponentialBuilder::default().with_min_delay(Duration::from_millis(500)).with_max_delay(Duration::from_secs(10)).with_max_times(3).with_jitter(),
        )
        .sleep(tokio::time::sleep)
        .when(|f: &Failure| f.transient)
        .await
        .map_err(|f| f.error)
    }
}

fn classify_token_error<RE: std::error::Error + 'static>(e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>) -> Failure {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let t = TokenError::from_parts(r.error().as_ref().to_string(), r.error_description().cloned(), vec![]);
            Failure { transient: t.is_transient(), error: t.to_source_error(false) }
        }
        RequestTokenError::Parse(_, body) => match TokenError::parse(&body) {
            Some(t) => Failure { transient: t.is_transient(), error: t.to_source_error(false) },
            None => Failure {
                transient: true,
                error: SourceError::new(
                    SourceErrorKind::Auth,
                    None,
                    "the token endpoint sent an answer that is not a token response; check authority_url and tenant_id",
                ),
            },
        },
        RequestTokenError::Request(re) => {
            let mut msg = re.to_string();
            let mut src = re.source();
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            Failure {
                transient: true,
                error: SourceError::new(
                    SourceErrorKind::Auth,
                    None,
                    format!("could not reach the token endpoint ({msg}); check authority_url and the network"),
                ),
            }
        }
        RequestTokenError::Other(m) => Failure { transient: true, error: SourceError::new(SourceErrorKind::Auth, None, format!("token request failed: {m}")) },
    }
}
