//! The admin API under `/_sim/` (no auth): not part of Graph.
//!
//! - `POST /_sim/mutate` — body: JSON array of [`crate::Mutation`]; answers the array of results;
//! - `POST /_sim/random-changes` — `{"seed":u64,"count_per_kind":n}`: generates and applies a round
//!   of every kind of change; answers `{"mutations":[…],"results":[…]}`;
//! - `POST /_sim/expire-tokens` — `{"mailbox":"<id or UPN>"}`: every sync token of it → 410;
//! - `POST /_sim/revoke-access-tokens`, `POST /_sim/revoke-refresh-tokens`;
//! - `GET /_sim/truth`, `GET /_sim/stats`;
//! - `POST /_sim/reconfigure` — a [`crate::config::ConfigPatch`];
//! - `POST /_sim/devicecode` — `{"user_code":"…","approve":bool}` → `{"found":bool}`;
//! - `GET /_sim/requests` — the request log, a [`crate::requests::RequestLog`]:
//!   `{"capacity":n,"dropped":n,"entries":[{"seq","mailbox","client_request_id","user_agent",
//!   "run_id","start_us","end_us","status"}]}` (deserialize it into `RequestLog` for its
//!   analyses); `POST /_sim/requests/clear` empties it → `{"cleared":true}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::ConfigPatch;
use crate::mutation::Mutation;
use crate::requests::Recorder;
use crate::state::Shared;

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

pub async fn mutate(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let muts: Vec<Mutation> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return bad(format!("body must be a JSON array of mutations: {e}")),
    };
    match crate::apply_mutations(&sh, muts) {
        Ok(v) => Json(Value::Array(v)).into_response(),
        Err(e) => bad(e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct RandomChanges {
    seed: u64,
    count_per_kind: usize,
}

pub async fn random_changes(AxState(sh): AxState<Arc<Shared>>, Json(r): Json<RandomChanges>) -> Response {
    let muts = crate::mutation::random_changes(&sh.state.lock().world, r.seed, r.count_per_kind);
    match crate::apply_mutations(&sh, muts.clone()) {
        Ok(v) => Json(json!({"mutations": muts, "results": v})).into_response(),
        Err(e) => bad(e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct MailboxArg {
    mailbox: String,
}

pub async fn expire_tokens(AxState(sh): AxState<Arc<Shared>>, Json(a): Json<MailboxArg>) -> Response {
    let mut st = sh.state.lock();
    match st.world.user_index(&a.mailbox) {
        Some(ui) => {
            st.sync.expire_user(ui);
            Json(json!({"expired": true})).into_response()
        }
        None => bad(format!("unknown mailbox {:?}", a.mailbox)),
    }
}

pub async fn revoke_access(AxState(sh): AxState<Arc<Shared>>) -> Response {
    sh.state.lock().auth.revoke_access_tokens();
    Json(json!({"revoked": true})).into_response()
}

pub async fn revoke_refresh(AxState(sh): AxState<Arc<Shared>>) -> Response {
    sh.state.lock().auth.revoke_refresh_tokens();
    Json(json!({"revoked": true})).into_response()
}

pub async fn truth(AxState(sh): AxState<Arc<Shared>>) -> Response {
    Json(crate::truth::truth(&sh.state.lock())).into_response()
}

pub async fn stats(AxState(sh): AxState<Arc<Shared>>) -> Response {
    Json(serde_json::to_value(&sh.state.lock().stats).expect("json")).into_response()
}

pub async fn reconfigure(AxState(sh): AxState<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("invalid reconfigure body: {e}")),
    };
    patch.apply(&mut sh.state.lock().cfg);
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
pub struct DeviceDecision {
    user_code: String,
    #[serde(default = "yes")]
    approve: bool,
}

fn yes() -> bool {
    true
}

pub async fn devicecode(AxState(sh): AxState<Arc<Shared>>, Json(d): Json<DeviceDecision>) -> Response {
    let found = sh.state.lock().auth.decide_device(&d.user_code, d.approve);
    Json(json!({"found": found})).into_response()
}

pub async fn requests(axum::Extension(log): axum::Extension<Arc<Recorder>>) -> Response {
    Json(log.snapshot()).into_response()
}

pub async fn clear_requests(axum::Extension(log): axum::Extension<Arc<Recorder>>) -> Response {
    log.clear();
    Json(json!({"cleared": true})).into_response()
}
