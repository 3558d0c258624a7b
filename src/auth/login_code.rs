//! `outlake auth login`: the authorization-code flow with PKCE and a loopback listener.
//!
//! 1. Bind the redirect URI's port on loopback (before anything is printed, so the browser
//!    cannot arrive first).
//! 2. Print the authorize URL (PKCE S256 challenge, random `state`), open a browser unless
//!    told not to.
//! 3. Serve the redirect: check `state`, exchange the code with the verifier, store the
//!    tokens, answer the browser with a short page.

use std::net::SocketAddr;
use std::time::Duration;

use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, Scope};
use outlake_config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::{self, TokenFailure};
use super::{LoginError, cache};

pub async fn login(cfg: &Config, no_browser: bool, timeout: Duration) -> Result<(), LoginError> {
    let oauth = client::ms_client(cfg).map_err(LoginError::Config)?;
    let http = super::http::new_client().map_err(LoginError::Failure)?;
    let path = cache::cache_path(cfg).map_err(LoginError::Config)?;
    let redirect = cfg.source.redirect_uri.clone();
    let listeners = bind_loopback(&redirect).await?;

    let scopes = client::sign_in_scopes(cfg);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state) = oauth.authorize_url(CsrfToken::new_random).add_scopes(scopes.iter().cloned().map(Scope::new)).set_pkce_challenge(challenge).url();

    eprintln!("Open this address in a browser and sign in (outlake waits for the redirect to {redirect}):");
    println!("{auth_url}");
    if !no_browser {
        super::open_browser(auth_url.as_str());
    }

    let (mut requests, tasks) = serve(listeners);
    let wait = async {
        loop {
            let Some((Request { mut stream, target }, peer)) = requests.recv().await else {
                return Err(LoginError::Failure("the sign-in listener stopped".into()));
            };
            let url = match url::Url::parse("http://localhost").and_then(|b| b.join(&target)) {
                Ok(u) => u,
                Err(_) => {
                    respond(&mut stream, 400, "Bad request", "outlake could not read this request.").await;
                    continue;
                }
            };
            if url.path() != redirect.path() {
                // favicon.ico and the like.
                respond(&mut stream, 404, "Not found", "This is outlake's sign-in listener.").await;
                continue;
            }
            tracing::debug!(%peer, "sign-in redirect received");
            let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
            if let Some(err) = q("error") {
                let aad = client::aadsts_code(q("error_description").as_deref());
                let code = aad.map(|a| format!("{err} ({a})")).unwrap_or(err);
                respond(&mut stream, 400, "Sign-in failed", &format!("The identity platform answered {code}. Return to the terminal.")).await;
                return Err(LoginError::Auth(format!("sign-in was refused by the identity platform: {code}")));
            }
            let got_state = q("state").unwrap_or_default();
            if !constant_time_eq(got_state.as_bytes(), state.secret().as_bytes()) {
                respond(&mut stream, 400, "Sign-in rejected", "The state parameter does not match this sign-in. Start again with outlake auth login.").await;
                return Err(LoginError::Auth(
                    "the sign-in redirect carried the wrong state (an old or forged redirect); nothing was stored; run outlake auth login again".into(),
                ));
            }
            let Some(code) = q("code").filter(|c| !c.is_empty()) else {
                respond(&mut stream, 400, "Sign-in failed", "The redirect carried no authorization code. Return to the terminal.").await;
                return Err(LoginError::Auth("the sign-in redirect carried no authorization code; run outlake auth login again".into()));
            };

            let exchanged = oauth.exchange_code(AuthorizationCode::new(code)).set_pkce_verifier(verifier).request_async(&http).await;
            let resp = match exchanged {
                Ok(r) => r,
                Err(e) => {
                    let msg = describe_exchange_error(&e);
                    respond(&mut stream, 400, "Sign-in failed", "outlake could not redeem the authorization code. Return to the terminal for details.").await;
                    return Err(msg);
                }
            };
            let now = chrono::Utc::now();
            let account = client::resolve_account(&http.0, cfg, &resp).await;
            let cache = client::cache_from_sign_in(cfg, "authorization_code", &resp, &scopes, account, now);
            if let Err(e) = cache::save(&path, &cache) {
                respond(&mut stream, 500, "Sign-in not saved", "outlake signed you in but could not save the tokens. Return to the terminal.").await;
                return Err(LoginError::Failure(e));
            }
            let who = super::account_label(&cache.account);
            respond(&mut stream, 200, "Signed in", &format!("outlake is signed in as {who}. You can close this tab.")).await;
            super::report_signed_in(&cache, &path);
            return Ok(());
        }
    };
    let outcome = tokio::time::timeout(timeout, wait).await;
    for t in tasks {
        t.abort();
    }
    match outcome {
        Ok(r) => r,
        Err(_) => Err(LoginError::Auth(format!(
            "timed out after {} s waiting for the sign-in redirect to {redirect}; run outlake auth login again (--timeout-secs sets the wait)",
            timeout.as_secs()
        ))),
    }
}

