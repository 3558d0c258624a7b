//! The Microsoft identity platform v2.0 double: `/{tenant}/oauth2/v2.0/{token,authorize,devicecode}`.
//!
//! Contract:
//! - tenants: the tenant id, the tenant domain, `organizations` and `common`; others → 400
//!   `invalid_request` AADSTS90002;
//! - the one registered app (client id) → others 400 `unauthorized_client` AADSTS700016;
//!   a wrong secret (form body or HTTP Basic) → 401 `invalid_client` AADSTS7000215;
//! - `client_credentials` with `https://graph.microsoft.com/.default` → an app token carrying the
//!   configured app roles, no refresh token; any other scope → 400 `invalid_scope` AADSTS70011;
//! - `authorize` auto-consents as the configured user and redirects (302) to the registered
//!   loopback redirect URI (ports ignored for localhost/127.0.0.1) with `code` and `state`;
//!   unregistered → 400 page with AADSTS50011;
//! - `authorization_code` with PKCE (S256 or plain): reused code → AADSTS54005, verifier
//!   mismatch → AADSTS501481;
//! - `refresh_token`: rotates; the used token is dead (→ AADSTS70008), as is a revoked one;
//!   an idle one past its lifetime → AADSTS700082;
//! - device code: `devicecode` issues codes; polling answers `authorization_pending`,
//!   `authorization_declined`, `expired_token`, `bad_verification_code` until approved or denied
//!   through the admin API; public client flows must be allowed (else 401 AADSTS7000218).
//!
//! Tokens are opaque random strings; access tokens live `token_lifetime` (default random 60–90
//! minutes). Delegated scopes granted = requested ∩ configured `delegated_scopes` (`.default` =
//! all of them); `offline_access` adds a refresh token, `openid` an unsigned id_token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};
use sha2::Digest;

use crate::fmt;
use crate::state::{Shared, State};
use crate::stats;

pub const GRAPH: &str = "https://graph.microsoft.com";
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

#[derive(Clone, Debug)]
pub enum Principal {
    App { roles: Vec<String> },
    User { user: usize, scopes: Vec<String> },
}

pub struct AccessToken {
    pub client_id: String,
    pub principal: Principal,
    pub expires: Instant,
    pub revoked: bool,
}

struct RefreshToken {
    user: usize,
    scopes: Vec<String>,
    last_used: Instant,
    dead: bool,
}

struct AuthCode {
    redirect_uri: String,
    requested: Vec<String>,
    user: usize,
    challenge: Option<(String, String)>,
    issued: Instant,
    redeemed: bool,
}

#[derive(PartialEq, Clone, Copy)]
enum DeviceStatus {
    Pending,
    Approved,
    Declined,
    Redeemed,
}

struct DeviceCode {
    user_code: String,
    requested: Vec<String>,
    issued: Instant,
    lifetime: Duration,
    status: DeviceStatus,
}

#[derive(Default)]
pub struct AuthStore {
    pub access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, AuthCode>,
    devices: HashMap<String, DeviceCode>,
}

impl AuthStore {
    pub fn revoke_access_tokens(&mut self) {
        for t in self.access.values_mut() {
            t.revoked = true;
        }
    }
    pub fn revoke_refresh_tokens(&mut self) {
        for t in self.refresh.values_mut() {
            t.dead = true;
        }
    }
    /// Approves or denies a pending device code by user code; false if none is pending.
    pub fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        for d in self.devices.values_mut() {
            if d.user_code.eq_ignore_ascii_case(user_code) && d.status == DeviceStatus::Pending {
                d.status = if approve { DeviceStatus::Approved } else { DeviceStatus::Declined };
                return true;
            }
        }
        false
    }
}

