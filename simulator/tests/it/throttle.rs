//! Throttling per (app, mailbox).

use std::time::Duration;

use outlake_simulator::SimConfig;
use serde_json::Value;

use crate::{Env, small};

#[tokio::test]
async fn concurrency_limit_gives_429_mailbox_concurrency() {
    let env = Env::new(SimConfig { latency: Duration::from_millis(200), ..small() }).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox"));
    let futs = (0..10).map(|_| env.get(&url, &[]));
    let rs = futures::future::join_all(futs).await;
    let mut ok = 0;
    let mut throttled = 0;
    for r in rs {
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(r.headers().contains_key("retry-after"));
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["code"], "ApplicationThrottled");
                assert_eq!(v["error"]["message"], "Application is over its MailboxConcurrency limit.");
                throttled += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok, 4);
    assert_eq!(throttled, 6);
    // Another mailbox is not affected.
    let other = env.sim.mailbox_ids()[1].clone();
    assert_eq!(env.get(&env.graph(&format!("/users/{other}/mailFolders/inbox")), &[]).await.status(), 200);
    let stats = env.sim.stats();
    assert_eq!(stats["throttled"]["concurrency"], 6);
    assert_eq!(stats["max_in_flight"][&mb], 4);
}

#[tokio::test]
async fn window_limit_gives_429_with_retry_after() {
    let env = Env::new(SimConfig { requests_per_window: 5, window: Duration::from_secs(30), ..small() }).await;
    let mb = env.mailbox();
    let url = env.graph(&format!("/users/{mb}/mailFolders/inbox"));
    for _ in 0..5 {
        assert_eq!(env.get(&url, &[]).await.status(), 200);
    }
    let r = env.get(&url, &[]).await;
    assert_eq!(r.status(), 429);
    let ra: f64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(ra > 0.0 && ra <= 30.0, "{ra}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "TooManyRequests");
    // Live reconfiguration lifts the limit.
    env.sim.reconfigure(|c| c.requests_per_window = 1000);
    assert_eq!(env.get(&url, &[]).await.status(), 200);
}
