//! A Microsoft Graph v1.0 + identity platform v2.0 double, serving real HTTP on 127.0.0.1.
//!
//! It is an independent reading of Graph's documented and observed behaviour (see
//! `simulator/README.md` and `simulator/DIFFERENCES.md`), used by tests, benchmarks and
//! `outlake demo`. It shares no code with the connector.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let sim = outlake_simulator::Simulator::start(outlake_simulator::SimConfig::default()).await?;
//! let url = sim.url(); // use as both the authority URL and the Graph URL
//! # let _ = url; sim.shutdown().await; Ok(()) }
//! ```
//!
//! Served routes:
//! - identity platform: `/{tenant}/oauth2/v2.0/{token,authorize,devicecode}` ([`identity`]);
//! - Graph: `/v1.0/users`, `/v1.0/users/{id|upn}`, `/v1.0/me`, and per mailbox
//!   `mailFolders/delta`, `mailFolders/{id|name}`, `mailFolders/{id|name}/messages/delta`,
//!   `calendars`, `calendars/{id}`, `calendar`, `calendarView/delta` and
//!   `calendar/calendarView/delta` (default calendar), `calendars/{id}/calendarView/delta`
//!   ([`graph`]);
//! - admin: `/_sim/*` ([`admin`]).
//!
//! Every Graph request is recorded in the request log ([`requests`]): mailbox, client-request-id,
//! User-Agent and run id, start and end, status.
//!
//! Module map: [`config`] (what can be set), [`seed`] (the generated world), [`bulk`] (the
//! lazily generated bulk folder), [`model`] (entities and versions), [`mutation`] (changes), [`sync`] (delta rounds, generations, tokens),
//! [`wire`] (JSON formats), [`tz`] (Windows zones), [`throttle`], [`faults`], [`stats`],
//! [`truth`], [`respond`] (error bodies and correlation headers), [`requests`] (the request log).

pub mod admin;
pub mod bulk;
pub mod config;
pub mod error;
pub mod faults;
pub mod fmt;
pub mod graph;
pub mod hostile;
pub mod identity;
pub mod model;
pub mod mutation;
pub mod replay;
pub mod requests;
pub mod respond;
pub mod seed;
mod state;
pub mod stats;
pub mod sync;
pub mod throttle;
pub mod truth;
pub mod tz;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

pub use config::{ConfigPatch, FaultRates, SimConfig};
pub use error::SimError;
pub use hostile::{Corruption, HostileRule, HostileStream, PageSelect};
pub use mutation::Mutation;
pub use replay::{Recorded, RecordedRequest, Replay, ReplayMode};
pub use requests::{Overlap, RequestLog, RequestRecord};

use state::{Shared, State};

/// A running simulator. Dropping it without [`Simulator::shutdown`] leaves the server task
/// running until the runtime ends.
pub struct Simulator {
    shared: Arc<Shared>,
    requests: Arc<requests::Recorder>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn router(shared: Arc<Shared>, log: Arc<requests::Recorder>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/{tenant}/oauth2/v2.0/authorize", get(identity::authorize))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(identity::devicecode))
        .route("/devicelogin", get(identity::devicelogin))
        .route("/_sim/mutate", post(admin::mutate))
        .route("/_sim/random-changes", post(admin::random_changes))
        .route("/_sim/expire-tokens", post(admin::expire_tokens))
        .route("/_sim/revoke-access-tokens", post(admin::revoke_access))
        .route("/_sim/revoke-refresh-tokens", post(admin::revoke_refresh))
        .route("/_sim/truth", get(admin::truth))
        .route("/_sim/stats", get(admin::stats))
        .route("/_sim/reconfigure", post(admin::reconfigure))
        .route("/_sim/devicecode", post(admin::devicecode))
        .route("/_sim/requests", get(admin::requests))
        .route("/_sim/requests/clear", post(admin::clear_requests))
        .fallback(graph::handle)
        .layer(axum::middleware::from_fn_with_state(requests::Logged { shared: shared.clone(), log: log.clone() }, requests::middleware))
        .layer(axum::Extension(log))
        .with_state(shared)
}

pub(crate) fn apply_mutations(sh: &Shared, muts: Vec<Mutation>) -> Result<Vec<Value>, SimError> {
    let mut st = sh.state.lock();
    let st = &mut *st;
    muts.into_iter().map(|m| mutation::apply(&mut st.world, &mut st.rng, m)).collect()
}

impl Simulator {
    /// Builds the world from `config` and starts serving on 127.0.0.1:`config.port`.
    pub async fn start(config: SimConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let mut ids = StdRng::seed_from_u64(config.seed ^ 0x1d5);
        let tenant_id = fmt::guid(&mut ids);
        let client_id = fmt::guid(&mut ids);
        let client_secret = format!("sim~{}", fmt::exchange_id(&mut ids, "", 27).replace(['=', '-', '_'], "x"));
        let state = State::new(config);
        let shared =
            Arc::new(Shared { state: Mutex::new(state), tenant_id, client_id, client_secret, url: format!("http://{addr}"), replay: Replay::default() });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let requests = Arc::new(requests::Recorder::default());
        let app = router(shared.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator { shared, requests, addr, stop: Some(tx), task })
    }

