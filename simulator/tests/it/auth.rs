//! Identity platform flows.

use base64::Engine;
use serde_json::Value;
use sha2::Digest;

use crate::{Env, small};

#[tokio::test]
async fn client_credentials_good_and_bad_secret() {
    let env = Env::new(small()).await;
    let ok: Value = env
        .http
        .post(env.token_url())
        .basic_auth(env.sim.client_id(), Some(env.sim.client_secret()))
        .form(&[("grant_type", "client_credentials"), ("scope", "https://graph.microsoft.com/.default")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert!(ok.get("refresh_token").is_none());
    let exp = ok["expires_in"].as_u64().unwrap();
    assert!((3600..=5400).contains(&exp), "{exp}");

    let r = env
        .http
        .post(env.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &env.sim.client_id()),
            ("client_secret", "wrong"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"][0], 7000215);
    assert!(v["error_description"].as_str().unwrap().starts_with("AADSTS7000215:"));

    // Unknown tenant, unknown client, bad scope.
    let url = format!("{}/nope/oauth2/v2.0/token", env.sim.url());
    let v: Value = post_form(
        &env.http,
        url,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &env.sim.client_id()),
            ("client_secret", &env.sim.client_secret()),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(v["error_codes"][0], 90002);
    let v: Value = post_form(
        &env.http,
        env.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-0000-0000-000000000001"),
            ("client_secret", "x"),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(v["error"], "unauthorized_client");
    assert_eq!(v["error_codes"][0], 700016);
    let v: Value = post_form(
        &env.http,
        env.token_url(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &env.sim.client_id()),
            ("client_secret", &env.sim.client_secret()),
            ("scope", "https://graph.microsoft.com/Mail.Read"),
        ],
    )
    .await;
    assert_eq!(v["error"], "invalid_scope");
    assert_eq!(v["error_codes"][0], 70011);
}

/// POST a form and read the JSON answer.
async fn post_form(http: &reqwest::Client, url: impl reqwest::IntoUrl, form: &[(&str, &str)]) -> Value {
    http.post(url).form(form).send().await.unwrap().json().await.unwrap()
}

fn pkce() -> (String, String) {
    let verifier = "a-very-long-verifier-string-of-at-least-43-characters-0123456789".to_string();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn authorize(env: &Env, redirect: &str, challenge: &str) -> reqwest::Response {
    let url = format!("{}/{}/oauth2/v2.0/authorize", env.sim.url(), env.sim.tenant_id());
    env.http
        .get(url)
        .query(&[
            ("client_id", env.sim.client_id().as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            (
                "scope",
                "offline_access openid https://graph.microsoft.com/Mail.Read https://graph.microsoft.com/Calendars.Read https://graph.microsoft.com/User.Read",
            ),
            ("state", "xyz-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
}

fn code_of(r: &reqwest::Response) -> String {
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz-123");
    q["code"].clone()
}

#[tokio::test]
async fn auth_code_pkce_refresh_rotation_and_me() {
    let env = Env::new(small()).await;
    let (verifier, challenge) = pkce();
    // Port differs from the registered one: ignored for localhost.
    let redirect = "http://localhost:53211/callback";
    let r = authorize(&env, redirect, &challenge).await;
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("http://localhost:53211/callback?"));
    let code = code_of(&r);

    // Unregistered redirect.
    let bad = authorize(&env, "https://evil.example/cb", &challenge).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("AADSTS50011"));

    let exchange = |code: String, verifier: String| {
        let env = &env;
        async move {
            env.http
                .post(env.token_url())
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", &env.sim.client_id()),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // Wrong verifier first: refused without burning the code.
    let r = exchange(code.clone(), "wrong-verifier-wrong-verifier-wrong-verifier-000".into()).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(v["error_codes"][0], 501481);

    let v: Value = exchange(code.clone(), verifier.clone()).await.json().await.unwrap();
    let at = v["access_token"].as_str().unwrap().to_string();
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    assert!(v["id_token"].is_string());
    assert!(v["scope"].as_str().unwrap().contains("Mail.Read"));

    // Code reuse.
    let v: Value = exchange(code, verifier).await.json().await.unwrap();
    assert_eq!(v["error_codes"][0], 54005);

    // /me works with the delegated token and names the signed-in user.
    let me: Value = env.http.get(env.graph("/me")).bearer_auth(&at).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], env.sim.mailbox_ids()[0]);
    assert!(me["userPrincipalName"].is_string());
    let (items, _, _) = {
        let r = env.http.get(env.graph("/me/mailFolders/inbox/messages/delta")).bearer_auth(&at).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (v["value"].as_array().unwrap().clone(), (), ())
    };
    assert!(!items.is_empty());
    // The same delegated token cannot read another user's mailbox.
    let other = env.sim.mailbox_ids()[1].clone();
    let r = env.http.get(env.graph(&format!("/users/{other}/mailFolders/delta"))).bearer_auth(&at).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Refresh rotates; the old refresh token is dead.
    let refresh = |rt: String| {
        let env = &env;
        async move {
            env.http
                .post(env.token_url())
                .form(&[("grant_type", "refresh_token"), ("client_id", &env.sim.client_id()), ("refresh_token", &rt)])
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(rt.clone()).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let rt2 = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt, rt2);
    let r = refresh(rt).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(v["error_codes"][0], 70008);
    // Admin revocation kills the new one too.
    env.sim.revoke_refresh_tokens();
    let v: Value = refresh(rt2).await.json().await.unwrap();
    assert_eq!(v["error"], "invalid_grant");
}

#[tokio::test]
async fn device_code_pending_approve_deny() {
    let env = Env::new(small()).await;
    let dc_url = format!("{}/{}/oauth2/v2.0/devicecode", env.sim.url(), env.sim.tenant_id());
    let start = || async {
        let v: Value = env
            .http
            .post(&dc_url)
            .form(&[("client_id", env.sim.client_id().as_str()), ("scope", "offline_access Mail.Read Calendars.Read")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["device_code"].as_str().unwrap().to_string(), v["user_code"].as_str().unwrap().to_string(), v)
    };
    let poll = |dc: String| {
        let env = &env;
        async move {
            let r = env
                .http
                .post(env.token_url())
                .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("client_id", &env.sim.client_id()), ("device_code", &dc)])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (dc, uc, v) = start().await;
    assert_eq!(v["expires_in"], 900);
    assert_eq!(v["interval"], 5);
    let (s, v) = poll(dc.clone()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "authorization_pending"));
    assert!(env.sim.approve_device_code(&uc, true));
    let (s, v) = poll(dc.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["refresh_token"].is_string());
    assert!(v["access_token"].is_string());

    let (dc, uc, _) = start().await;
    assert!(env.sim.approve_device_code(&uc, false));
    let (s, v) = poll(dc).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "authorization_declined"));
    let (s, v) = poll("nonsense".into()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "bad_verification_code"));

    env.sim.reconfigure(|c| c.device_code_lifetime = std::time::Duration::ZERO);
    let (dc, _, _) = start().await;
    let (s, v) = poll(dc).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "expired_token"));
}
