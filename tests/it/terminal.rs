//! What a person sees on stderr: the real binary under a pseudo-terminal (160×40), its bytes
//! replayed through a terminal emulator (`vt100`), and the screen plus scrollback read as text
//! when it exits. And what a file or a log collector gets: plain progress lines, JSON lines.
//!
//! User report these guard against: progress bars overwrote the log (1 of 3–4 "mailbox synced"
//! lines survived, 3 of 4 "folder is gone" lines vanished), old bar frames piled up, the total
//! stopped at 2/3, the rate printed as `1,309.6621/s`, `--progress always` drew nothing into a
//! file, and `--log-format json` printed the summary as plain text.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use outlake_simulator::SimConfig;
use serde_json::Value;

use super::support::{Env, assert_success};

const ROWS: u16 = 40;
const COLS: u16 = 160;

/// The binary with a clean environment: no OUTLAKE_* from the caller.
fn outlake(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outlake"));
    cmd.args(args).env_remove("OUTLAKE_CONFIG").env("RUST_LOG", "info").env_remove("NO_COLOR");
    for (k, _) in std::env::vars() {
        if k.starts_with("OUTLAKE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Run `cmd` with stdin, stdout and stderr on a new pty of ROWS×COLS; every byte it wrote, and
/// its exit status. The read ends when the last holder of the pty's other side exits (EIO).
fn run_in_pty(mut cmd: Command) -> (Vec<u8>, std::process::ExitStatus) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize { ws_row: ROWS, ws_col: COLS, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors we then own; the other pointers may be null.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and nothing else owns them.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .env("TERM", "xterm-256color")
        .env("COLUMNS", COLS.to_string())
        .env("LINES", ROWS.to_string());
    // `cmd` holds the slave's descriptors until it is dropped: spawn, then drop it, so that the
    // child's exit is the last close and the master reads EIO.
    let mut child = cmd.spawn().expect("outlake starts");
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Linux: EIO once no process has the slave open any more.
                Err(_) => break,
            }
        }
        out
    });
    let status = child.wait().unwrap();
    (reader.join().unwrap(), status)
}

