//! The end of a run in three forms: a human summary on stderr, a JSON report (`--report`),
//! and Prometheus text metrics (`--metrics`). None holds a secret: the report is built from
//! counters and error messages, which never include one.

use std::io::Write;
use std::path::Path;

use outlake_pipeline::runner::{MailboxStatus, RunReport};

/// The run summary on stderr: one line (and one more per skipped or failed mailbox) with
/// `--log-format text`; with `--log-format json` one JSON object, `"message":"run finished"`,
/// whose fields are numbers and strings (`fatal` and `failed_mailboxes` are `null` / `[]` when
/// there is nothing to say). Printed whatever `RUST_LOG` says: it is the run's result.
pub fn print_summary(rep: &RunReport) {
    let ok = rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Ok).count();
    let skipped: Vec<_> = rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Skipped).collect();
    let failed: Vec<_> = rep.failed_mailboxes().collect();
    let upserts = rep.total(|s| s.upserts);
    let deletes = rep.total(|s| s.deletes);
    let requests: u64 = rep.mailboxes.iter().map(|m| m.requests).sum();
    let throttled: u64 = rep.mailboxes.iter().map(|m| m.throttled).sum();
    let throttle_wait_ms: u64 = rep.mailboxes.iter().map(|m| m.throttle_wait_ms).sum();
    let rebaselines = rep.total(|s| s.rebaselines);
    let busy: Vec<_> = rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Busy).collect();
    let elsewhere = rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::SyncedElsewhere).count();
    let mut text = format!(
        "run {}: {} mailbox(es) synced, {} skipped, {} failed; {} upserts, {} deletes; {} requests ({} throttled, {} waiting); {} re-baseline(s); {:.1}s",
        rep.run_id,
        ok,
        skipped.len(),
        failed.len(),
        upserts,
        deletes,
        requests,
        throttled,
        crate::progress::duration_text(std::time::Duration::from_millis(throttle_wait_ms)),
        rebaselines,
        rep.duration_ms as f64 / 1000.0
    );
    if !busy.is_empty() || elsewhere > 0 {
        text.push_str(&format!("; {} busy (leased by other workers), {} synced by other workers", busy.len(), elsewhere));
    }
    let only_busy = !busy.is_empty() && busy.len() + elsewhere + skipped.len() == rep.mailboxes.len() && rep.fatal.is_none();
    if only_busy {
        // Another run has every mailbox: one line says so.
        text = format!(
            "run {}: nothing to do: all {} mailbox(es) are busy, leased by other workers ({} synced by them already){}",
            rep.run_id,
            busy.len(),
            elsewhere,
            if skipped.is_empty() { String::new() } else { format!("; {} skipped", skipped.len()) }
        );
    } else {
        const BUSY_LINES: usize = 5;
        for m in busy.iter().take(BUSY_LINES) {
            if let Some(l) = &m.lease {
                text.push_str(&format!("\n  busy {}: leased by {} (run {}) until {}", m.label, l.worker, l.run_id, l.until.to_rfc3339()));
            }
        }
        if busy.len() > BUSY_LINES {
            text.push_str(&format!("\n  … and {} more busy mailbox(es) (see --report)", busy.len() - BUSY_LINES));
        }
    }
    for m in skipped.iter().filter(|_| !only_busy) {
        text.push_str(&format!("\n  skipped {}: {}", m.label, m.error.as_deref().unwrap_or("")));
    }
    for m in &failed {
        text.push_str(&format!("\n  FAILED {}: {}", m.label, m.error.as_deref().unwrap_or("unknown error")));
    }
    if let Some(f) = &rep.fatal {
        text.push_str(&format!("\n  STOPPED: {f}"));
    }
    let fields = serde_json::json!({
        "run_id": rep.run_id,
        "mailboxes_ok": ok,
        "mailboxes_skipped": skipped.len(),
        "mailboxes_failed": failed.len(),
        "mailboxes_busy": busy.len(),
        "mailboxes_synced_elsewhere": elsewhere,
        "upserts": upserts,
        "deletes": deletes,
        "requests": requests,
        "throttled": throttled,
        "throttle_wait_ms": throttle_wait_ms,
        "rebaselines": rebaselines,
        "duration_ms": rep.duration_ms,
        "skipped_mailboxes": skipped.iter().map(|m| serde_json::json!({"mailbox": m.label, "reason": m.error})).collect::<Vec<_>>(),
        "failed_mailboxes": failed.iter().map(|m| serde_json::json!({"mailbox": m.label, "error": m.error})).collect::<Vec<_>>(),
        "fatal": rep.fatal,
        "fatal_kind": rep.fatal_kind,
    });
    let fields = fields.as_object().cloned().unwrap_or_default();
    let level = if rep.fatal.is_some() || !failed.is_empty() { "WARN" } else { "INFO" };
    crate::logging::emit(level, "run finished", &text, fields);
}

