//! The storage-only commands (`status`, `vacuum`, `reset`) and the commands' help: run with a
//! config holding only `[sink]`; `status` shows folder names in aligned columns; no lake is an
//! error; `reset` resets only what it is told; every `--help` has an example; `sim --users` and
//! `demo --users` count the same thing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, assert_success, stderr};

fn world(seed: u64) -> SimConfig {
    // Two mailboxes and one user without a mailbox.
    SimConfig { users: 3, messages_per_mailbox: 30, events_per_mailbox: 10, seed, ..SimConfig::default() }
}

/// The real binary with `--config <config>` and no `OUTLAKE_*` variables of the test process.
fn outlake(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outlake"));
    cmd.args(args).arg("--config").arg(config).env("RUST_LOG", "warn").current_dir(config.parent().unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("OUTLAKE_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("outlake runs")
}

/// A config file holding only `[sink]`: no tenant, no client id, no secret.
fn sink_only_config(dir: &Path, lake: &Path) -> PathBuf {
    let path = dir.join("storage-only.toml");
    std::fs::write(&path, format!("[sink]\nurl = \"file://{}\"\n", lake.display())).unwrap();
    path
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_json(config: &Path) -> Vec<Value> {
    let out = outlake(config, &["status", "--json"]);
    assert_success(&out);
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

/// A synced lake of [`world`], and a config for it with only `[sink]`.
async fn synced(seed: u64) -> (Env, PathBuf) {
    let env = Env::start(world(seed), "").await;
    assert_success(&env.sync());
    let config = sink_only_config(env.dir.path(), &env.lake());
    (env, config)
}

/// The cells of a table printed by `status`, split at the header's column offsets (in
/// characters), after checking that every line's columns start (left-aligned) or end
/// (right-aligned: ROWS, REB) at the header's offsets, two spaces from their neighbours.
fn aligned_cells(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let header = &lines[0];
    let at = |l: &Vec<char>, i: usize| l.get(i).copied().unwrap_or(' ');
    // A header name starts after two spaces (names hold single spaces: "LAST COMMIT").
    let starts: Vec<usize> = (0..header.len()).filter(|&i| header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))).collect();
    let names: Vec<String> = starts
        .iter()
        .enumerate()
        .map(|(n, &s)| header[s..starts.get(n + 1).copied().unwrap_or(header.len())].iter().collect::<String>().trim().to_string())
        .collect();
    let right = |name: &str| name == "ROWS" || name == "REB";
    let mut rows = Vec::new();
    for (ln, line) in lines.iter().enumerate().skip(1) {
        let shown: String = line.iter().collect();
        let mut cells = Vec::new();
        for (n, &s) in starts.iter().enumerate() {
            let end = s + names[n].chars().count();
            if right(&names[n]) {
                assert!(
                    at(line, end - 1) != ' ' && at(line, end) == ' ' && at(line, end + 1) == ' ',
                    "line {ln}: column {} does not end at {end}:\n{text}",
                    names[n]
                );
            } else {
                assert!(
                    at(line, s) != ' ' && (s == 0 || (at(line, s - 1) == ' ' && at(line, s - 2) == ' ')),
                    "line {ln}: column {} does not start at {s}:\n{shown}\n{text}",
                    names[n]
                );
            }
            // A cell holds no two spaces in a row: it ends (left-aligned) or starts (right) there.
            let gap = |i: usize| at(line, i) == ' ' && at(line, i + 1) == ' ';
            let (from, to) = if right(&names[n]) {
                ((2..end).rev().find(|&i| at(line, i) != ' ' && gap(i - 2)).unwrap_or(0), end)
            } else {
                (s, (s..line.len()).find(|&i| gap(i)).unwrap_or(line.len()))
            };
            cells.push(line[from..to].iter().collect::<String>());
        }
        rows.push(cells);
    }
    (names, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_vacuum_and_reset_need_only_the_sink_section() {
    let (_env, config) = synced(301).await;
    let status = outlake(&config, &["status"]);
    assert_success(&status);
    assert!(!stderr(&status).contains("tenant_id"), "{}", stderr(&status));
    let vacuum = outlake(&config, &["vacuum"]);
    assert_success(&vacuum);
    assert!(stdout(&vacuum).contains("0 orphaned staged file(s) removed"), "{}", stdout(&vacuum));
    let reset = outlake(&config, &["reset", "--all"]);
    assert_success(&reset);
    assert!(stdout(&reset).contains("partition(s) reset"), "{}", stdout(&reset));
    // An unknown key elsewhere is still reported (exit 2); a missing source is not.
    let typo = config.with_file_name("typo.toml");
    std::fs::write(&typo, format!("{}\n[source]\ntenant_idd = \"x\"\n", std::fs::read_to_string(&config).unwrap())).unwrap();
    let out = outlake(&typo, &["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("source.tenant_idd") && !stderr(&out).contains("source.client_secret"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_folder_paths_in_aligned_columns() {
    let (_env, config) = synced(302).await;
    let out = outlake(&config, &["status"]);
    assert_success(&out);
    let text = stdout(&out);
    let (names, rows) = aligned_cells(&text);
    assert_eq!(names, ["MAILBOX", "STREAM", "FOLDER/CALENDAR", "LAST COMMIT", "ROWS", "CURSOR", "REB", "WINDOW"], "{text}");
    let folders: Vec<&str> = rows.iter().filter(|r| r[1] == "messages").map(|r| r[2].as_str()).collect();
    assert!(!folders.is_empty(), "{text}");
    for want in ["Inbox", "Inbox/Projects", "Inbox/Projects/2024", "Receipts/Travel", "Sent Items"] {
        assert!(folders.contains(&want), "no messages partition shown as {want:?}:\n{text}");
    }
    assert!(!text.contains("AQMk") && !folders.iter().any(|f| f.starts_with("id ")), "a folder is shown by id:\n{text}");
    // Two mailboxes, each with its own folders; ROWS are numbers.
    let mailboxes: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(mailboxes.len(), 2, "{text}");
    assert!(rows.iter().all(|r| r[4].parse::<u64>().is_ok() && r[6].parse::<u64>().is_ok()), "{text}");
    // The JSON names the folder too.
    let json = status_json(&config);
    let paths: Vec<&str> = json.iter().filter(|r| r["stream"] == "messages").map(|r| r["folder_name"].as_str().expect("every folder named")).collect();
    assert!(paths.contains(&"Inbox/Projects/2024"), "{json:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_commands_fail_where_there_is_no_lake() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-lake");
    let config = sink_only_config(dir.path(), &missing);
    for args in [&["status"][..], &["status", "--json"], &["vacuum"], &["reset", "--all"]] {
        let out = outlake(&config, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}{}", stdout(&out), stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("no lake found at file://") && err.contains("outlake sync"), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(!missing.exists(), "{args:?} created the lake folder");
    }
    // An empty folder is no lake either.
    std::fs::create_dir_all(&missing).unwrap();
    let out = outlake(&config, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("no lake found at"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_resets_only_what_it_is_told() {
    let (_env, config) = synced(303).await;
    let states = |config: &Path| -> Vec<(String, String, String)> {
        status_json(config)
            .iter()
            .map(|r| (r["mailbox_id"].as_str().unwrap().to_string(), r["stream"].as_str().unwrap().to_string(), r["state"].as_str().unwrap().to_string()))
            .collect()
    };
    let before = states(&config);
    assert!(before.iter().all(|(_, _, s)| s == "syncing"), "{before:?}");

    // No flag: refused, nothing reset.
    let out = outlake(&config, &["reset"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("--all"), "{}", stderr(&out));
    assert_eq!(states(&config), before);

    // A UPN, or an id the lake does not hold: refused, naming what it looked for.
    let out = outlake(&config, &["reset", "--mailbox", "adele@contoso.com"]);
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no partition of mailbox `adele@contoso.com`") && err.contains("UPN") && err.contains("outlake status"), "{err}");
    let out = outlake(&config, &["reset", "--mailbox", "00000000-0000-0000-0000-000000000000", "--stream", "messages"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no messages partition of mailbox `00000000-0000-0000-0000-000000000000`"), "{}", stderr(&out));
    assert_eq!(states(&config), before);

    // One mailbox by id: only its delta partitions.
    let one = before[0].0.clone();
    let out = outlake(&config, &["reset", "--mailbox", &one]);
    assert_success(&out);
    // Streams without a cursor (the calendars listing, the mailboxes rows) are left alone.
    let delta = |stream: &str| ["mail_folders", "messages", "events"].contains(&stream);
    for (m, stream, state) in states(&config) {
        let expect = if m == one && delta(&stream) { "needs_rebaseline" } else { "syncing" };
        assert_eq!(state, expect, "{m} {stream}");
    }

    // Another mailbox by its UPN (known from the lake's `mailboxes` table), in any case.
    let other = before.iter().map(|(m, _, _)| m.clone()).find(|m| *m != one).unwrap();
    let upn =
        status_json(&config).iter().find(|r| r["mailbox_id"] == other.as_str()).and_then(|r| r["user_principal_name"].as_str().map(str::to_uppercase)).unwrap();
    let out = outlake(&config, &["reset", "--mailbox", &upn, "--stream", "messages"]);
    assert_success(&out);
    for (m, stream, state) in states(&config) {
        let expect = if (m == one && delta(&stream)) || (m == other && stream == "messages") { "needs_rebaseline" } else { "syncing" };
        assert_eq!(state, expect, "{m} {stream}");
    }

    // --all: every delta partition; those already pending are counted as such.
    let out = outlake(&config, &["reset", "--all"]);
    assert_success(&out);
    assert!(stdout(&out).contains("already re-baseline next run"), "{}", stdout(&out));
    for (m, stream, state) in states(&config) {
        assert_eq!(state, if delta(&stream) { "needs_rebaseline" } else { "syncing" }, "{m} {stream}");
    }
    // --all with --mailbox is a contradiction clap refuses.
    assert_eq!(outlake(&config, &["reset", "--all", "--mailbox", &one]).status.code(), Some(2));
}

#[test]
fn every_subcommand_help_has_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_outlake")).args(args).current_dir(dir.path()).output().unwrap();
        assert_success(&out);
        stdout(&out)
    };
    for cmd in ["sync", "demo", "sim", "check", "estimate", "status", "reset", "auth", "vacuum"] {
        let text = help(&[cmd, "--help"]);
        assert!(text.contains("Example"), "`outlake {cmd} --help` has no example:\n{text}");
        assert!(help(&[cmd, "-h"]).contains("Example"), "`outlake {cmd} -h` has no example");
    }
    for sub in ["login", "status", "logout"] {
        let text = help(&["auth", sub, "--help"]);
        assert!(text.contains(&format!("outlake auth {sub} --config")), "`outlake auth {sub} --help` has no example:\n{text}");
    }
    assert!(help(&["sync", "--help"]).contains("--shard index/8"), "sync --help shows the shard forms");
    let sim = help(&["sim", "--help"]);
    for needle in [
        "/_sim/mutate",
        "/_sim/random-changes",
        "/_sim/expire-tokens",
        "/_sim/revoke-access-tokens",
        "/_sim/revoke-refresh-tokens",
        "/_sim/truth",
        "/_sim/stats",
        "/_sim/reconfigure",
        "/_sim/devicecode",
        "--fault-rate",
        "--requests-per-window",
        "--seed",
        "--port",
    ] {
        assert!(sim.contains(needle), "`outlake sim --help` does not document {needle}:\n{sim}");
    }
    // Every sim flag has a description, on its line or the next.
    let short = help(&["sim", "-h"]);
    let lines: Vec<&str> = short.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("--")) {
        let next = lines.get(i + 1).copied().unwrap_or("");
        assert!(l.contains("  ") || !(next.is_empty() || next.starts_with('-')), "`outlake sim` flag without a description: {l}");
    }
    // Both `--users` mean mailboxes.
    for cmd in ["sim", "demo"] {
        let text = help(&[cmd, "--help"]);
        assert!(text.contains("Users with a mailbox; one more user without a mailbox is always added"), "{cmd}:\n{text}");
    }
}

/// `outlake sim --users 2` serves two mailboxes (and one user without a mailbox), as
/// `outlake demo --users 2` syncs two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_users_counts_mailboxes_as_demo_does() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_outlake"))
        .args(["sim", "--users", "2", "--messages", "3", "--events", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let truth: Value = reqwest::get(format!("{}/_sim/truth", ready["url"].as_str().unwrap())).await.unwrap().json().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let users = truth["mailboxes"].as_array().unwrap();
    assert_eq!(users.iter().filter(|u| u["has_mailbox"] == true).count(), 2, "{truth:#}");
    assert_eq!(users.len(), 3);
}
