//! `outlake estimate`: a dry run of a backfill. It lists the mailboxes as `sync` would and reads
//! each mailbox's folder tree (`mailFolders/delta`, whose folders carry `totalItemCount`), but no
//! messages or events, and prints per mailbox and in total the Graph requests a full sync
//! (baseline) needs and the shortest time the configured limits allow.
//!
//! Per mailbox: folder delta pages (counted: they are read) + per folder
//! max(1, ceil(totalItemCount / page_size)) message delta pages + the calendars listing (read:
//! one page per 100 calendars) + per selected calendar (`source.calendars`) 1 empty first page,
//! as Graph serves, + max(1, ceil(events / page_size)) calendarView pages, the mailbox's assumed
//! events spread evenly over its selected calendars — which is also what a change or a roll of
//! the calendar window costs (`window_change_requests`) +
//! 1 inbox probe when mailboxes are discovered + 1 request per well-known folder name that
//! `include_folders` / `exclude_folders` use. Only folders in the folder scope count;
//! `received_after` does not reduce requests (messages delta still pages every message). Time: each mailbox's requests at its
//! budget's rate (requests_per_window / window_secs), mailboxes in parallel up to
//! max_parallel_mailboxes (longest first onto the least loaded slot).

use serde_json::{Value, json};

use outlake_config::{Config, Mailboxes};
use outlake_connectors::{FolderCounts, GraphSource};
use outlake_pipeline::model::Mailbox;
use outlake_pipeline::scope::{FolderNode, FolderScope};
use outlake_pipeline::source::{Source, SourceErrorKind};

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, as_json: bool, events_per_mailbox: u64) -> u8 {
    let cfg = match super::load_config(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let window = crate::wiring::run_now().and_then(|now| crate::wiring::calendar_window(&cfg, now));
    let options = window.and_then(|w| crate::wiring::graph_options(&cfg, w));
    let source = match options.map_err(|e| format!("{e:#}")).and_then(|o| GraphSource::new(o).map_err(|e| e.message)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::CONFIG_OR_AUTH;
        }
    };
    let listing = match source.mailboxes().await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listing mailboxes: {}", e.message);
            return if e.kind == SourceErrorKind::Auth { exit::CONFIG_OR_AUTH } else { exit::FAILURE };
        }
    };
    let excluded = &cfg.source.exclude_mailboxes;
    let mailboxes: Vec<Mailbox> = listing
        .mailboxes
        .into_iter()
        .filter(|mb| !excluded.iter().any(|p| p.matches(&mb.id) || mb.upn.as_deref().is_some_and(|u| p.matches(u) || p.matches(&u.to_lowercase()))))
        .collect();

    let ps = cfg.source.page_size.max(1) as u64;
    let streams = &cfg.source.streams;
    let want_messages = streams.iter().any(|s| s == "messages");
    let want_folders = want_messages || streams.iter().any(|s| s == "mail_folders");
    let want_events = streams.iter().any(|s| s == "events");
    let discovered = matches!(cfg.source.mailboxes, Mailboxes::All);
    let users_seen = (mailboxes.len() + listing.skipped.len()) as u64;
    // Globs in a mailbox list page the directory, like "all".
    let globbed = matches!(&cfg.source.mailboxes, Mailboxes::List(l) if l.iter().any(|e| outlake_config::is_glob(e)));
    let directory_pages = users_seen.div_ceil(999).max(1);
    let discovery_directory = match &cfg.source.mailboxes {
        Mailboxes::All => directory_pages,
        Mailboxes::List(l) => l.iter().filter(|e| !outlake_config::is_glob(e)).count() as u64 + if globbed { directory_pages } else { 0 },
        Mailboxes::Me => 1,
    };
    let skipped_probes = if discovered || globbed { listing.skipped.len() as u64 } else { 0 };
    let rate = cfg.limits.requests_per_window as f64 / cfg.limits.window.as_secs_f64().max(0.001);

    let mut rows = Vec::new();
    let mut failed = 0;
    for (who, e) in &listing.failed {
        failed += 1;
        rows.push(json!({"mailbox_id": who, "label": who, "error": e.message}));
    }
    let calendar_filter = crate::wiring::calendar_filter(&cfg);
    for mb in &mailboxes {
        let (calendars, calendar_requests) = if want_events {
            match source.calendar_list(mb).await {
                Ok(list) => (calendar_filter.select(mb, &list).len() as u64, (list.len() as u64).div_ceil(100).max(1)),
                Err(e) => {
                    failed += 1;
                    rows.push(json!({"mailbox_id": mb.id, "label": mb.label(), "error": e.message}));
                    continue;
                }
            }
        } else {
            (0, 0)
        };
        let FolderCounts { folders, pages: folder_pages } = if want_folders {
            match source.folder_counts(mb).await {
                Ok(x) => x,
                Err(e) => {
                    failed += 1;
                    rows.push(json!({"mailbox_id": mb.id, "label": mb.label(), "error": e.message}));
                    continue;
                }
            }
        } else {
            FolderCounts::default()
        };
        let (folders, scope_requests) = match in_scope(&source, &cfg, mb, folders).await {
            Ok(x) => x,
            Err(e) => {
                failed += 1;
                rows.push(json!({"mailbox_id": mb.id, "label": mb.label(), "error": e}));
                continue;
            }
        };
        let messages: u64 = folders.iter().sum();
        let message_pages: u64 = if want_messages { folders.iter().map(|n| n.div_ceil(ps).max(1)).sum() } else { 0 };
        let per_calendar = events_per_mailbox.div_ceil(calendars.max(1));
        let event_pages = calendars * (1 + per_calendar.div_ceil(ps).max(1));
        let probe = u64::from(discovered);
        let requests = probe + folder_pages + scope_requests + message_pages + calendar_requests + event_pages;
        rows.push(json!({
            "mailbox_id": mb.id,
            "label": mb.label(),
            "folders": folders.len(),
            "messages": messages,
            "probe_requests": probe,
            "folder_delta_pages": folder_pages,
            "folder_scope_requests": scope_requests,
            "message_pages": message_pages,
            "calendars": calendars,
            "calendar_listing_requests": calendar_requests,
            "event_pages": event_pages,
            "window_change_requests": event_pages,
            "requests": requests,
            "min_seconds": requests as f64 / rate,
        }));
    }

    let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    let mailbox_requests = sum("requests");
    let total_requests = mailbox_requests + discovery_directory + skipped_probes;
    let lanes = (cfg.limits.max_parallel_mailboxes.max(1)) as usize;
    let mut per: Vec<f64> = rows.iter().filter_map(|r| r["min_seconds"].as_f64()).collect();
    per.sort_by(|a, b| b.total_cmp(a));
    let mut load = vec![0.0f64; lanes.min(per.len()).max(1)];
    for t in per {
        let i = load.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        load[i] += t;
    }
    let min_seconds = load.iter().cloned().fold(0.0, f64::max);
    let assumptions = vec![
        format!("page_size {ps}: every folder needs max(1, ceil(totalItemCount / {ps})) message delta pages (folder counts read now from mailFolders/delta)"),
        format!(
            "calendars: {events_per_mailbox} events per mailbox in the calendarView window {} (--events-per-mailbox; not counted), spread over the calendars source.calendars selects (counted: the listing is read); per calendar 1 + max(1, ceil(events / {ps})) pages — Graph serves the first calendar page empty. A change or roll of the window costs the same again (window_change_requests)",
            cfg.source.calendar_window.describe()
        ),
        format!("per-mailbox budget {} requests / {} s = {rate:.2} requests/s; the initial burst, latency and 429 retries are ignored", cfg.limits.requests_per_window, cfg.limits.window.as_secs_f64()),
        format!("up to {lanes} mailboxes at once (limits.max_parallel_mailboxes), longest first; limits.max_in_flight ({}) is not modelled", cfg.limits.max_in_flight),
        "a baseline (first) sync; later incremental syncs need far fewer requests".to_string(),
        "only folders inside include_folders / exclude_folders count (FOLDERS and MESSAGES are in-scope figures); received_after does not save requests, since message delta pages through every message of a folder".to_string(),
        "directory requests (users pages, resolving configured mailboxes) and probes of users without a mailbox are counted in the total, not per mailbox".to_string(),
    ];
    let totals = json!({
        "mailboxes": mailboxes.len(),
        "folders": sum("folders"),
        "messages": sum("messages"),
        "folder_delta_pages": sum("folder_delta_pages"),
        "message_pages": sum("message_pages"),
        "calendars": sum("calendars"),
        "event_pages": sum("event_pages"),
        "window_change_requests": sum("window_change_requests"),
        "discovery_requests": discovery_directory + skipped_probes + sum("probe_requests"),
        "requests": total_requests,
        "min_seconds": min_seconds,
    });
    if as_json {
        let doc = json!({
            "page_size": ps,
            "events_per_mailbox": events_per_mailbox,
            "requests_per_second_per_mailbox": rate,
            "max_parallel_mailboxes": lanes,
            "mailboxes": rows,
            "skipped": listing.skipped.iter().map(|(m, why)| json!({"mailbox": m, "reason": why})).collect::<Vec<_>>(),
            "totals": totals,
            "assumptions": assumptions,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!(
            "{:<36} {:>7} {:>9} {:>8} {:>9} {:>5} {:>8} {:>9} {:>10}",
            "MAILBOX", "FOLDERS", "MESSAGES", "F.PAGES", "M.PAGES", "CALS", "E.PAGES", "REQUESTS", "MIN TIME"
        );
        for r in &rows {
            let label = r["label"].as_str().unwrap_or("");
            if let Some(e) = r["error"].as_str() {
                println!("{label:<36} FAILED: {e}");
                continue;
            }
            println!(
                "{label:<36} {:>7} {:>9} {:>8} {:>9} {:>5} {:>8} {:>9} {:>10}",
                n(&r["folders"]),
                n(&r["messages"]),
                n(&r["folder_delta_pages"]),
                n(&r["message_pages"]),
                n(&r["calendars"]),
                n(&r["event_pages"]),
                n(&r["requests"]),
                human(r["min_seconds"].as_f64().unwrap_or(0.0))
            );
        }
        for (m, why) in &listing.skipped {
            println!("{m:<36} skipped: {why}");
        }
        println!(
            "{:<36} {:>7} {:>9} {:>8} {:>9} {:>5} {:>8} {:>9} {:>10}",
            format!("total ({} mailboxes)", mailboxes.len()),
            n(&totals["folders"]),
            n(&totals["messages"]),
            n(&totals["folder_delta_pages"]),
            n(&totals["message_pages"]),
            n(&totals["calendars"]),
            n(&totals["event_pages"]),
            total_requests,
            human(min_seconds)
        );
        println!("discovery: {} requests (included in the total)", totals["discovery_requests"]);
        println!(
            "calendar window {}: a change or roll of the window re-reads every selected calendar: {} requests",
            cfg.source.calendar_window.describe(),
            n(&totals["window_change_requests"])
        );
        println!("estimated requests: {total_requests}; time lower bound: {}", human(min_seconds));
        println!("assumptions:");
        for a in &assumptions {
            println!("  - {a}");
        }
    }
    if failed > 0 { exit::PARTIAL } else { exit::OK }
}

/// The message counts of the folders in the folder scope, and the requests that resolving
/// well-known folder names took.
async fn in_scope(source: &GraphSource, cfg: &Config, mb: &Mailbox, folders: Vec<(FolderNode, u64)>) -> Result<(Vec<u64>, u64), String> {
    let scope = FolderScope { include: cfg.source.include_folders.clone(), exclude: cfg.source.exclude_folders.clone() };
    if scope.is_everything() {
        return Ok((folders.into_iter().map(|(_, n)| n).collect(), 0));
    }
    let well_known = scope.resolve_well_known(source, mb).await.map_err(|e| e.message)?;
    let nodes: Vec<FolderNode> = folders.iter().map(|(f, _)| f.clone()).collect();
    let selected: std::collections::HashSet<String> = scope.select(&nodes, &well_known).selected.into_iter().collect();
    let counts = folders.into_iter().filter(|(f, _)| selected.contains(&f.id)).map(|(_, n)| n).collect();
    Ok((counts, scope.well_known_names().len() as u64))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn human(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!("{}h{:02}m", (secs / 3600.0) as u64, ((secs % 3600.0) / 60.0) as u64)
    }
}
