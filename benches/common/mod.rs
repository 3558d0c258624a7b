//! Shared by the benches: the simulator on its own runtime, access tokens, a plain crawler of
//! delta rounds, the machine description and the run of the release binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use outlake_simulator::{SimConfig, Simulator};

/// The `Prefer` header outlake's client sends (connectors/src/graph/client.rs).
pub fn prefer(page_size: usize) -> String {
    format!("odata.maxpagesize={page_size}, IdType=\"ImmutableId\"")
}

/// An integer from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

/// The simulator, served by a runtime with one worker thread (one core at most).
pub struct SimHost {
    pub rt: tokio::runtime::Runtime,
    pub sim: Option<Simulator>,
}

impl SimHost {
    pub fn start(cfg: SimConfig) -> SimHost {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("sim").enable_all().build().expect("runtime");
        let t = Instant::now();
        let sim = rt.block_on(Simulator::start(cfg)).expect("simulator starts");
        eprintln!("simulator up in {:.1}s at {}", t.elapsed().as_secs_f64(), sim.url());
        SimHost { rt, sim: Some(sim) }
    }
    pub fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("running")
    }
    pub fn stop(mut self) {
        if let Some(s) = self.sim.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// A client-credentials access token from the simulator.
pub async fn token(http: &reqwest::Client, sim: &Simulator) -> String {
    let url = format!("{}/{}/oauth2/v2.0/token", sim.url(), sim.tenant_id());
    let form = [
        ("grant_type", "client_credentials".to_string()),
        ("client_id", sim.client_id()),
        ("client_secret", sim.client_secret()),
        ("scope", "https://graph.microsoft.com/.default".to_string()),
    ];
    let v: serde_json::Value = http.post(url).form(&form).send().await.expect("token").json().await.expect("token json");
    v["access_token"].as_str().expect("access_token").to_string()
}

/// `@odata.nextLink` of a page: the simulator writes it before `value`, so a search of the
/// first bytes finds it without parsing the page.
pub fn next_link(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(4096)];
    let pat = b"\"@odata.nextLink\":\"";
    let at = head.windows(pat.len()).position(|w| w == pat)? + pat.len();
    let end = head[at..].iter().position(|&b| b == b'"')? + at;
    Some(String::from_utf8_lossy(&head[at..end]).into_owned())
}

/// What a crawl fetched.
#[derive(Debug, Default, Clone, Copy)]
pub struct Crawl {
    pub requests: u64,
    pub items: u64,
    pub bytes: u64,
}

/// GETs `url` and every nextLink after it; returns each page's body.
pub async fn follow(http: &reqwest::Client, bearer: &str, prefer: &str, url: String, keep: bool) -> (Crawl, Vec<bytes::Bytes>) {
    let mut c = Crawl::default();
    let mut pages = Vec::new();
    let mut next = Some(url);
    while let Some(u) = next.take() {
        let r = http.get(&u).bearer_auth(bearer).header("Prefer", prefer).send().await.expect("GET");
        assert!(r.status().is_success(), "{u}: {}", r.status());
        let b = r.bytes().await.expect("body");
        c.requests += 1;
        c.bytes += b.len() as u64;
        c.items += count_items(&b);
        next = next_link(&b);
        if keep {
            pages.push(b);
        }
    }
    (c, pages)
}

/// Items in a page: objects that open with an `@odata.` annotation after `"value":[` (the
/// simulator writes `@odata.etag` / `@odata.type` first in every item, and in no nested object).
pub fn count_items(body: &[u8]) -> u64 {
    let start = body.windows(9).position(|w| w == b"\"value\":[").map_or(body.len(), |p| p + 9);
    let pat = b"{\"@odata.";
    let mut n = 0;
    let mut i = start;
    while i + pat.len() <= body.len() {
        if body[i] == b'{' && &body[i..i + pat.len()] == pat {
            n += 1;
            i += pat.len();
        } else {
            i += 1;
        }
    }
    n
}

/// Folder ids of a mailbox (one full mailFolders delta round).
pub async fn folders(http: &reqwest::Client, bearer: &str, prefer: &str, base: &str, user: &str) -> Vec<String> {
    let (_, pages) = follow(http, bearer, prefer, format!("{base}/v1.0/users/{user}/mailFolders/delta"), true).await;
    let mut out = Vec::new();
    for p in pages {
        let v: serde_json::Value = serde_json::from_slice(&p).expect("folders json");
        for f in v["value"].as_array().into_iter().flatten() {
            if let Some(id) = f["id"].as_str() {
                out.push(id.to_string());
            }
        }
    }
    out
}

/// The first messages delta URL outlake asks for (connectors/src/graph/urls.rs).
pub fn message_delta_url(base: &str, user: &str, folder: &str, bodies: bool) -> String {
    let mut select = outlake_connectors::MESSAGE_SELECT.join(",");
    if bodies {
        select.push_str(",body");
    }
    let mut u = url::Url::parse(base).expect("base url");
    u.path_segments_mut().expect("path").pop_if_empty().extend(["v1.0", "users", user, "mailFolders", folder, "messages", "delta"]);
    u.set_query(Some(&format!("$select={select}")));
    u.to_string()
}

