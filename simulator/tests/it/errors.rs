//! Graph error bodies and mailbox states.

use serde_json::Value;

use crate::{Env, small};

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let s = r.status().as_u16();
    let rid = r.headers().get("request-id").map(|h| h.to_str().unwrap().to_string());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["innerError"]["request-id"].as_str().map(str::to_string), rid);
    let date = v["error"]["innerError"]["date"].as_str().unwrap();
    assert!(!date.ends_with('Z') && date.len() == 19, "{date}");
    (s, v)
}

#[tokio::test]
async fn auth_failures_and_mailbox_states() {
    let env = Env::new(small()).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/delta"));

    let (s, v) = error_of(env.http.get(&url).send().await.unwrap()).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (401, "InvalidAuthenticationToken"));
    let (s, _) = error_of(env.http.get(&url).bearer_auth("garbage").send().await.unwrap()).await;
    assert_eq!(s, 401);

    // client-request-id is echoed.
    let r = env.http.get(&url).bearer_auth(&env.token).header("client-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["client-request-id"], "abc-123");
    assert!(r.headers().contains_key("request-id"));

    // /me with an app token.
    let (s, v) = error_of(env.get(&env.graph("/me/mailFolders/delta"), &[]).await).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], "BadRequest");
    assert_eq!(v["error"]["message"], "/me request is only valid with delegated authentication flow.");

    // The user without a mailbox.
    let users = env.get_json(&env.graph("/users"), &[]).await;
    let no_mb = users["value"].as_array().unwrap().iter().find(|u| !env.sim.mailbox_ids().contains(&u["id"].as_str().unwrap().to_string())).unwrap();
    let id = no_mb["id"].as_str().unwrap();
    let user = env.get_json(&env.graph(&format!("/users/{}", no_mb["userPrincipalName"].as_str().unwrap())), &[]).await;
    assert_eq!(user["id"], id);
    for path in ["mailFolders/delta", "mailFolders/inbox/messages/delta", "mailFolders/inbox"] {
        let (s, v) = error_of(env.get(&env.graph(&format!("/users/{id}/{path}")), &[]).await).await;
        assert_eq!((s, v["error"]["code"].as_str().unwrap()), (404, "MailboxNotEnabledForRESTAPI"));
    }

    // Quota exceeded: delta refused, plain folder GET works. Access policy: 403.
    let other = env.sim.mailbox_ids()[1].clone();
    env.sim.reconfigure(|c| {
        c.quota_exceeded_mailboxes = vec![mb.clone()];
        c.blocked_mailboxes = vec![other.clone()];
    });
    let (s, v) = error_of(env.get(&url, &[]).await).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (403, "ErrorQuotaExceeded"));
    assert_eq!(env.get(&env.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await.status(), 200);
    let (s, v) = error_of(env.get(&env.graph(&format!("/users/{other}/mailFolders/delta")), &[]).await).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (403, "ErrorAccessDenied"));

    // A missing permission.
    env.sim.reconfigure(|c| c.app_roles = vec!["Mail.Read".into()]);
    let weak = Env { sim: env.sim, http: env.http.clone(), token: String::new() };
    let token = weak.app_token().await;
    let weak = Env { token, ..weak };
    let (s, v) = error_of(weak.get(&weak.graph("/users"), &[]).await).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (403, "Authorization_RequestDenied"));
    let cal = weak.graph(&format!("/users/{other}/calendarView/delta?startDateTime=2024-01-01&endDateTime=2024-02-01"));
    let (s, v) = error_of(weak.get(&cal, &[]).await).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (403, "ErrorAccessDenied"));
    assert_eq!(v["error"]["message"], "Access is denied. Check credentials and try again.");

    // Revoked access tokens.
    weak.sim.revoke_access_tokens();
    let (s, v) = error_of(weak.get(&weak.graph(&format!("/users/{mb}/mailFolders/inbox")), &[]).await).await;
    assert_eq!((s, v["error"]["code"].as_str().unwrap()), (401, "InvalidAuthenticationToken"));
    weak.sim.shutdown().await;
}