pub fn write_json(rep: &RunReport, path: &Path) -> std::io::Result<()> {
    let totals = serde_json::json!({
        "upserts": rep.total(|s| s.upserts),
        "deletes": rep.total(|s| s.deletes),
        "pages": rep.total(|s| s.pages),
        "commits": rep.total(|s| s.commits),
        "rebaselines": rep.total(|s| s.rebaselines),
        "bytes": rep.total(|s| s.bytes),
        "filtered": rep.total(|s| s.filtered),
        "folders_excluded": rep.total(|s| s.folders_excluded),
        "calendars_excluded": rep.total(|s| s.calendars_excluded),
        "window_rollovers": rep.total(|s| s.window_rollovers),
        "requests": rep.mailboxes.iter().map(|m| m.requests).sum::<u64>(),
        "throttled": rep.mailboxes.iter().map(|m| m.throttled).sum::<u64>(),
        "retries": rep.mailboxes.iter().map(|m| m.retries).sum::<u64>(),
        "uncommitted_rows": rep.total(|s| s.uncommitted_rows),
        "mailboxes_ok": rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Ok).count(),
        "mailboxes_interrupted": rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Interrupted).count(),
        "mailboxes_failed": rep.failed_mailboxes().count(),
        "mailboxes_skipped": rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Skipped).count(),
        "mailboxes_busy": rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::Busy).count(),
        "mailboxes_synced_elsewhere": rep.mailboxes.iter().filter(|m| m.status == MailboxStatus::SyncedElsewhere).count(),
    });
    let mut doc = serde_json::to_value(rep).map_err(std::io::Error::other)?;
    doc["totals"] = totals;
    write_atomic(path, serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?.as_bytes())
}

pub fn write_prometheus(rep: &RunReport, path: &Path) -> std::io::Result<()> {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let per_stream = |f: &dyn Fn(&outlake_pipeline::runner::StreamReport) -> u64| -> Vec<(String, f64)> {
        rep.mailboxes
            .iter()
            .flat_map(|m| {
                m.streams.iter().map(move |(s, r)| (format!("{{mailbox=\"{}\",upn=\"{}\",stream=\"{}\"}}", esc(&m.mailbox_id), esc(&m.label), s), f(r) as f64))
            })
            .collect()
    };
    metric("outlake_rows_upserted", "Upsert rows committed in the last run.", "gauge", per_stream(&|r| r.upserts));
    metric("outlake_rows_deleted", "Delete rows committed in the last run.", "gauge", per_stream(&|r| r.deletes));
    metric("outlake_rows_filtered", "Messages left out by received_after in the last run.", "gauge", per_stream(&|r| r.filtered));
    metric("outlake_rebaselines", "Rounds restarted without a token in the last run.", "gauge", per_stream(&|r| r.rebaselines));
    metric(
        "outlake_window_rollovers",
        "Events partitions re-baselined in the last run because the calendar window moved.",
        "gauge",
        per_stream(&|r| r.window_rollovers),
    );
    let per_mailbox = |f: &dyn Fn(&outlake_pipeline::runner::MailboxReport) -> f64| -> Vec<(String, f64)> {
        rep.mailboxes
            .iter()
            .filter(|m| m.status != MailboxStatus::Skipped)
            .map(|m| (format!("{{mailbox=\"{}\",upn=\"{}\"}}", esc(&m.mailbox_id), esc(&m.label)), f(m)))
            .collect()
    };
    metric("outlake_requests", "Graph requests made in the last run.", "gauge", per_mailbox(&|m| m.requests as f64));
    metric("outlake_throttled_responses", "429 responses received in the last run.", "gauge", per_mailbox(&|m| m.throttled as f64));
    metric("outlake_retries", "Requests retried in the last run.", "gauge", per_mailbox(&|m| m.retries as f64));
    metric(
        "outlake_mailbox_failed",
        "1 when the mailbox failed in the last run.",
        "gauge",
        per_mailbox(&|m| if m.status == MailboxStatus::Failed { 1.0 } else { 0.0 }),
    );
    metric(
        "outlake_mailbox_interrupted",
        "1 when the last run stopped before the mailbox finished.",
        "gauge",
        per_mailbox(&|m| if m.status == MailboxStatus::Interrupted { 1.0 } else { 0.0 }),
    );
    metric(
        "outlake_mailbox_busy",
        "1 when another worker held the mailbox's lease, so the last run left it alone.",
        "gauge",
        per_mailbox(&|m| if m.status == MailboxStatus::Busy { 1.0 } else { 0.0 }),
    );
    metric("outlake_run_duration_seconds", "Wall time of the last run.", "gauge", vec![(String::new(), rep.duration_ms as f64 / 1000.0)]);
    metric(
        "outlake_run_success",
        "1 when the last run finished without failures.",
        "gauge",
        vec![(String::new(), if rep.outcome() == outlake_pipeline::runner::RunOutcome::Ok { 1.0 } else { 0.0 })],
    );
    metric(
        "outlake_run_interrupted",
        "1 when the last run was stopped by a signal before it finished.",
        "gauge",
        vec![(String::new(), if rep.interrupted { 1.0 } else { 0.0 })],
    );
    metric(
        "outlake_rows_uncommitted",
        "Rows staged in the last run that no commit holds (fetched again by the next run).",
        "gauge",
        per_stream(&|r| r.uncommitted_rows),
    );
    metric("outlake_last_run_timestamp_seconds", "When the last run started.", "gauge", vec![(String::new(), rep.started_at.timestamp() as f64)]);
    write_atomic(path, out.as_bytes())
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Write to a temporary file beside `path`, then rename: collectors never read half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("outlake")));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
