//! `outlake auth login --device-code`: the device authorization grant (RFC 8628 as Entra runs
//! it). Prints the server's message (where to go, which code to type), polls the token
//! endpoint at the given interval, stores the tokens.
//!
//! Polling is oauth2's: `authorization_pending` keeps polling, `slow_down` adds 5 s to the
//! interval; `authorization_declined`, `expired_token` and `bad_verification_code` end it.

use std::time::Duration;

use oauth2::{DeviceCodeErrorResponse, DeviceCodeErrorResponseType};
use oauth2::{RequestTokenError, Scope};
use outlake_config::Config;

use super::client::{self, MsDeviceFields, TokenFailure};
use super::{LoginError, cache};

type DeviceAuth = oauth2::DeviceAuthorizationResponse<MsDeviceFields>;

pub async fn login(cfg: &Config, no_browser: bool, timeout: Duration) -> Result<(), LoginError> {
    let oauth = client::ms_client(cfg).map_err(LoginError::Config)?;
    let http = super::http::new_client().map_err(LoginError::Failure)?;
    let path = cache::cache_path(cfg).map_err(LoginError::Config)?;
    let scopes = client::sign_in_scopes(cfg);

    let details: DeviceAuth =
        oauth.exchange_device_code().add_scopes(scopes.iter().cloned().map(Scope::new)).request_async(&http).await.map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => match client::classify_basic(&r) {
                TokenFailure::Client { code, hint } => LoginError::Auth(format!("the device code endpoint refused the app: {code}: {hint}")),
                TokenFailure::SignInAgain { code } | TokenFailure::Transient { code } | TokenFailure::Other { code } => {
                    LoginError::Auth(format!("the device code endpoint refused the request: {code}"))
                }
            },
            RequestTokenError::Request(e) => LoginError::Failure(format!("cannot reach the device code endpoint: {}", super::http::error_chain(&e))),
            RequestTokenError::Parse(e, _) => LoginError::Failure(format!("the device code endpoint's answer is not a device authorization ({})", e.path())),
            RequestTokenError::Other(m) => LoginError::Failure(format!("the device code endpoint's answer is unusable: {m}")),
        })?;

    let verification = details.verification_uri().to_string();
    let user_code = details.user_code().secret().to_string();
    match details.extra_fields().message.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(m) => println!("{m}"),
        None => println!("To sign in, open {verification} in a browser and enter the code {user_code}"),
    }
    if !no_browser {
        super::open_browser(&verification);
    }
    let expires = details.expires_in();
    eprintln!(
        "Waiting for the sign-in to finish (the code is valid for {} min; outlake waits at most {} s)…",
        expires.as_secs().div_ceil(60),
        timeout.as_secs()
    );

    let poll = oauth.exchange_device_access_token(&details).request_async(&http, tokio::time::sleep, None);
    let resp = match tokio::time::timeout(timeout, poll).await {
        Err(_) => {
            return Err(LoginError::Auth(format!(
                "timed out after {} s waiting for the device sign-in; run outlake auth login --device-code again (--timeout-secs sets the wait)",
                timeout.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(describe_poll_error(&e)),
        Ok(Ok(r)) => r,
    };

    let now = chrono::Utc::now();
    let account = client::resolve_account(&http.0, cfg, &resp).await;
    let cache = client::cache_from_sign_in(cfg, "device_code", &resp, &scopes, account, now);
    cache::save(&path, &cache).map_err(LoginError::Failure)?;
    super::report_signed_in(&cache, &path);
    Ok(())
}

fn describe_poll_error(e: &RequestTokenError<super::http::OAuthHttpError, DeviceCodeErrorResponse>) -> LoginError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let aad = client::aadsts_code(r.error_description().map(|s| s.as_str()));
            let with_aad = |s: &str| match &aad {
                Some(a) => format!("{s} ({a})"),
                None => s.to_string(),
            };
            match r.error() {
                DeviceCodeErrorResponseType::ExpiredToken => LoginError::Auth(format!(
                    "{}: the code expired before the sign-in finished; run outlake auth login --device-code again",
                    with_aad("expired_token")
                )),
                DeviceCodeErrorResponseType::AccessDenied => {
                    LoginError::Auth(format!("{}: the sign-in was declined; run outlake auth login --device-code to try again", with_aad("access_denied")))
                }
                other => {
                    let name = other.as_ref();
                    match name {
                        "authorization_declined" => {
                            LoginError::Auth(format!("{}: the user declined the sign-in; run outlake auth login --device-code to try again", with_aad(name)))
                        }
                        "bad_verification_code" => LoginError::Auth(format!(
                            "{}: the identity platform does not know this device code; run outlake auth login --device-code again",
                            with_aad(name)
                        )),
                        _ => match client::classify(name, r.error_description().map(|s| s.as_str())) {
                            TokenFailure::Client { code, hint } => LoginError::Auth(format!("the token endpoint refused the app: {code}: {hint}")),
                            TokenFailure::SignInAgain { code } | TokenFailure::Transient { code } | TokenFailure::Other { code } => {
                                LoginError::Auth(format!("the device sign-in failed: {code}; run outlake auth login --device-code again"))
                            }
                        },
                    }
                }
            }
        }
        RequestTokenError::Request(e) => LoginError::Failure(format!("cannot reach the token endpoint: {}", super::http::error_chain(&e))),
        RequestTokenError::Parse(e, _) => LoginError::Failure(format!("the token endpoint's answer is not a token response ({})", e.path())),
        RequestTokenError::Other(m) => LoginError::Failure(format!("the device sign-in failed: {m}")),
    }
}
