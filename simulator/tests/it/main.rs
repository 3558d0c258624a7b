//! Integration tests of the simulator over real HTTP (one test binary).

mod auth;
mod bulk;
mod calendars;
mod delta;
mod errors;
mod faults;
mod requests;
mod throttle;

use outlake_simulator::{SimConfig, Simulator};
use reqwest::{Client, Response};
use serde_json::Value;

pub struct Env {
    pub sim: Simulator,
    pub http: Client,
    pub token: String,
}

pub fn small() -> SimConfig {
    SimConfig { messages_per_mailbox: 60, events_per_mailbox: 20, ..SimConfig::default() }
}

impl Env {
    pub async fn new(cfg: SimConfig) -> Env {
        let sim = Simulator::start(cfg).await.expect("start");
        let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut env = Env { sim, http, token: String::new() };
        env.token = env.app_token().await;
        env
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.sim.url(), self.sim.tenant_id())
    }

    pub async fn app_token(&self) -> String {
        let r = self
            .http
            .post(self.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.sim.client_id()),
                ("client_secret", &self.sim.client_secret()),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    pub fn graph(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.sim.url())
    }

    /// GET with the app token and extra Prefer values.
    pub async fn get(&self, url: &str, prefer: &[&str]) -> Response {
        let mut rb = self.http.get(url).bearer_auth(&self.token);
        for p in prefer {
            rb = rb.header("Prefer", *p);
        }
        rb.send().await.unwrap()
    }

    pub async fn get_json(&self, url: &str, prefer: &[&str]) -> Value {
        let r = self.get(url, prefer).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{url}: {v}");
        v
    }

    /// Follows a whole delta round; returns (items, deltaLink, pages).
    pub async fn round(&self, url: &str, prefer: &[&str]) -> (Vec<Value>, String, usize) {
        let mut items = Vec::new();
        let mut next = url.to_string();
        let mut pages = 0;
        loop {
            let v = self.get_json(&next, prefer).await;
            pages += 1;
            assert!(v["@odata.context"].is_string());
            items.extend(v["value"].as_array().unwrap().iter().cloned());
            match (v.get("@odata.nextLink"), v.get("@odata.deltaLink")) {
                (Some(n), None) => next = n.as_str().unwrap().to_string(),
                (None, Some(d)) => return (items, d.as_str().unwrap().to_string(), pages),
                other => panic!("nextLink xor deltaLink violated: {other:?}"),
            }
        }
    }

    pub fn mailbox(&self) -> String {
        self.sim.mailbox_ids()[0].clone()
    }

    pub fn truth_mailbox(&self, id: &str) -> Value {
        let t = self.sim.truth();
        t["mailboxes"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap().clone()
    }
}

pub const IMM: &str = "IdType=\"ImmutableId\"";
