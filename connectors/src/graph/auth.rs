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
//! - A token endpoint that cannot be reached (connection refused, DNS, TLS, timeout: told by
//!   the error's kind, [`is_transport`], never its text) is `SourceErrorKind::Fatal` naming the
//!   endpoint and the network settings to check: the run stops with exit 1, not with the
//!   credentials advice of exit 2.
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
use super::oauth_http::{OAuthHttp, OAuthHttpError};
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
    /// The token endpoint's URL, for messages.
    endpoint: String,
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
                let shown = endpoint.to_string();
                let token_url = TokenUrl::from_url(endpoint);
                let client = BasicClient::new(ClientId::new(opts.client_id.clone()))
                    .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                    .set_auth_type(AuthType::RequestBody)
                    .set_token_uri(token_url);
                Inner::ClientCredentials(Box::new(ClientCredentials { client, endpoint: shown, http: OAuthHttp(http), cached: Mutex::new(None) }))
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
                .map_err(|e| classify_token_error(&cc.endpoint, e))?;
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

/// Did the request fail without an answer (connection refused, DNS, TLS, timeout, a connection
/// dropped mid-answer)? Decided by the error's type and kind along its source chain, never by
/// its text. Only a request that could not be built (reqwest's builder errors, an invalid
/// `http` request) is not a transport failure.
pub(crate) fn is_transport(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        // `OAuthHttpError` is transparent: its `source()` skips the reqwest error it wraps.
        let wrapped = match err.downcast_ref::<OAuthHttpError>() {
            Some(OAuthHttpError::Reqwest(r)) => Some(r),
            Some(OAuthHttpError::Http(_)) => return false,
            None => err.downcast_ref::<reqwest::Error>(),
        };
        if let Some(r) = wrapped {
            if r.is_builder() {
                return false;
            }
            if r.is_connect() || r.is_timeout() || r.is_request() || r.is_body() || r.is_decode() {
                return true;
            }
        }
        if err.downcast_ref::<oauth2::http::Error>().is_some() {
            return false;
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn classify_token_error<RE: std::error::Error + 'static>(endpoint: &str, e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>) -> Failure {
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
            if is_transport(&re) {
                // No answer at all: the network, not the credentials. `Fatal`, not `Auth`: the run
                // stops (exit 1), and nobody is sent to check a secret that was never read.
                Failure {
                    transient: true,
                    error: SourceError::new(
                        SourceErrorKind::Fatal,
                        None,
                        format!(
                            "could not reach the token endpoint {endpoint} ({msg}); this is a network problem, not a credential one: check source.authority_url, the proxy settings (HTTPS_PROXY, NO_PROXY) and the firewall"
                        ),
                    ),
                }
            } else {
                // The request could not even be built (an unusable authority_url or tenant_id).
                Failure {
                    transient: false,
                    error: SourceError::new(
                        SourceErrorKind::Auth,
                        None,
                        format!("could not build the token request for {endpoint} ({msg}); check source.authority_url and source.tenant_id"),
                    ),
                }
            }
        }
        RequestTokenError::Other(m) => Failure { transient: true, error: SourceError::new(SourceErrorKind::Auth, None, format!("token request failed: {m}")) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Refused = RequestTokenError<OAuthHttpError, oauth2::basic::BasicErrorResponse>;

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Regression: a token endpoint on a closed port was an `Auth` error (exit 2) whose advice
    /// sent people to check the tenant, client id and secret.
    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_a_network_failure_not_a_credential_one() {
        let sent = reqwest::Client::new().post(format!("http://127.0.0.1:{}/t/oauth2/v2.0/token", closed_port())).send().await.unwrap_err();
        assert!(is_transport(&sent));
        let f = classify_token_error("http://127.0.0.1:1/t/oauth2/v2.0/token", Refused::Request(OAuthHttpError::Reqwest(sent)));
        assert!(f.transient);
        assert_eq!(f.error.kind, SourceErrorKind::Fatal, "{}", f.error.message);
        assert!(f.error.message.contains("source.authority_url") && f.error.message.contains("network"), "{}", f.error.message);
        assert!(!f.error.message.contains("client_secret"), "{}", f.error.message);
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_not_a_transport_failure() {
        let built = reqwest::Client::new().get("http://exa mple.invalid/").send().await.unwrap_err();
        assert!(built.is_builder(), "{built}");
        assert!(!is_transport(&built));
        let f = classify_token_error("x", Refused::Request(OAuthHttpError::Reqwest(built)));
        assert_eq!(f.error.kind, SourceErrorKind::Auth);
        assert!(!f.transient);
    }

    #[test]
    fn refusals_by_the_token_endpoint_stay_credential_errors() {
        let refused = oauth2::basic::BasicErrorResponse::new(
            oauth2::basic::BasicErrorResponseType::InvalidClient,
            Some("AADSTS7000215: Invalid client secret provided.".into()),
            None,
        );
        let f = classify_token_error("x", Refused::ServerResponse(refused));
        assert!(!f.transient);
        assert_eq!(f.error.kind, SourceErrorKind::Auth);
        assert_eq!(f.error.code.as_deref(), Some("AADSTS7000215"));
    }
}