/// The token endpoint's error body.
fn token_error(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let now = chrono::Utc::now();
    let trace = fmt::request_id();
    let corr = fmt::request_id();
    let ts = fmt::token_ts(now);
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

fn bad(error: &str, code: u32, message: &str) -> Response {
    token_error(StatusCode::BAD_REQUEST, error, code, message)
}

fn tenant_ok(sh: &Shared, st: &State, tenant: &str) -> bool {
    tenant == sh.tenant_id
        || tenant.eq_ignore_ascii_case(&st.world.domain)
        || tenant.eq_ignore_ascii_case("organizations")
        || tenant.eq_ignore_ascii_case("common")
}

fn unknown_tenant(tenant: &str) -> Response {
    bad(
        "invalid_request",
        90002,
        &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
}

fn unknown_client(client: &str, tenant: &str) -> Response {
    bad(
        "unauthorized_client",
        700016,
        &format!(
            "Application with identifier '{client}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

fn access_lifetime(st: &mut State) -> Duration {
    st.cfg.token_lifetime.unwrap_or_else(|| Duration::from_secs(st.rng.random_range(3600..=5400)))
}

/// Parses delegated scopes: Graph scopes without the resource prefix, OIDC scopes as they are.
/// `Err` for scopes of another resource.
fn parse_scopes(raw: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in raw.split_whitespace() {
        let lower = s.to_ascii_lowercase();
        if ["openid", "profile", "email", "offline_access"].contains(&lower.as_str()) {
            out.push(lower);
        } else if let Some(rest) = s.strip_prefix(&format!("{GRAPH}/")).or_else(|| s.strip_prefix(&format!("{GRAPH_APP_ID}/"))) {
            out.push(rest.to_string());
        } else if s.contains("://") || s.contains('/') {
            return Err(s.to_string());
        } else {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

/// Delegated permissions granted for a request: requested ∩ consentable (`.default` = all).
fn grant(st: &State, requested: &[String]) -> Vec<String> {
    let all = &st.cfg.delegated_scopes;
    if requested.iter().any(|s| s == ".default") {
        return all.clone();
    }
    requested.iter().filter(|s| all.iter().any(|a| a.eq_ignore_ascii_case(s))).cloned().collect()
}

fn id_token(sh: &Shared, st: &State, user: usize) -> String {
    let u = &st.world.users[user];
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = e.encode(br#"{"typ":"JWT","alg":"none"}"#);
    let claims = json!({"aud": sh.client_id, "iss": format!("{}/{}/v2.0", sh.url, sh.tenant_id), "tid": sh.tenant_id, "oid": u.id, "preferred_username": u.upn, "name": u.display_name});
    format!("{header}.{}.", e.encode(claims.to_string()))
}

/// Issues delegated tokens and builds the success body.
fn delegated_success(sh: &Shared, st: &mut State, user: usize, requested: &[String], client_id: &str) -> Response {
    let scopes = grant(st, requested);
    let life = access_lifetime(st);
    let at = fmt::opaque_token(48);
    st.auth.access.insert(
        at.clone(),
        AccessToken {
            client_id: client_id.to_string(),
            principal: Principal::User { user, scopes: scopes.clone() },
            expires: Instant::now() + life,
            revoked: false,
        },
    );
    let mut shown: Vec<String> = scopes.clone();
    for o in ["openid", "profile", "email", "offline_access"] {
        if requested.iter().any(|r| r == o) {
            shown.push(o.to_string());
        }
    }
    let mut body = json!({
        "token_type": "Bearer",
        "scope": shown.join(" "),
        "expires_in": life.as_secs(),
        "ext_expires_in": life.as_secs(),
        "access_token": at,
    });
    if requested.iter().any(|r| r == "offline_access") {
        let rt = fmt::opaque_token(64);
        st.auth.refresh.insert(rt.clone(), RefreshToken { user, scopes: requested.to_vec(), last_used: Instant::now(), dead: false });
        body["refresh_token"] = json!(rt);
    }
    if requested.iter().any(|r| r == "openid") {
        body["id_token"] = json!(id_token(sh, st, user));
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(AxState(sh): AxState<Arc<Shared>>, Path(tenant): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut client_id = form.get("client_id").cloned();
    let mut secret = form.get("client_secret").cloned();
    if let Some(basic) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
        && let Ok(dec) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
    {
        let dec = String::from_utf8_lossy(&dec).to_string();
        if let Some((id, s)) = dec.split_once(':') {
            let unesc = |x: &str| url::form_urlencoded::parse(format!("x={x}").as_bytes()).next().map(|(_, v)| v.to_string()).unwrap_or_default();
            client_id = Some(unesc(id));
            secret = Some(unesc(s));
        }
    }
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let mut st = sh.state.lock();
    stats::bump(&mut st.stats.token_requests, &grant_type);
    if !tenant_ok(&sh, &st, &tenant) {
        return unknown_tenant(&tenant);
    }
    let Some(client_id) = client_id else {
        return bad("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.");
    };
    if client_id != sh.client_id {
        return unknown_client(&client_id, &tenant);
    }
    let bad_secret = || {
        token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                sh.client_id
            ),
        )
    };
    let no_secret = || {
        token_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    };
    if let Some(s) = &secret
        && *s != sh.client_secret
    {
        return bad_secret();
    }
    let needs_secret = st.cfg.confidential_client;
    match grant_type.as_str() {
        "client_credentials" => {
            if secret.is_none() {
                return no_secret();
            }
            let scope = form.get("scope").cloned().unwrap_or_default();
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            if scopes.is_empty() {
                return bad("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.");
            }
            let ok = scopes.len() == 1 && (scopes[0] == format!("{GRAPH}/.default") || scopes[0] == format!("{GRAPH_APP_ID}/.default"));
            if !ok {
                return bad(
                    "invalid_scope",
                    70011,
                    &format!(
                        "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
                    ),
                );
            }
            let life = access_lifetime(&mut st);
            let at = fmt::opaque_token(48);
            let roles = st.cfg.app_roles.clone();
            st.auth.access.insert(at.clone(), AccessToken { client_id, principal: Principal::App { roles }, expires: Instant::now() + life, revoked: false });
            let body = json!({"token_type": "Bearer", "expires_in": life.as_secs(), "ext_expires_in": life.as_secs(), "access_token": at});
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
        }
        "authorization_code" => {
            if needs_secret && secret.is_none() {
                return no_secret();
            }
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(c) = st.auth.codes.get_mut(&code) else {
                return bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.");
            };
            if c.redeemed {
                return bad(
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            }
            if c.issued.elapsed() > Duration::from_secs(600) {
                return bad(
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                );
            }
            if form.get("redirect_uri").map(String::as_str) != Some(c.redirect_uri.as_str()) {
                return bad(
                    "invalid_grant",
                    50148,
                    "The redirect_uri specified in the token request does not match the redirect_uri used in the authorization request.",
                );
            }
            if let Some((challenge, method)) = &c.challenge {
                let Some(verifier) = form.get("code_verifier") else {
                    return bad("invalid_grant", 50148, "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.");
                };
                let computed = if method.eq_ignore_ascii_case("S256") {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
                } else {
                    verifier.clone()
                };
                if computed != *challenge {
                    return bad("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.");
                }
            }
            c.redeemed = true;
            let (user, requested) = (c.user, c.requested.clone());
            delegated_success(&sh, &mut st, user, &requested, &client_id)
        }
        "refresh_token" => {
            if needs_secret && secret.is_none() {
                return no_secret();
            }
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let lifetime = st.cfg.refresh_token_lifetime;
            let Some(r) = st.auth.refresh.get_mut(&rt) else {
                return bad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.");
            };
            if r.dead {
                return bad(
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                );
            }
            if r.last_used.elapsed() > lifetime {
                r.dead = true;
                return bad(
                    "invalid_grant",
                    700082,
                    &format!(
                        "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for {:?}.",
                        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.7fZ"),
                        lifetime
                    ),
                );
            }
            r.dead = true;
            let (user, mut requested) = (r.user, r.scopes.clone());
            if let Some(s) = form.get("scope") {
                match parse_scopes(s) {
                    Ok(mut narrowed) => {
                        if !narrowed.iter().any(|x| x == "offline_access") {
                            narrowed.push("offline_access".into());
                        }
                        requested = narrowed;
                    }
                    Err(bad_scope) => {
                        return bad(
                            "invalid_scope",
                            70011,
                            &format!("The provided value for the input parameter 'scope' is not valid. The scope '{bad_scope}' does not exist."),
                        );
                    }
                }
            }
            delegated_success(&sh, &mut st, user, &requested, &client_id)
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            if !st.cfg.allow_public_client_flows && secret.is_none() {
                return no_secret();
            }
            let dc = form.get("device_code").cloned().unwrap_or_default();
            let auto = st.cfg.device_code_auto_approve;
            let Some(d) = st.auth.devices.get_mut(&dc) else {
                return bad("bad_verification_code", 70000, "The provided value for the input parameter 'device_code' is not valid.");
            };
            if auto && d.status == DeviceStatus::Pending {
                d.status = DeviceStatus::Approved;
            }
            if d.issued.elapsed() > d.lifetime && d.status != DeviceStatus::Redeemed {
                return bad("expired_token", 70019, "Verification code expired.");
            }
            match d.status {
                DeviceStatus::Pending => bad("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling."),
                DeviceStatus::Declined => bad("authorization_declined", 70015, "The user declined to authorize the request."),
                DeviceStatus::Redeemed => bad(
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                ),
                DeviceStatus::Approved => {
                    d.status = DeviceStatus::Redeemed;
                    let requested = d.requested.clone();
                    let Some(user) = st.signed_in_user() else {
                        return bad("invalid_grant", 50034, "The user account does not exist in this directory.");
                    };
                    delegated_success(&sh, &mut st, user, &requested, &client_id)
                }
            }
        }
        "" => bad("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."),
        other => bad("unsupported_grant_type", 70003, &format!("The app requested an unsupported grant type '{other}'.")),
    }
}

/// Whether a redirect URI matches a registered one (ports ignored for loopback http).
pub fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(r), Ok(g)) = (url::Url::parse(registered), url::Url::parse(given)) else { return false };
    let loopback = |u: &url::Url| u.scheme() == "http" && matches!(u.host_str(), Some("localhost") | Some("127.0.0.1"));
    loopback(&r) && loopback(&g) && r.host_str() == g.host_str() && r.path() == g.path() && r.query() == g.query()
}

fn html_error(code: u32, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><body><h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{code}: {message}</p></body></html>"),
    )
        .into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub async fn authorize(AxState(sh): AxState<Arc<Shared>>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
    let mut st = sh.state.lock();
    stats::bump(&mut st.stats.token_requests, "authorize");
    if !tenant_ok(&sh, &st, &tenant) {
        return html_error(90002, &format!("Tenant '{tenant}' not found."));
    }
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if client_id != sh.client_id {
        return html_error(700016, &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."));
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    if !st.cfg.redirect_uris.iter().any(|r| redirect_matches(r, &redirect)) {
        return html_error(
            50011,
            &format!(
                "The redirect URI '{redirect}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        );
    }
    let mut target = url::Url::parse(&redirect).expect("matched a registered URI");
    let fragment = q.get("response_mode").map(String::as_str) == Some("fragment");
    let mut params: Vec<(String, String)> = Vec::new();
    if q.get("response_type").map(String::as_str) != Some("code") {
        params.push(("error".into(), "unsupported_response_type".into()));
        params.push(("error_description".into(), "AADSTS700054: response_type 'code' is expected.".into()));
    } else {
        match parse_scopes(q.get("scope").map(String::as_str).unwrap_or_default()) {
            Err(s) => {
                params.push(("error".into(), "invalid_scope".into()));
                params.push((
                    "error_description".into(),
                    format!("AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope '{s}' is not valid."),
                ));
            }
            Ok(requested) => {
                let Some(user) = st.signed_in_user() else {
                    return html_error(50034, "The user account does not exist in this directory.");
                };
                let code = fmt::opaque_token(96);
                let challenge = q.get("code_challenge").map(|c| (c.clone(), q.get("code_challenge_method").cloned().unwrap_or_else(|| "plain".into())));
                st.auth
                    .codes
                    .insert(code.clone(), AuthCode { redirect_uri: redirect.clone(), requested, user, challenge, issued: Instant::now(), redeemed: false });
                params.push(("code".into(), code));
            }
        }
    }
    if let Some(s) = q.get("state") {
        params.push(("state".into(), s.clone()));
    }
    if fragment {
        let f = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        target.set_fragment(Some(&f));
    } else {
        target.query_pairs_mut().extend_pairs(&params);
    }
    Response::builder().status(StatusCode::FOUND).header(header::LOCATION, target.to_string()).body(Body::empty()).expect("response")
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub async fn devicecode(AxState(sh): AxState<Arc<Shared>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut st = sh.state.lock();
    stats::bump(&mut st.stats.token_requests, "devicecode");
    if !tenant_ok(&sh, &st, &tenant) {
        return unknown_tenant(&tenant);
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if client_id != sh.client_id {
        return unknown_client(&client_id, &tenant);
    }
    let requested = match parse_scopes(form.get("scope").map(String::as_str).unwrap_or_default()) {
        Ok(s) => s,
        Err(s) => {
            return bad("invalid_scope", 70011, &format!("The provided value for the input parameter 'scope' is not valid. The scope '{s}' is not valid."));
        }
    };
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let user_code: String = (0..9).map(|_| ALPHABET[st.rng.random_range(0..ALPHABET.len())] as char).collect();
    let device_code = fmt::opaque_token(96);
    let lifetime = st.cfg.device_code_lifetime;
    st.auth
        .devices
        .insert(device_code.clone(), DeviceCode { user_code: user_code.clone(), requested, issued: Instant::now(), lifetime, status: DeviceStatus::Pending });
    let uri = format!("{}/devicelogin", sh.url);
    let body: Value = json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": lifetime.as_secs(),
        "interval": 5,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body.to_string()).into_response()
}

/// `GET /devicelogin`: tells a human how to approve a code on the simulator.
pub async fn devicelogin() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "outlake simulator: approve a device code with POST /_sim/devicecode {\"user_code\":\"…\",\"approve\":true}\n",
    )
        .into_response()
}
