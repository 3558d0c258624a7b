//! Every fault kind clears when the same URL is retried, and faults never advance sync state.

use outlake_simulator::{FaultRates, SimConfig};
use serde_json::Value;

use crate::{Env, small};

async fn check_kind(rates: FaultRates, expect: &str) {
    let env = Env::new(SimConfig { faults: rates, ..small() }).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    // First page, retried until success; the fault must have been seen on the first attempt.
    let (status, body) = match env.http.get(&url).bearer_auth(&env.token).send().await {
        Ok(r) => (r.status().as_u16(), r.bytes().await.map_err(|e| e.to_string())),
        Err(e) => (0, Err(e.to_string())),
    };
    match expect {
        "service_unavailable" => assert_eq!(status, 503),
        "gateway_timeout" => assert_eq!(status, 504),
        "connection_reset" => assert!(body.is_err(), "body must fail"),
        "truncated_json" => {
            assert_eq!(status, 200);
            assert!(serde_json::from_slice::<Value>(&body.unwrap()).is_err());
        }
        "token_revocation" => assert_eq!(status, 401),
        _ => unreachable!(),
    }
    let token = if expect == "token_revocation" { env.app_token().await } else { env.token.clone() };
    let env = Env { token, ..env };
    let v = env.get_json(&url, &[]).await;
    assert!(v["value"].as_array().is_some());
    // Paging goes on: a faulted page never advanced the generation, so the next link works.
    let next = v["@odata.nextLink"].as_str().unwrap().to_string();
    let r = loop {
        let Ok(r) = env.http.get(&next).bearer_auth(&env.token).send().await else { continue };
        let s = r.status();
        let body = r.bytes().await;
        if s == 200
            && let Ok(b) = body
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
        {
            break v;
        }
        if s == 401 {
            panic!("token revocation on a second URL is possible but rates are 1.0 for one kind only; got 401");
        }
    };
    assert!(r["value"].as_array().is_some());
    assert!(env.sim.stats()["faults"][expect].as_u64().unwrap() >= 1);
    env.sim.shutdown().await;
}

#[tokio::test]
async fn each_fault_kind_then_retry_succeeds() {
    check_kind(FaultRates { service_unavailable: 1.0, ..Default::default() }, "service_unavailable").await;
    check_kind(FaultRates { gateway_timeout: 1.0, ..Default::default() }, "gateway_timeout").await;
    check_kind(FaultRates { connection_reset: 1.0, ..Default::default() }, "connection_reset").await;
    check_kind(FaultRates { truncated_json: 1.0, ..Default::default() }, "truncated_json").await;
}

#[tokio::test]
async fn token_revocation_fault() {
    let env = Env::new(SimConfig { faults: FaultRates { token_revocation: 1.0, ..Default::default() }, ..small() }).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox"));
    assert_eq!(env.get(&url, &[]).await.status(), 401);
    // The token stays dead for every URL; a new token gets the same URL through.
    let token = env.app_token().await;
    let env = Env { token, ..env };
    assert_eq!(env.get(&url, &[]).await.status(), 200);
}

#[tokio::test]
async fn global_fault_rate_full_sync_still_matches_truth() {
    let env = Env::new(SimConfig { fault_rate: 0.3, ..small() }).await;
    let mb = env.mailbox();
    let mut token = env.token.clone();
    let mut next = env.graph(&format!("/users/{mb}/mailFolders/inbox/messages/delta"));
    let mut items = Vec::new();
    let mut faults = 0;
    loop {
        let Ok(r) = env.http.get(&next).bearer_auth(&token).header("Prefer", "odata.maxpagesize=5,IdType=\"ImmutableId\"").send().await else {
            faults += 1;
            continue;
        };
        let s = r.status().as_u16();
        let parsed = match r.bytes().await {
            Ok(b) => serde_json::from_slice::<Value>(&b).ok(),
            Err(_) => None,
        };
        match (s, parsed) {
            (200, Some(v)) => {
                items.extend(v["value"].as_array().unwrap().iter().cloned());
                match v.get("@odata.nextLink") {
                    Some(n) => next = n.as_str().unwrap().to_string(),
                    None => break,
                }
            }
            (401, _) => {
                faults += 1;
                token = env.app_token().await;
            }
            _ => faults += 1,
        }
    }
    assert!(faults > 0);
    let t = env.truth_mailbox(&mb);
    let inbox = items[0]["parentFolderId"].clone();
    let expected: Vec<&Value> = t["messages"].as_array().unwrap().iter().filter(|m| m["parentFolderId"] == inbox).collect();
    assert_eq!(items.len(), expected.len());
}
