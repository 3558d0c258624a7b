//! The identity-platform client shared by the sign-in flows and the token refresher: the
//! `oauth2` client with Microsoft's extra response fields, endpoint URLs, the conversion of a
//! token response into the cache, and the classification of token errors.

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ExtraDeviceAuthorizationFields, ExtraTokenFields,
    RedirectUrl, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use outlake_config::{Config, Secret};
use serde::{Deserialize, Serialize};

use super::cache::{Account, CACHE_VERSION, TokenCache};

/// Fields Microsoft adds to a token response.
#[derive(Clone, Deserialize, Serialize, Default)]
pub struct MsTokenFields {
    /// Present when `openid` was requested. Read once for the account claims, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for MsTokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsTokenFields").field("id_token", &self.id_token.as_ref().map(|_| "[redacted]")).finish()
    }
}
impl ExtraTokenFields for MsTokenFields {}

/// Microsoft's device authorization response carries a ready-made `message` for the user.
#[derive(Clone, Debug, Deserialize, Serialize, Default)]
pub struct MsDeviceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
impl ExtraDeviceAuthorizationFields for MsDeviceFields {}

pub type MsTokenResponse = StandardTokenResponse<MsTokenFields, BasicTokenType>;

/// The oauth2 client with every endpoint outlake uses set (authorize, device code, token).
pub type MsClient = oauth2::Client<
    BasicErrorResponse,
    MsTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// `{authority}/{tenant}/oauth2/v2.0/{leaf}`.
pub fn endpoint(cfg: &Config, leaf: &str) -> String {
    format!("{}/{}/oauth2/v2.0/{leaf}", cfg.source.authority_url.as_str().trim_end_matches('/'), cfg.source.tenant_id)
}

/// A client for this configuration. A confidential app sends its `client_secret` in the
/// request body; a public client (no secret configured) sends none.
pub fn ms_client(cfg: &Config) -> Result<MsClient, String> {
    let s = &cfg.source;
    let auth = AuthUrl::new(endpoint(cfg, "authorize")).map_err(|e| format!("source.authority_url: bad authorize URL: {e}"))?;
    let token = TokenUrl::new(endpoint(cfg, "token")).map_err(|e| format!("source.authority_url: bad token URL: {e}"))?;
    let device = DeviceAuthorizationUrl::new(endpoint(cfg, "devicecode")).map_err(|e| format!("source.authority_url: bad devicecode URL: {e}"))?;
    let redirect = RedirectUrl::new(s.redirect_uri.to_string()).map_err(|e| format!("source.redirect_uri: {e}"))?;
    let mut client = oauth2::Client::new(ClientId::new(s.client_id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(auth)
        .set_token_uri(token)
        .set_device_authorization_url(device)
        .set_redirect_uri(redirect);
    if let Some(secret) = s.client_secret.as_ref().filter(|x| !x.is_empty()) {
        client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
    }
    Ok(client)
}

/// The scopes a sign-in asks for: the configured ones, plus `openid profile` so the token
/// response carries an id_token naming the account (OIDC scopes may accompany one resource),
/// and `User.Read`, which `GET /me` needs to tell the signed-in user's id (the `mailbox_id`).
/// Entra grants `User.Read` to every new app registration by default.
pub fn sign_in_scopes(cfg: &Config) -> Vec<String> {
    let mut scopes = cfg.source.scopes.clone();
    for extra in ["User.Read", "openid", "profile"] {
        if !scopes.iter().any(|s| s.eq_ignore_ascii_case(extra)) {
            scopes.push(extra.to_string());
        }
    }
    scopes
}

/// The scopes a refresh asks for: the configured ones (same or fewer than granted, one resource).
pub fn refresh_scopes(cfg: &Config) -> Vec<String> {
    let mut scopes = cfg.source.scopes.clone();
    if !scopes.iter().any(|s| s.eq_ignore_ascii_case("User.Read")) {
        scopes.push("User.Read".to_string());
    }
    scopes
}

/// Claims read from an id_token. The token comes straight from the token endpoint over the
/// connection we opened, so its signature is not checked; it is used for display only.
pub fn account_from_id_token(id_token: &str) -> Option<Account> {
    use base64::Engine;
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let acct = Account { id: s("oid").or_else(|| s("sub")), upn: s("preferred_username").or_else(|| s("upn")).or_else(|| s("email")), name: s("name") };
    (acct.id.is_some() || acct.upn.is_some()).then_some(acct)
}

/// Granted scopes from a response, or the requested ones when the response names none.
pub fn granted_scopes(resp: &MsTokenResponse, requested: &[String]) -> Vec<String> {
    match resp.scopes() {
        Some(s) if !s.is_empty() => s.iter().map(|x| x.to_string()).collect(),
        _ => requested.to_vec(),
    }
}

/// A fresh cache from a sign-in's token response.
pub fn cache_from_sign_in(cfg: &Config, flow: &str, resp: &MsTokenResponse, requested: &[String], account: Account, now: DateTime<Utc>) -> TokenCache {
    TokenCache {
        version: CACHE_VERSION,
        tenant_id: cfg.source.tenant_id.clone(),
        client_id: cfg.source.client_id.clone(),
        authority_url: cfg.source.authority_url.to_string(),
        flow: flow.to_string(),
        account,
        scopes: granted_scopes(resp, requested),
        access_token: Secret::new(resp.access_token().secret().clone()),
        access_expires_at: expires_at(resp, now),
        refresh_token: resp.refresh_token().map(|r| Secret::new(r.secret().clone())),
        refresh_token_issued_at: now,
        signed_in_at: now,
    }
}

/// The cache after a refresh: the new access token, and the new refresh token (Entra rotates
/// it on every use; the old one is kept only if the response carries none).
pub fn cache_after_refresh(old: &TokenCache, resp: &MsTokenResponse, requested: &[String], now: DateTime<Utc>) -> TokenCache {
    let mut c = old.clone();
    c.access_token = Secret::new(resp.access_token().secret().clone());
    c.access_expires_at = expires_at(resp, now);
    if let Some(r) = resp.refresh_token() {
        c.refresh_token = Some(Secret::new(r.secret().clone()));
        c.refresh_token_issued_at = now;
    }
    if resp.scopes().is_some_and(|s| !s.is_empty()) {
        c.scopes = granted_scopes(resp, requested);
    }
    if let Some(a) = resp.extra_fields().id_token.as_deref().and_then(account_from_id_token) {
        c.account = a;
    }
    c
}

fn expires_at(resp: &MsTokenResponse, now: DateTime<Utc>) -> DateTime<Utc> {
    // No expires_in: assume the shortest lifetime Entra issues (60 minutes).
    let secs = resp.expires_in().map(|d| d.as_secs()).unwrap_or(3600).min(i64::MAX as u64 / 2);
    now + chrono::Duration::seconds(secs as i64)
}

/// The signed-in account: id_token claims, else Graph `/me` with the new access token, else
/// unknown (status then says so).
pub async fn resolve_account(http: &reqwest::Client, cfg: &Config, resp: &MsTokenResponse) -> Account {
    if let Some(a) = resp.extra_fields().id_token.as_deref().and_then(account_from_id_token) {
        return a;
    }
    let url = format!("{}/v1.0/me?$select=id,userPrincipalName,displayName", cfg.source.graph_url.as_str().trim_end_matches('/'));
    let got = http.get(&url).bearer_auth(resp.access_token().secret()).send().await;
    match got {
        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
            Ok(v) => {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                Account { id: s("id"), upn: s("userPrincipalName"), name: s("displayName") }
            }
            Err(_) => Account::default(),
        },
        Ok(r) => {
            tracing::debug!(status = %r.status(), "GET /me failed; the account stays unknown");
            Account::default()
        }
        Err(e) => {
            tracing::debug!(error = %super::http::error_chain(&e), "GET /me failed; the account stays unknown");
            Account::default()
        }
    }
}

/// What a token error means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// The grant is dead (expired, revoked, consent withdrawn, MFA needed): sign in again.
    SignInAgain { code: String },
    /// The app's credentials or registration are wrong (invalid_client, unauthorized_client…).
    Client { code: String, hint: String },
    /// Worth retrying: temporarily_unavailable.
    Transient { code: String },
    /// Anything else the server refused.
    Other { code: String },
}

