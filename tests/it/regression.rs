//! Regression tests, each named after what broke, with the reason in a comment.

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, stderr, sync_with_report};
use super::truth::assert_lake_equals_truth;

/// Issue #13: the connector decided "this request is `/me`" by looking for `/me` in the request
/// line, and `GET /v1.0/users/megan.…@contoso.onmicrosoft.com` contains `/me` too. A 400
/// `BadRequest` while resolving Megan, listed in `source.mailboxes`, stopped the whole run as an
/// authentication error (exit 2) with advice about delegated sign-in that did not apply. Now
/// the request kind decides: her mailbox fails with Graph's error, the others sync, and the
/// run ends partial (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_resolving_a_listed_upn_starting_with_me_fails_that_mailbox_only() {
    // 13 users: the 12th is Megan (with a mailbox), the 13th has none.
    let cfg = SimConfig { users: 13, messages_per_mailbox: 30, events_per_mailbox: 8, seed: 13, ..SimConfig::default() };
    let env = Env::start(cfg, "").await;
    let truth = env.sim.truth();
    let users = truth["mailboxes"].as_array().unwrap().clone();
    let upn = |m: &Value| m["userPrincipalName"].as_str().unwrap().to_string();
    let megan = users.iter().find(|m| upn(m).starts_with("megan.")).expect("the seeded directory has a Megan").clone();
    assert_eq!(megan["has_mailbox"], true, "Megan fails only because of the 400, not for want of a mailbox");
    let others: Vec<Value> = users.iter().filter(|m| m["has_mailbox"] == true && m["id"] != megan["id"]).take(2).cloned().collect();
    let megan_upn = upn(&megan);
    let megan_id = megan["id"].as_str().unwrap().to_string();
    // The request line that fooled the old check really contains "/me".
    assert!(format!("/v1.0/users/{megan_upn}").contains("/me"));

    env.sim.reconfigure(|c| c.bad_request_users = vec![megan_upn.clone()]);
    let entries = [upn(&others[0]), megan_upn.clone(), upn(&others[1])].map(|e| format!("\"{e}\""));
    let text = std::fs::read_to_string(&env.config).unwrap().replace("mailboxes = \"all\"", &format!("mailboxes = [{}]", entries.join(", ")));
    std::fs::write(&env.config, text).unwrap();

    let (out, rep) = sync_with_report(&env, "r.json");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "a partial run, not an auth failure (2); stderr:\n{err}");
    assert!(!err.contains("delegated sign-in"), "advice for /me given for a configured user:\n{err}");
    assert_eq!(rep["fatal"], Value::Null, "{rep:#}");
    assert_eq!(rep["totals"]["mailboxes_ok"], 2, "{rep:#}");
    assert_eq!(rep["totals"]["mailboxes_failed"], 1, "{rep:#}");
    let failed: Vec<&Value> = rep["mailboxes"].as_array().unwrap().iter().filter(|m| m["status"] == "failed").collect();
    assert_eq!(failed[0]["label"], megan_upn.as_str(), "{rep:#}");
    let why = failed[0]["error"].as_str().unwrap();
    assert!(why.contains("BadRequest") && why.contains(&megan_upn), "the failure names Graph's error and the entry: {why}");
    assert!(err.contains(&format!("FAILED {megan_upn}")), "{err}");
    // Her mailbox was never asked for anything after the failed resolution.
    assert_eq!(env.sim.stats()["requests_by_mailbox"].get(&megan_id).and_then(Value::as_u64).unwrap_or(0), 0);

    // The other two are complete.
    let mut only = truth.clone();
    only["mailboxes"] = Value::Array(others);
    assert_lake_equals_truth(&env.lake(), &only);
    env.sim.shutdown().await;
}