    /// `http://127.0.0.1:PORT`: the authority URL and the Graph URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn tenant_id(&self) -> String {
        self.shared.tenant_id.clone()
    }
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }
    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone()
    }
    /// `{"url","tenant_id","client_id","client_secret"}`.
    pub fn credentials_json(&self) -> Value {
        json!({"url": self.url(), "tenant_id": self.tenant_id(), "client_id": self.client_id(), "client_secret": self.client_secret()})
    }
    /// The lines of an outlake `[source]` section (app-only) that point at this simulator,
    /// without the section header.
    pub fn source_toml(&self) -> String {
        format!(
            "tenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority_url = \"{url}\"\ngraph_url = \"{url}\"\n",
            self.tenant_id(),
            self.client_id(),
            self.client_secret(),
            url = self.url()
        )
    }
    /// The current state of every mailbox; format in [`truth`].
    pub fn truth(&self) -> Value {
        truth::truth(&self.shared.state.lock())
    }
    /// The (folder id, immutable id) of every message present in this mailbox (id or UPN),
    /// stored or generated: the keys of the truth's `messages`, computed without building JSON
    /// (cheap enough for a bulk folder of a million messages). Empty for an unknown mailbox or a
    /// user without one.
    pub fn message_ids(&self, mailbox: &str) -> std::collections::BTreeSet<(String, String)> {
        let st = self.shared.state.lock();
        st.world.user_index(mailbox).and_then(|ui| st.world.users[ui].mailbox.as_ref()).map(|mb| mb.message_keys()).unwrap_or_default()
    }
    /// Counters; format in [`stats`].
    pub fn stats(&self) -> Value {
        serde_json::to_value(&self.shared.state.lock().stats).expect("json")
    }
    /// Applies mutations in order; stops at the first failure (earlier ones stay applied).
    pub fn mutate(&self, mutations: Vec<Mutation>) -> Result<Vec<Value>, SimError> {
        apply_mutations(&self.shared, mutations)
    }
    /// A round of every kind of change for every mailbox, `count_per_kind` of each where
    /// possible: message create/update/delete/move, folder create/rename/delete, event
    /// create/update/cancel/delete, one event moved out of the window, and, when the mailbox has a
    /// calendar besides the default one, one event created in it and one moved into it. Not applied.
    pub fn random_changes(&self, seed: u64, count_per_kind: usize) -> Vec<Mutation> {
        mutation::random_changes(&self.shared.state.lock().world, seed, count_per_kind)
    }
    /// Every sync token of this mailbox (id or UPN) answers 410 on its next use.
    pub fn expire_sync_state(&self, mailbox: &str) {
        let mut st = self.shared.state.lock();
        if let Some(ui) = st.world.user_index(mailbox) {
            st.sync.expire_user(ui);
        }
    }
    /// Every access token issued so far stops working (401).
    pub fn revoke_access_tokens(&self) {
        self.shared.state.lock().auth.revoke_access_tokens();
    }
    /// Every refresh token issued so far stops working (400 invalid_grant AADSTS70008).
    pub fn revoke_refresh_tokens(&self) {
        self.shared.state.lock().auth.revoke_refresh_tokens();
    }
    /// Changes live settings.
    pub fn reconfigure(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.shared.state.lock().cfg);
    }
    /// Approves or denies a pending device code; false when no pending code has that user code.
    pub fn approve_device_code(&self, user_code: &str, approve: bool) -> bool {
        self.shared.state.lock().auth.decide_device(user_code, approve)
    }
    /// Ids of the users that have a mailbox.
    pub fn mailbox_ids(&self) -> Vec<String> {
        self.shared.state.lock().world.users.iter().filter(|u| u.mailbox.is_some()).map(|u| u.id.clone()).collect()
    }
    /// Ids of all users, with and without a mailbox.
    pub fn user_ids(&self) -> Vec<String> {
        self.shared.state.lock().world.users.iter().map(|u| u.id.clone()).collect()
    }
    /// Pre-rendered pages: `Record` a backfill's delta pages, then `Serve` them as static bytes
    /// (see [`replay`]).
    pub fn set_replay_mode(&self, mode: ReplayMode) {
        self.shared.replay.set_mode(mode);
    }
    /// The recorded pages (see [`replay`]).
    pub fn replay(&self) -> &Replay {
        &self.shared.replay
    }
    /// Every Graph request answered so far that the log kept ([`requests`]).
    pub fn request_log(&self) -> RequestLog {
        self.requests.snapshot()
    }
    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.requests.clear();
    }
    /// Keeps at most `capacity` records (default [`requests::DEFAULT_CAPACITY`]; 0 turns the
    /// log off).
    pub fn set_request_log_capacity(&self, capacity: usize) {
        self.requests.set_capacity(capacity);
    }
    /// Also writes every Graph request as an `info` log line.
    pub fn log_requests(&self, on: bool) {
        self.requests.set_echo(on);
    }
    /// Stops serving.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// Starts, prints one JSON line `{"url","tenant_id","client_id","client_secret"}` to stdout, and
/// serves until Ctrl-C. With `log_requests`, every Graph request is also an `info` log line.
pub async fn serve_cli(config: SimConfig, log_requests: bool) -> std::io::Result<()> {
    let sim = Simulator::start(config).await?;
    sim.log_requests(log_requests);
    println!("{}", sim.credentials_json());
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
