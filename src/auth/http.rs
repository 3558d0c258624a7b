//! The HTTP client the `oauth2` crate talks through: an `AsyncHttpClient` over the project's
//! reqwest 0.13 (oauth2 5 itself still depends on reqwest 0.12, so its `reqwest` feature stays
//! off and this adapter keeps one client and one TLS stack).
//!
//! The client never follows redirects (an identity endpoint that redirects is a
//! misconfiguration, and following would re-send a form holding codes or secrets).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[derive(Clone)]
pub struct OAuthHttp(pub reqwest::Client);

impl OAuthHttp {
    pub fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("outlake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(OAuthHttp)
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))
    }
}

/// A transport failure. Its text names the endpoint and the cause, never a request body.
#[derive(Debug)]
pub enum OAuthHttpError {
    Reqwest(reqwest::Error),
    Http(oauth2::http::Error),
}

impl fmt::Display for OAuthHttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // reqwest's message names the URL (no secrets in our URLs) and the cause.
            OAuthHttpError::Reqwest(e) => write!(f, "{}", error_chain(e)),
            OAuthHttpError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for OAuthHttpError {}

impl From<reqwest::Error> for OAuthHttpError {
    fn from(e: reqwest::Error) -> Self {
        OAuthHttpError::Reqwest(e)
    }
}

impl From<oauth2::http::Error> for OAuthHttpError {
    fn from(e: oauth2::http::Error) -> Self {
        OAuthHttpError::Http(e)
    }
}

/// "error sending request for url (…): connection refused": the whole source chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = OAuthHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut b = oauth2::http::Response::builder().status(resp.status()).version(resp.version());
            for (k, v) in resp.headers() {
                b = b.header(k, v);
            }
            Ok(b.body(resp.bytes().await?.to_vec())?)
        })
    }
}
