//! `outlake auth …` end to end: the real binary against the simulator's identity platform.
//! The test plays the browser (authorization code) or the user on another device (device
//! code). Waits are bounded polls on the child process, never sleeps.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use outlake_simulator::{SimConfig, Simulator};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(60);

struct AuthEnv {
    sim: Simulator,
    _dir: tempfile::TempDir,
    config: PathBuf,
    cache: PathBuf,
}

/// A free loopback port (bound, then released for the child to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl AuthEnv {
    /// `auth` is the config's `source.auth`; `confidential` puts the client secret in the config.
    async fn start(sim_cfg: SimConfig, auth: &str, confidential: bool) -> AuthEnv {
        let sim = Simulator::start(sim_cfg).await.expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("tokens.json");
        let secret = if confidential { format!("client_secret = \"{}\"\n", sim.client_secret()) } else { String::new() };
        let toml = format!(
            "[source]\ntenant_id = \"{tenant}\"\nclient_id = \"{client}\"\n{secret}authority_url = \"{url}\"\ngraph_url = \"{url}\"\nauth = \"{auth}\"\nredirect_uri = \"http://localhost:{port}/callback\"\ntoken_cache = \"{cache}\"\n\n[sink]\nurl = \"file://{lake}\"\n",
            tenant = sim.tenant_id(),
            client = sim.client_id(),
            url = sim.url(),
            port = free_port(),
            cache = cache.display(),
            lake = dir.path().join("lake").display(),
        );
        let config = dir.path().join("outlake.toml");
        std::fs::write(&config, toml).unwrap();
        AuthEnv { sim, _dir: dir, config, cache }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_outlake"));
        cmd.args(args).arg("--config").arg(&self.config);
        for (k, _) in std::env::vars() {
            if k.starts_with("OUTLAKE_") {
                cmd.env_remove(k);
            }
        }
        // Everything the binary logs, to check that no secret reaches a log.
        cmd.env("RUST_LOG", "trace").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = self.command(args).spawn().expect("outlake starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(WAIT, self.command(args).output()).await.expect("outlake finishes in time").expect("outlake runs")
    }

    /// Sign in through the device-code flow, auto-approved by the simulator.
    async fn device_login(&self) -> Output {
        self.sim.reconfigure(|c| c.device_code_auto_approve = true);
        let out = self.run(&["auth", "login", "--device-code", "--no-browser"]).await;
        assert_ok(&out);
        out
    }

    fn cache_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.cache).expect("token cache written")).unwrap()
    }
}

/// The first stdout line containing `needle`.
async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            match lines.next_line().await.unwrap() {
                Some(l) if l.contains(needle) => return l,
                Some(_) => continue,
                None => panic!("stdout ended before a line with {needle:?}"),
            }
        }
    })
    .await
    .expect("the line appears in time")
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(WAIT, child.wait_with_output()).await.expect("outlake exits in time").expect("outlake ran")
}

fn text(out: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "exit {:?}\n{}", out.status.code(), text(out));
}

