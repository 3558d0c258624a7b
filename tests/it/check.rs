//! `outlake check` checks everything a sync will touch: the sink and checkpoint stores (opened as
//! a sync opens them, then one object written and deleted), the credentials, the streams and the
//! folder scope; and an unreachable endpoint is told from refused credentials.
//!
//! Each case is one the user report found passing `check` and then failing `sync`.

use outlake_simulator::SimConfig;

use super::support::Env;

fn world() -> SimConfig {
    SimConfig { users: 2, messages_per_mailbox: 20, events_per_mailbox: 4, seed: 11, ..SimConfig::default() }
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Replace `from` by `to` in the env's config file.
fn edit(env: &Env, from: &str, to: &str) {
    let toml = std::fs::read_to_string(&env.config).unwrap();
    assert!(toml.contains(from), "{from:?} not in\n{toml}");
    std::fs::write(&env.config, toml.replacen(from, to, 1)).unwrap();
}

/// The config's `url = "file://…"` line of `[sink]`, replaced by `url`.
fn set_sink_url(env: &Env, url: &str) {
    edit(env, &format!("url = \"file://{}\"", env.lake().display()), &format!("url = \"{url}\""));
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn failed_lines(t: &str, name: &str) -> Vec<String> {
    t.lines().filter(|l| l.starts_with("FAILED") && l.split_whitespace().nth(1) == Some(name)).map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_a_good_config_and_probes_the_sink() {
    let env = Env::start(world(), "include_folders = [\"inbox\", \"sentitems\"]\n").await;
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for name in ["config", "sink", "token", "mailboxes", "folders"] {
        assert!(t.lines().any(|l| l.starts_with("ok") && l.split_whitespace().nth(1) == Some(name)), "no ok line for {name}:\n{t}");
    }
    assert!(t.contains("/_staging/outlake-check-"), "the probe's URL is shown:\n{t}");
    let staging = env.lake().join("_staging");
    assert_eq!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0, "the probe is deleted");
}

/// `file://lakeP` (two slashes: a host, not a path) passed `check` and `sync` refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_sink_url_that_sync_rejects() {
    let env = Env::start(world(), "").await;
    set_sink_url(&env, "file://lakeP");
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "a configuration problem:\n{t}");
    let failed = failed_lines(&t, "sink");
    assert_eq!(failed.len(), 1, "{t}");
    assert!(failed[0].contains("file://lakeP") && failed[0].contains("absolute"), "{t}");
    assert!(t.contains("fix: correct sink.url"), "{t}");
}

/// Item 3 of the report: an invalid sink URL is configuration (2), an unusable store a failure
/// (1) naming it. Needs `sync` to call `exit::check_storage_config` before opening the lake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_2_for_an_invalid_sink_url() {
    let env = Env::start(world(), "").await;
    set_sink_url(&env, "file://lakeP");
    let out = env.sync();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("file://lakeP"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_sync_fail_for_a_sink_folder_that_cannot_be_created() {
    let env = Env::start(world(), "").await;
    // A file where a folder must be: not even root can create the folder below it.
    let blocker = env.dir.path().join("blocker");
    std::fs::write(&blocker, "a file").unwrap();
    let target = blocker.join("lake");
    set_sink_url(&env, &format!("file://{}", target.display()));
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "storage, not configuration:\n{t}");
    let failed = failed_lines(&t, "sink");
    assert_eq!(failed.len(), 1, "{t}");
    assert!(failed[0].contains(&target.display().to_string()), "the path is named:\n{t}");
    assert!(t.contains("fix: create the folder sink.url names"), "{t}");
    // The Graph checks still run: one look shows every problem.
    assert!(t.lines().any(|l| l.starts_with("ok") && l.contains("token")), "{t}");

    let out = env.sync();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(&target.display().to_string()), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_for_an_s3_endpoint_on_a_closed_port() {
    let port = closed_port();
    let options = format!(
        "[sink.options]\naws_endpoint = \"http://127.0.0.1:{port}\"\naws_allow_http = \"true\"\naws_region = \"us-east-1\"\naws_access_key_id = \"k\"\naws_secret_access_key = \"s\"\n"
    );
    let env = Env::start(world(), &format!("#rest{options}")).await;
    set_sink_url(&env, "s3://outlake-bucket/lake");
    let t0 = std::time::Instant::now();
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let failed = failed_lines(&t, "sink");
    assert_eq!(failed.len(), 1, "{t}");
    assert!(failed[0].contains("s3://outlake-bucket/lake/_staging/"), "the URL is named:\n{t}");
    assert!(t.contains("fix: check that sink.url (s3://outlake-bucket/lake)"), "{t}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(40), "check took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_for_a_misspelt_sink_option() {
    // On a cloud store, and on a local one (where any option used to be ignored silently).
    for url in [Some("s3://outlake-bucket/lake"), None] {
        let env = Env::start(world(), "#rest[sink.options]\naws_region = \"us-east-1\"\naws_endpiont = \"http://127.0.0.1:9000\"\n").await;
        if let Some(url) = url {
            set_sink_url(&env, url);
        }
        let out = env.outlake(&["check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url:?}:\n{t}");
        let failed = failed_lines(&t, "sink");
        assert_eq!(failed.len(), 1, "{t}");
        assert!(failed[0].contains("aws_endpiont"), "the option is named:\n{t}");
        assert!(!env.lake().join("_staging").exists(), "nothing was written:\n{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_for_a_folder_pattern_that_names_no_folder() {
    let env = Env::start(world(), "include_folders = [\"inbx\"]\nexclude_folders = [\"sentitems\"]\n").await;
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    let failed = failed_lines(&t, "folders");
    assert_eq!(failed.len(), 1, "only the misspelt pattern fails:\n{t}");
    assert!(failed[0].contains("include_folders") && failed[0].contains("\"inbx\""), "{t}");
    assert!(failed[0].contains("did you mean \"inbox\""), "{t}");
    assert!(t.contains("fix: correct \"inbx\" in source.include_folders"), "{t}");
}

/// An unreachable token endpoint was reported as refused credentials (exit 2, "check the
/// tenant, client id and secret").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_token_endpoint_is_a_network_problem() {
    let env = Env::start(world(), "").await;
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    edit(&env, &format!("authority_url = \"{}\"", env.sim.url()), &format!("authority_url = \"{closed}\""));
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let failed = failed_lines(&t, "token");
    assert_eq!(failed.len(), 1, "{t}");
    assert!(t.contains("network problem, not the credentials") && t.contains("source.authority_url"), "the network hint:\n{t}");
    assert!(!t.contains("client_secret") && !t.contains("tenant_id,"), "not the credential hint:\n{t}");

    let out = env.sync();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "a failure, not a configuration problem:\n{t}");
    assert!(t.contains("could not reach the token endpoint") && t.contains("source.authority_url"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_graph_is_a_network_problem() {
    let env = Env::start(world(), "").await;
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    edit(&env, &format!("graph_url = \"{}\"", env.sim.url()), &format!("graph_url = \"{closed}\""));
    let out = env.outlake(&["check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let failed = failed_lines(&t, "mailboxes");
    assert_eq!(failed.len(), 1, "{t}");
    assert!(t.contains("Graph could not be reached") && t.contains("source.graph_url"), "the network hint:\n{t}");
    assert!(!t.contains("missing application permission") && !t.contains("User.Read.All application permission"), "not a permission hint:\n{t}");
}
