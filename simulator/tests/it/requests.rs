//! The request log: who asked for which mailbox and when, and the analyses tests rely on to
//! prove that no mailbox was served to two workers at once.

use std::time::Duration;

use outlake_simulator::{RequestLog, SimConfig};
use serde_json::Value;

use crate::{Env, small};

const UA_A: &str = "outlake/0.1.0 (run run-a)";
const UA_B: &str = "outlake/0.1.0 (run run-b)";

impl Env {
    /// GET with the app token as a worker would send it.
    async fn get_as(&self, url: &str, user_agent: &str, client_request_id: &str) -> u16 {
        let r =
            self.http.get(url).bearer_auth(&self.token).header("User-Agent", user_agent).header("client-request-id", client_request_id).send().await.unwrap();
        r.status().as_u16()
    }

    /// Waits (on the simulator's counters, not on a clock) until `n` requests of `mailbox` were
    /// admitted: they are then in flight, inside the configured latency.
    async fn admitted(&self, mailbox: &str, n: u64) {
        while self.sim.stats()["requests_by_mailbox"][mailbox].as_u64().unwrap_or(0) < n {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test]
async fn two_workers_on_one_mailbox_at_once_are_detected_and_turns_are_not() {
    // A long latency keeps a request in flight while the next one arrives.
    let env = Env::new(SimConfig { latency: Duration::from_millis(600), ..small() }).await;
    let ids = env.sim.mailbox_ids();
    let (shared, turns) = (ids[0].clone(), ids[1].clone());
    let upn = env.get_json(&env.graph(&format!("/users/{shared}")), &[]).await["userPrincipalName"].as_str().unwrap().to_string();
    env.sim.clear_request_log();

    // Worker A is in flight on `shared` when worker B asks for it, by UPN.
    let a = {
        let url = env.graph(&format!("/users/{shared}/mailFolders/inbox"));
        let env = &env;
        async move { env.get_as(&url, UA_A, "00000000-0000-4000-8000-00000000000a").await }
    };
    let b = async {
        env.admitted(&shared, 1).await;
        env.get_as(&env.graph(&format!("/users/{upn}/mailFolders/inbox")), UA_B, "00000000-0000-4000-8000-00000000000b").await
    };
    assert_eq!(futures::join!(a, b), (200, 200));
    // On `turns` they take turns: B asks only after A was answered.
    assert_eq!(env.get_as(&env.graph(&format!("/users/{turns}/mailFolders/inbox")), UA_A, "c-1").await, 200);
    assert_eq!(env.get_as(&env.graph(&format!("/users/{turns}/mailFolders/inbox")), UA_B, "c-2").await, 200);

    let log = env.sim.request_log();
    assert_eq!(log.dropped, 0);
    assert_eq!(log.entries.len(), 4, "{log:#?}");
    let overlaps = log.overlapping_workers();
    assert_eq!(overlaps.len(), 1, "{overlaps:#?}");
    assert_eq!((overlaps[0].mailbox.as_str(), overlaps[0].first.as_str(), overlaps[0].second.as_str()), (shared.as_str(), "run-a", "run-b"));
    let in_flight = log.max_in_flight();
    assert_eq!(in_flight[&shared], 2, "{in_flight:?}");
    assert_eq!(in_flight[&turns], 1, "{in_flight:?}");

    // Every record names its mailbox (the UPN resolved to the id), its worker and its ids.
    let b = log.entries.iter().find(|r| r.client_request_id.as_deref() == Some("00000000-0000-4000-8000-00000000000b")).unwrap();
    assert_eq!(b.mailbox.as_deref(), Some(shared.as_str()));
    assert_eq!((b.user_agent.as_deref(), b.run_id.as_deref(), b.status), (Some(UA_B), Some("run-b"), 200));
    assert!(b.end_us >= b.start_us + 600_000, "the latency is inside the request's interval: {b:?}");
    assert_eq!(log.run_ids().into_iter().collect::<Vec<_>>(), ["run-a", "run-b"]);

    // The admin API serves the same log.
    let served: RequestLog = env.http.get(format!("{}/_sim/requests", env.sim.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, log);
    let cleared: Value = env.http.post(format!("{}/_sim/requests/clear", env.sim.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(cleared["cleared"], true);
    assert!(env.sim.request_log().entries.is_empty());
}

#[tokio::test]
async fn the_listing_names_no_mailbox_and_the_log_stays_within_its_capacity() {
    let env = Env::new(small()).await;
    env.sim.set_request_log_capacity(3);
    for i in 0..5 {
        assert_eq!(env.get_as(&env.graph("/users"), UA_A, &format!("r-{i}")).await, 200);
    }
    let log = env.sim.request_log();
    assert_eq!((log.capacity, log.dropped), (3, 2));
    let ids: Vec<_> = log.entries.iter().map(|r| r.client_request_id.clone().unwrap()).collect();
    assert_eq!(ids, ["r-2", "r-3", "r-4"], "the newest are kept");
    assert!(log.entries.iter().all(|r| r.mailbox.is_none() && r.status == 200));
    assert!(log.max_in_flight().is_empty() && log.overlapping_workers().is_empty());
}