/// Everything a person can read after the program exits: the scrollback, then the screen, one
/// entry per logical line (rows the terminal wrapped are joined), trailing blanks trimmed.
fn screen_lines(bytes: &[u8]) -> Vec<String> {
    let mut parser = vt100::Parser::new(ROWS.try_into().unwrap(), COLS.try_into().unwrap(), 10_000);
    parser.process(bytes);
    parser.screen_mut().set_scrollback(usize::MAX);
    let history = parser.screen().scrollback();
    // Row 0 at each scrollback offset walks the history from its top; at offset 0 the screen.
    let mut rows: Vec<(String, bool)> = Vec::new();
    for off in (1..=history).rev() {
        parser.screen_mut().set_scrollback(off);
        let s = parser.screen();
        rows.push((s.rows(0, COLS).next().unwrap_or_default(), s.row_wrapped(0)));
    }
    parser.screen_mut().set_scrollback(0);
    let s = parser.screen();
    for (i, text) in s.rows(0, COLS).enumerate() {
        rows.push((text, s.row_wrapped(i as u16)));
    }
    let mut lines = Vec::new();
    let mut cur = String::new();
    for (text, wrapped) in rows {
        cur.push_str(&text);
        if !wrapped {
            lines.push(std::mem::take(&mut cur).trim_end().to_string());
        }
    }
    if !cur.is_empty() {
        lines.push(cur.trim_end().to_string());
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// A frame of a progress bar (total or mailbox), as drawn by `src/progress.rs`.
fn is_bar_frame(line: &str) -> bool {
    line.contains(" items · ") || line.contains(" items ·") || line.contains("· throttled ") || line.contains("[====")
}

/// A text log line (`2026-…Z  INFO message key=value …`) → "LEVEL message first_field", the
/// identity of the line without its timestamp.
fn log_key(line: &str) -> Option<String> {
    let rest = line.split_once("Z ")?.1.trim_start();
    let (level, rest) = rest.split_once(' ')?;
    if !["INFO", "WARN", "ERROR"].contains(&level) {
        return None;
    }
    let mut message = Vec::new();
    let mut first_field = "";
    for tok in rest.trim_start().split(' ') {
        let is_field = tok.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        if is_field {
            // A run id differs between the two demos: keep its name, not its value.
            first_field = if tok.starts_with("run_id=") { "run_id=…" } else { tok };
            break;
        }
        message.push(tok);
    }
    Some(format!("{level} {} {first_field}", message.join(" ")))
}

fn count_keys<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for k in lines.filter_map(log_key) {
        *m.entry(k).or_default() += 1;
    }
    m
}

/// `outlake demo` under a 160×40 terminal: every log line the same demo writes into a pipe is
/// on the screen or in its scrollback — one "mailbox synced" per mailbox and run, every "folder
/// is gone" — with both summaries, and no bar frame is left behind. The raw stream shows the
/// bars were drawn (a negative control for "no frame left") and that the total reached N/N.
#[test]
fn demo_under_a_terminal_keeps_every_log_line_and_leaves_no_bar() {
    let dir = tempfile::tempdir().unwrap();
    let users = 3;
    let demo = |sub: &str| {
        let lake = dir.path().join(sub);
        let lake = lake.to_str().unwrap().to_string();
        let mut cmd = outlake(&["demo", "--dir", &lake, "--messages", "300", "--users", &users.to_string()]);
        cmd.current_dir(dir.path());
        cmd
    };

    // The reference: the same demo (same seed, same changes) with stderr a pipe, so no bars.
    let mut reference = demo("ref");
    reference.arg("--progress").arg("never");
    let out = reference.output().expect("outlake runs");
    assert_success(&out);
    let ref_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!ref_err.contains('\x1b'), "escape codes in a pipe:\n{ref_err}");
    let expected = count_keys(ref_err.lines());
    let synced = |m: &BTreeMap<String, usize>| m.iter().filter(|(k, _)| k.starts_with("INFO mailbox synced ")).map(|(_, n)| n).sum::<usize>();
    assert_eq!(synced(&expected), 2 * users, "one per mailbox and run in the reference:\n{ref_err}");
    assert!(expected.keys().any(|k| k.contains("folder is gone")), "the demo's changes delete a folder:\n{ref_err}");

    let (bytes, status) = run_in_pty(demo("tty"));
    let raw = String::from_utf8_lossy(&bytes);
    let lines = screen_lines(&bytes);
    let seen = lines.join("\n");
    assert!(status.success(), "demo failed under a pty ({status}):\n{seen}");

    // Negative control: bars were drawn, so "no frame left" below means they were cleared.
    assert!(raw.contains(" items · ") && raw.contains("· throttled "), "no bar was ever drawn:\n{raw}");
    assert!(raw.contains(&format!("{users}/{users} mailboxes")), "the total never showed {users}/{users}:\n{raw}");

    let on_screen = count_keys(lines.iter().map(String::as_str));
    assert_eq!(on_screen, expected, "log lines on screen (left) differ from the piped log (right); screen:\n{seen}");
    let summaries = lines.iter().filter(|l| l.starts_with("run ") && l.contains(&format!("{users} mailbox(es) synced"))).count();
    assert_eq!(summaries, 2, "one summary per run:\n{seen}");
    assert!(lines.iter().any(|l| l == "== run 2: incremental sync"), "{seen}");
    let frames: Vec<&String> = lines.iter().filter(|l| is_bar_frame(l)).collect();
    assert!(frames.is_empty(), "bar frames left on screen: {frames:#?}\nscreen:\n{seen}");
    // Rates are rounded: no `1,309.6621/s`.
    let unrounded: Vec<&str> =
        raw.split("/s").filter_map(|before| before.rsplit(' ').next()).filter(|n| n.split_once('.').is_some_and(|(_, frac)| frac.len() > 1)).collect();
    assert!(unrounded.is_empty(), "unrounded rates {unrounded:?} in:\n{raw}");
}

fn small_env_config() -> SimConfig {
    SimConfig { users: 3, messages_per_mailbox: 120, events_per_mailbox: 20, ..SimConfig::default() }
}

/// `sync` with stderr redirected into `path`; the text written there.
fn sync_into_file(env: &Env, path: &Path, args: &[&str]) -> String {
    let file = std::fs::File::create(path).unwrap();
    let mut cmd = outlake(&["sync", "--config", env.config.to_str().unwrap()]);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::from(file));
    let status = cmd.status().expect("outlake runs");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(status.success(), "sync failed ({status}):\n{text}");
    text
}

