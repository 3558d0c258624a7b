//! The HTTP client the `oauth2` crate talks through: the connectors' `AsyncHttpClient` adapter
//! over the project's reqwest 0.13 (oauth2 5 itself still depends on reqwest 0.12, so its
//! `reqwest` feature stays off and one client and one TLS stack serve everything).
//!
//! The client never follows redirects (an identity endpoint that redirects is a
//! misconfiguration, and following would re-send a form holding codes or secrets).

use std::time::Duration;

pub use outlake_connectors::{OAuthHttp, OAuthHttpError};

pub fn new_client() -> Result<OAuthHttp, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(60))
        .user_agent(concat!("outlake/", env!("CARGO_PKG_VERSION")))
        .build()
        .map(OAuthHttp)
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// "error sending request for url (…): connection refused": the whole source chain. Transport
/// errors name the URL (no secrets in outlake's URLs) and the cause, never a request body.
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