pub(super) fn describe_exchange_error(e: &oauth2::RequestTokenError<super::http::OAuthHttpError, oauth2::basic::BasicErrorResponse>) -> LoginError {
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => match client::classify_basic(r) {
            TokenFailure::Client { code, hint } => LoginError::Auth(format!("the token endpoint refused the app: {code}: {hint}")),
            TokenFailure::SignInAgain { code } | TokenFailure::Transient { code } | TokenFailure::Other { code } => {
                LoginError::Auth(format!("the token endpoint refused the authorization code: {code}; run outlake auth login again"))
            }
        },
        oauth2::RequestTokenError::Request(e) => LoginError::Failure(format!("cannot reach the token endpoint: {}", super::http::error_chain(e))),
        // The body may hold tokens: never shown.
        oauth2::RequestTokenError::Parse(e, _) => LoginError::Failure(format!("the token endpoint's answer is not a token response ({})", e.path())),
        oauth2::RequestTokenError::Other(m) => LoginError::Failure(format!("the token endpoint's answer is unusable: {m}")),
    }
}

/// Listen where the redirect URI points, on loopback only. `localhost` listens on 127.0.0.1
/// and, when available, [::1] (browsers may try either).
async fn bind_loopback(redirect: &url::Url) -> Result<Vec<TcpListener>, LoginError> {
    let port =
        redirect.port_or_known_default().ok_or_else(|| LoginError::Config("source.redirect_uri needs a port, e.g. http://localhost:48444/callback".into()))?;
    let host = redirect.host_str().unwrap_or("localhost");
    let mut addrs: Vec<SocketAddr> = Vec::new();
    match host {
        "localhost" => {
            addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
            addrs.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        }
        "[::1]" | "::1" => addrs.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))),
        other => match other.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.is_loopback() => addrs.push(SocketAddr::new(ip, port)),
            _ => return Err(LoginError::Config(format!("source.redirect_uri host {other:?} is not loopback; use localhost or 127.0.0.1"))),
        },
    }
    let mut out = Vec::new();
    let mut first_err = None;
    for (i, a) in addrs.iter().enumerate() {
        match TcpListener::bind(a).await {
            Ok(l) => out.push(l),
            // The IPv6 twin of localhost is optional (no IPv6 on this host).
            Err(e) if i > 0 && host == "localhost" => tracing::debug!(addr = %a, error = %e, "not listening on IPv6 loopback"),
            Err(e) => {
                first_err = Some(format!(
                    "cannot listen on {a} for the sign-in redirect: {e} (is another `outlake auth login` running, or is the port in use? change source.redirect_uri's port and register it)"
                ))
            }
        }
    }
    match (out.is_empty(), first_err) {
        (_, Some(e)) => Err(LoginError::Failure(e)),
        (true, None) => Err(LoginError::Failure("cannot listen for the sign-in redirect".into())),
        (false, None) => Ok(out),
    }
}

/// Accept on every listener; read each connection's request head in its own task (a browser
/// may open idle speculative connections) and hand complete requests to the caller.
fn serve(listeners: Vec<TcpListener>) -> (tokio::sync::mpsc::Receiver<(Request, SocketAddr)>, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut tasks = Vec::new();
    for l in listeners {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (stream, peer) = match l.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::debug!(error = %e, "accept failed on the sign-in listener");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(req) = read_request(stream).await {
                        let _ = tx.send((req, peer)).await;
                    }
                });
            }
        }));
    }
    (rx, tasks)
}

struct Request {
    stream: TcpStream,
    target: String,
}

/// Read an HTTP/1 request head (at most 16 KiB, 10 s) and return its target. Non-GET requests
/// and garbage get an error answer and `None`.
async fn read_request(mut stream: TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(2048);
    let read = async {
        let mut chunk = [0u8; 2048];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
                return Some(());
            }
            if buf.len() > 16 * 1024 {
                return None;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.ok().flatten()?;
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?.to_string();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    if method != "GET" {
        respond(&mut stream, 405, "Method not allowed", "outlake's sign-in listener answers GET only.").await;
        return None;
    }
    Some(Request { stream, target })
}

async fn respond(stream: &mut TcpStream, status: u16, title: &str, text: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>outlake: {t}</title></head><body style=\"font-family:sans-serif;margin:3em\"><h1>{t}</h1><p>{}</p></body></html>\n",
        html_escape(text),
        t = html_escape(title)
    );
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