fn assert_no_secrets(haystack: &str, secrets: &[&str]) {
    for s in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(!haystack.contains(s), "a secret leaked into the output:\n{haystack}");
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_login_end_to_end_confidential_client() {
    let env = AuthEnv::start(SimConfig { confidential_client: true, ..Default::default() }, "authorization_code", true).await;
    let (child, mut lines) = env.spawn(&["auth", "login", "--no-browser", "--timeout-secs", "60"]);

    let authorize = line_with(&mut lines, "/oauth2/v2.0/authorize").await;
    let authorize = url::Url::parse(authorize.trim()).expect("the authorize URL is alone on its line");
    let q = |k: &str| authorize.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert!(q("code_challenge").is_some_and(|c| c.len() >= 43));
    assert!(q("state").is_some_and(|s| s.len() >= 16));
    assert_eq!(q("response_type").as_deref(), Some("code"));
    let scope = q("scope").unwrap();
    for s in ["offline_access", "Mail.Read", "Calendars.Read"] {
        assert!(scope.split(' ').any(|x| x == s), "scope {scope:?} lacks {s}");
    }
    assert!(q("client_secret").is_none());

    let http = browser();
    let r = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(callback.starts_with("http://localhost:"), "{callback}");
    let code = url::Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();

    let page = http.get(&callback).send().await.expect("the loopback listener answers");
    assert_eq!(page.status().as_u16(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("Signed in"), "{body}");

    let out = finish(child).await;
    assert_ok(&out);

    #[cfg(unix)]
    assert_eq!(mode(&env.cache), 0o600, "the token cache is private");
    let cache = env.cache_json();
    let at = cache["access_token"].as_str().unwrap().to_string();
    let rt = cache["refresh_token"].as_str().expect("offline_access gave a refresh token").to_string();
    assert!(cache["account"]["upn"].as_str().is_some_and(|u| u.contains('@')), "{cache}");
    assert!(cache["account"]["id"].as_str().is_some());
    let raw = std::fs::read_to_string(&env.cache).unwrap();
    assert!(!raw.contains(&env.sim.client_secret()), "the client secret is not cached");
    assert_no_secrets(&text(&out), &[&at, &rt, &code, &env.sim.client_secret()]);
    // The temporary file of the atomic write is gone.
    let leftovers: Vec<_> =
        std::fs::read_dir(env.cache.parent().unwrap()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_login_rejects_a_wrong_state() {
    let env = AuthEnv::start(SimConfig::default(), "authorization_code", false).await;
    let (child, mut lines) = env.spawn(&["auth", "login", "--no-browser", "--timeout-secs", "60"]);
    let authorize = line_with(&mut lines, "/oauth2/v2.0/authorize").await;
    let http = browser();
    let r = http.get(authorize.trim()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let mut callback = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| if k == "state" { (k.into_owned(), "forged-state-value".to_string()) } else { (k.into_owned(), v.into_owned()) })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(&pairs);

    let page = http.get(callback.as_str()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 400);
    assert!(page.text().await.unwrap().contains("state"));
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong state"), "{}", text(&out));
    assert!(!env.cache.exists(), "nothing is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_login_reports_an_error_redirect() {
    let env = AuthEnv::start(SimConfig::default(), "authorization_code", false).await;
    let (child, mut lines) = env.spawn(&["auth", "login", "--no-browser"]);
    let authorize = line_with(&mut lines, "/oauth2/v2.0/authorize").await;
    let authorize = url::Url::parse(authorize.trim()).unwrap();
    let state = authorize.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let redirect = authorize.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap().1.into_owned();
    let mut cb = url::Url::parse(&redirect).unwrap();
    cb.query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair("error_description", "AADSTS65004: User declined to consent to access the app.")
        .append_pair("state", &state);
    let page = browser().get(cb.as_str()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 400);
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("access_denied") && err.contains("AADSTS65004"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_code_login_times_out() {
    let env = AuthEnv::start(SimConfig::default(), "authorization_code", false).await;
    let out = env.run(&["auth", "login", "--no-browser", "--timeout-secs", "1"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"), "{}", text(&out));
    assert!(!env.cache.exists());
}

/// Reads the device-code message and approves (or denies) its user code in the simulator.
async fn decide_device_code(env: &AuthEnv, lines: &mut Lines<BufReader<ChildStdout>>, approve: bool) {
    let message = line_with(lines, "code").await;
    let decided = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 6 && w.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
        .any(|w| env.sim.approve_device_code(w, approve));
    assert!(decided, "no pending user code in {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_login_approved() {
    let env = AuthEnv::start(SimConfig::default(), "authorization_code", false).await;
    let (child, mut lines) = env.spawn(&["auth", "login", "--device-code", "--no-browser"]);
    decide_device_code(&env, &mut lines, true).await;
    let out = finish(child).await;
    assert_ok(&out);
    let cache = env.cache_json();
    assert_eq!(cache["flow"], "device_code");
    let at = cache["access_token"].as_str().unwrap();
    let rt = cache["refresh_token"].as_str().unwrap();
    assert_no_secrets(&text(&out), &[at, rt]);
    #[cfg(unix)]
    assert_eq!(mode(&env.cache), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_login_declined() {
    let env = AuthEnv::start(SimConfig::default(), "device_code", false).await;
    // source.auth = "device_code" picks the device flow without the flag.
    let (child, mut lines) = env.spawn(&["auth", "login", "--no-browser"]);
    decide_device_code(&env, &mut lines, false).await;
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("declined"), "{}", text(&out));
    assert!(!env.cache.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_code_login_expired() {
    let env = AuthEnv::start(SimConfig { device_code_lifetime: Duration::from_secs(1), ..Default::default() }, "device_code", false).await;
    let out = env.run(&["auth", "login", "--device-code", "--no-browser"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"), "{}", text(&out));
    assert!(!env.cache.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_no_token_and_logout_removes_the_cache() {
    let env = AuthEnv::start(SimConfig::default(), "device_code", false).await;
    env.device_login().await;
    let cache = env.cache_json();
    let at = cache["access_token"].as_str().unwrap().to_string();
    let rt = cache["refresh_token"].as_str().unwrap().to_string();
    let upn = cache["account"]["upn"].as_str().unwrap().to_string();

    let out = env.run(&["auth", "status"]).await;
    assert_ok(&out);
    let shown = text(&out);
    assert_no_secrets(&shown, &[&at, &rt]);
    assert!(shown.contains(&upn), "{shown}");
    assert!(shown.contains("Granted scopes") && shown.contains("Mail.Read"), "{shown}");
    assert!(shown.contains("Access token:") && shown.contains("Refresh token:"), "{shown}");

    let out = env.run(&["auth", "logout"]).await;
    assert_ok(&out);
    assert!(!env.cache.exists());

    let out = env.run(&["auth", "status"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outlake auth login"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_an_app_only_config_is_a_config_error() {
    let env = AuthEnv::start(SimConfig::default(), "client_credentials", true).await;
    let out = env.run(&["auth", "login", "--no-browser"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_credentials"));
}

/// Needs `sync` wired to `auth::tokens::CachedTokens` for delegated configs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_with_a_revoked_refresh_token_asks_to_sign_in_again() {
    // 60-second access tokens are inside the 5-minute refresh margin: sync refreshes first.
    let env = AuthEnv::start(SimConfig { token_lifetime: Some(Duration::from_secs(60)), ..Default::default() }, "device_code", false).await;
    env.device_login().await;
    let cache = env.cache_json();
    env.sim.revoke_refresh_tokens();
    let before = env.sim.stats()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    let out = env.run(&["sync", "--progress", "never"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outlake auth login"), "{}", text(&out));
    let after = env.sim.stats()["token_requests"]["refresh_token"].as_u64().unwrap_or(0);
    assert!(after - before <= 1, "a dead grant is tried once, not looped ({} refreshes)", after - before);
    assert_no_secrets(&text(&out), &[cache["access_token"].as_str().unwrap(), cache["refresh_token"].as_str().unwrap()]);
}

/// Every byte under `dir` (output, state, report) and the process output, scanned for secrets.
fn assert_no_secrets_in_tree(dir: &Path, secrets: &[&str]) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "tokens.json") {
                let bytes = std::fs::read(&p).unwrap();
                for s in secrets.iter().filter(|s| s.len() >= 8) {
                    assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "a secret was written to {}", p.display());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_sync_of_the_signed_in_mailbox_equals_truth_over_rotations() {
    // Short access tokens: every sync refreshes, so the refresh token rotates each run.
    let cfg = SimConfig { token_lifetime: Some(Duration::from_secs(60)), messages_per_mailbox: 120, events_per_mailbox: 15, ..Default::default() };
    let env = AuthEnv::start(cfg, "device_code", false).await;
    env.device_login().await;
    let me = env.cache_json()["account"]["id"].as_str().expect("the signed-in user's id is cached").to_string();
    let lake = env._dir.path().join("lake");
    let mut seen_refresh_tokens: Vec<String> = vec![env.cache_json()["refresh_token"].as_str().unwrap().to_string()];
    let mut secrets: Vec<String> = seen_refresh_tokens.clone();
    secrets.push(env.cache_json()["access_token"].as_str().unwrap().to_string());
    for round in 0..3u64 {
        if round > 0 {
            env.sim.mutate(env.sim.random_changes(round, 3)).unwrap();
        }
        let report = env._dir.path().join(format!("run{round}.json"));
        let out = env.run(&["sync", "--progress", "never", "--report", report.to_str().unwrap()]).await;
        assert_ok(&out);
        let cache = env.cache_json();
        let rt = cache["refresh_token"].as_str().unwrap().to_string();
        assert!(!seen_refresh_tokens.contains(&rt), "run {round}: the refresh token did not rotate");
        seen_refresh_tokens.push(rt.clone());
        secrets.push(rt);
        secrets.push(cache["access_token"].as_str().unwrap().to_string());
        let all: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_no_secrets(&text(&out), &all);

        // Only the signed-in user's mailbox, reached through /me, equals its truth.
        let mut truth = env.sim.truth();
        truth["mailboxes"].as_array_mut().unwrap().retain(|m| m["id"] == me.as_str());
        assert_eq!(truth["mailboxes"].as_array().unwrap().len(), 1);
        super::truth::assert_lake_equals_truth(&lake, &truth);
    }
    // A spent refresh token is dead (Entra rotates; the simulator enforces one use).
    let first = &seen_refresh_tokens[0];
    let resp = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", env.sim.url(), env.sim.tenant_id()))
        .form(&[("grant_type", "refresh_token"), ("client_id", env.sim.client_id().as_str()), ("refresh_token", first.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let all: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets_in_tree(env._dir.path(), &all);
    let stats = env.sim.stats();
    assert!(stats["requests_by_kind"].as_object().map(|m| m.keys().any(|k| k.contains("me"))).unwrap_or(true), "{stats}");
}