/// A full messages backfill of every mailbox, as a plain client: per mailbox its folder round,
/// then every folder's messages round, `per_mailbox` folders at once, `mailboxes` mailboxes at once.
pub async fn crawl_messages(http: &reqwest::Client, sim: &Simulator, page_size: usize, per_mailbox: usize, mailboxes: usize) -> Crawl {
    let bearer = token(http, sim).await;
    let prefer = prefer(page_size);
    let base = sim.url();
    let results: Vec<Crawl> = futures::stream::iter(sim.mailbox_ids())
        .map(|user| {
            let (http, bearer, prefer, base) = (http.clone(), bearer.clone(), prefer.clone(), base.clone());
            async move {
                let fs = folders(&http, &bearer, &prefer, &base, &user).await;
                let mut total = Crawl { requests: 1, ..Crawl::default() };
                let per: Vec<Crawl> = futures::stream::iter(fs)
                    .map(|f| {
                        let url = message_delta_url(&base, &user, &f, false);
                        let (http, bearer, prefer) = (http.clone(), bearer.clone(), prefer.clone());
                        async move { follow(&http, &bearer, &prefer, url, false).await.0 }
                    })
                    .buffer_unordered(per_mailbox)
                    .collect()
                    .await;
                for c in per {
                    total.requests += c.requests;
                    total.items += c.items;
                    total.bytes += c.bytes;
                }
                total
            }
        })
        .buffer_unordered(mailboxes)
        .collect()
        .await;
    results.into_iter().fold(Crawl::default(), |a, c| Crawl { requests: a.requests + c.requests, items: a.items + c.items, bytes: a.bytes + c.bytes })
}

/// A temporary directory for configs, reports and lakes: under OUTLAKE_BENCH_DIR when set
/// (e.g. `/dev/shm` to take the disk out of the measurement), else the system's temp dir.
pub fn bench_dir() -> tempfile::TempDir {
    match std::env::var("OUTLAKE_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d).expect("tempdir in OUTLAKE_BENCH_DIR"),
        Err(_) => tempfile::tempdir().expect("tempdir"),
    }
}

/// `nproc`, the CPU model and the memory of this machine.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal")).and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok())))
        .unwrap_or(0);
    format!("nproc {cpus}, {model}, {:.1} GiB RAM", mem as f64 / 1024.0 / 1024.0)
}

/// The release binary; fails clearly when it is missing.
pub fn outlake_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OUTLAKE_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/outlake");
    if !p.exists() {
        eprintln!("error: {} is missing; build it first: cargo build --release --bin outlake (or set OUTLAKE_BIN)", p.display());
        std::process::exit(2);
    }
    p
}

/// An outlake config for the simulator.
pub fn write_config(dir: &Path, sim: &Simulator, lake: &Path, page_size: usize, extra_source: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(lake).expect("lake dir");
    let toml = format!(
        r#"[source]
{connection}mailboxes = "all"
streams = ["messages"]
page_size = {page_size}
{extra_source}

[sink]
url = "file://{lake}"
{extra}
"#,
        connection = sim.source_toml(),
        lake = lake.display(),
    );
    let path = dir.join(format!("outlake-{}.toml", lake.file_name().and_then(|n| n.to_str()).unwrap_or("lake")));
    std::fs::write(&path, toml).expect("config");
    path
}

/// One `outlake sync` run.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall: Duration,
    /// Peak resident set (KiB): the child's VmHWM, polled every 2 ms.
    pub max_rss_kib: u64,
    pub user_cpu: Duration,
    pub sys_cpu: Duration,
    pub report: serde_json::Value,
}

impl Run {
    pub fn total(&self, k: &str) -> u64 {
        self.report["totals"][k].as_u64().unwrap_or(0)
    }
}

/// Runs `outlake sync --config <config> --report <dir>/…json`; measures wall time, peak RSS and
/// CPU time of the child alone.
pub fn run_outlake(config: &Path, dir: &Path, label: &str) -> Run {
    let report = dir.join(format!("run-{label}.json"));
    let log = std::fs::File::create(dir.join(format!("run-{label}.log"))).expect("log");
    let t = Instant::now();
    // OUTLAKE_BENCH_WRAP="perf record -g -o /tmp/perf.data --" profiles the run (the figures
    // are then the wrapper's).
    let wrap: Vec<String> = std::env::var("OUTLAKE_BENCH_WRAP").map(|w| w.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = std::process::Command::new(first);
            c.args(rest).arg(outlake_bin());
            c
        }
        None => std::process::Command::new(outlake_bin()),
    };
    let child = cmd
        .args(["sync", "--config"])
        .arg(config)
        .arg("--report")
        .arg(&report)
        .args(["--progress", "never"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn outlake");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Peak RSS: the child's VmHWM, polled until it exits (wait4's ru_maxrss would be no good:
    // Linux carries the forking process's high-water mark across exec).
    let status_path = format!("/proc/{pid}/status");
    let mut hwm_kib = 0u64;
    let wall = loop {
        if let Some(k) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok())))
        {
            hwm_kib = hwm_kib.max(k);
        }
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break t.elapsed();
        }
        assert_eq!(r, 0, "wait4");
        std::thread::sleep(Duration::from_millis(2));
    };
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    if code != 0 {
        let log = std::fs::read_to_string(dir.join(format!("run-{label}.log"))).unwrap_or_default();
        panic!("outlake sync exited with {code}; log:\n{}", &log[log.len().saturating_sub(4000)..]);
    }
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report json");
    Run { wall, max_rss_kib: hwm_kib, user_cpu: tv(ru.ru_utime), sys_cpu: tv(ru.ru_stime), report }
}

/// A simulator world of `users` mailboxes of `messages` messages, no events, full pages and no
/// throttling: the shape the throughput and memory benches share.
pub fn bench_world(users: usize, messages: usize) -> SimConfig {
    SimConfig {
        users,
        messages_per_mailbox: messages,
        events_per_mailbox: 0,
        page_cap: 1000,
        requests_per_window: 1_000_000,
        max_in_flight: 64,
        ..SimConfig::default()
    }
}