/// The `AADSTSnnnn` at the start of an error description, if any (the rest of the description
/// is not repeated: branch on `error`, show the code).
pub fn aadsts_code(description: Option<&str>) -> Option<String> {
    let d = description?;
    let start = d.find("AADSTS")?;
    let digits: String = d[start + 6..].chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then(|| format!("AADSTS{digits}"))
}

/// Classify a token endpoint error by its `error` value (and the AADSTS code for wording).
pub fn classify(error: &str, description: Option<&str>) -> TokenFailure {
    let aad = aadsts_code(description);
    let code = match &aad {
        Some(a) => format!("{error} ({a})"),
        None => error.to_string(),
    };
    match error {
        "invalid_grant" | "interaction_required" | "consent_required" | "login_required" => TokenFailure::SignInAgain { code },
        "temporarily_unavailable" => TokenFailure::Transient { code },
        "invalid_client" => {
            let hint = match aad.as_deref() {
                Some("AADSTS7000215") => "the client secret is wrong: configure the secret's Value, not its Secret ID".to_string(),
                Some("AADSTS7000222") => "the client secret has expired: create a new one in the app registration".to_string(),
                Some("AADSTS7000218") => "the app registration does not allow public client flows: enable them, or configure the client secret".to_string(),
                _ => "check source.client_id and source.client_secret against the app registration".to_string(),
            };
            TokenFailure::Client { code, hint }
        }
        "unauthorized_client" | "invalid_scope" | "unsupported_grant_type" | "invalid_resource" => {
            TokenFailure::Client { code, hint: "check the tenant, the client id, the scopes and the app registration".to_string() }
        }
        _ => TokenFailure::Other { code },
    }
}

pub fn classify_basic(e: &BasicErrorResponse) -> TokenFailure {
    let err: &BasicErrorResponseType = e.error();
    classify(err.as_ref(), e.error_description().map(|s| s.as_str()))
}