/// `--progress always` into a file used to draw nothing (indicatif hides bars off a terminal).
/// Now it writes plain `progress:` lines — at least the last one, whose numbers are the run's —
/// and not one escape code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_always_into_a_file_writes_plain_lines() {
    let env = Env::start(small_env_config(), "").await;
    let report = env.dir.path().join("r.json");
    let text = sync_into_file(&env, &env.dir.path().join("stderr.txt"), &["--progress", "always", "--report", report.to_str().unwrap()]);
    assert!(!text.contains('\x1b'), "escape codes in a file:\n{text:?}");
    let rep: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let rows = rep["totals"]["upserts"].as_u64().unwrap() + rep["totals"]["deletes"].as_u64().unwrap();
    let mailboxes = rep["totals"]["mailboxes_ok"].as_u64().unwrap();
    assert!(rows > 0 && mailboxes == 2, "{rep:#}");
    let progress: Vec<&str> = text.lines().filter(|l| l.starts_with("progress: ")).collect();
    let last = progress.last().unwrap_or_else(|| panic!("no progress line:\n{text}"));
    let rows_text = grouped(rows);
    assert!(
        last.starts_with(&format!("progress: {mailboxes}/{mailboxes} mailboxes, {rows_text}/{rows_text} items, ")) && last.contains(", throttled "),
        "last progress line {last:?} does not say {mailboxes}/{mailboxes} mailboxes and {rows} items:\n{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("run ") && l.contains("2 mailbox(es) synced")), "no summary:\n{text}");
}

/// `1234` → `1,234`, as the progress line prints counts.
fn grouped(n: u64) -> String {
    let d = n.to_string();
    d.chars().enumerate().fold(String::new(), |mut s, (i, c)| {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
        s
    })
}

/// With `--log-format json` every line on stderr is one JSON object — logs, progress lines and
/// the run summary (`"message":"run finished"`, numbers as numbers) — and no field carries Rust
/// Debug text such as `Some("…")`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_to_the_last_line() {
    let env = Env::start(small_env_config(), "").await;
    let text = sync_into_file(&env, &env.dir.path().join("stderr.jsonl"), &["--log-format", "json", "--progress", "always"]);
    let mut messages = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nall:\n{text}"));
        let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
        assert!(obj.contains_key("level") && obj.contains_key("timestamp"), "{line}");
        for (k, val) in obj {
            if let Some(s) = val.as_str() {
                assert!(!s.starts_with("Some(") && !s.starts_with("None"), "field {k} is Debug text: {line}");
            }
        }
        messages.push(obj["message"].as_str().unwrap_or("").to_string());
    }
    assert!(messages.iter().filter(|m| *m == "mailbox synced").count() == 2, "{text}");
    assert!(messages.iter().any(|m| m == "progress"), "no progress object:\n{text}");
    let summary: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(|v| v["message"] == "run finished").collect();
    assert_eq!(summary.len(), 1, "one summary object:\n{text}");
    let s = &summary[0];
    assert_eq!(s["mailboxes_ok"], 2, "{s}");
    assert_eq!(s["mailboxes_skipped"], 1, "{s}");
    assert!(s["upserts"].as_u64().is_some_and(|n| n > 0), "{s}");
    assert!(s["fatal"].is_null() && s["failed_mailboxes"] == serde_json::json!([]), "{s}");
    assert_eq!(s["skipped_mailboxes"][0]["reason"].as_str().map(|r| r.contains("no mailbox")), Some(true), "{s}");
}

/// Errors of the program's own — a config with mistakes, no config file read — are JSON too
/// under `--log-format json`.
#[test]
fn json_logs_carry_config_errors_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outlake.toml");
    std::fs::write(&config, "[source]\npage_size = \"lots\"\n\n[sink]\nurl = \"file:///tmp/x\"\n").unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outlake"));
    cmd.args(["--log-format", "json", "sync", "--config"]).arg(&config).current_dir(dir.path());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OUTLAKE_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<Value> =
        text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nall:\n{text}"))).collect();
    assert!(lines.iter().any(|v| v["level"] == "ERROR" && v["message"].as_str().is_some_and(|m| m.contains("source.page_size"))), "{text}");
}
