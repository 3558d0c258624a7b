//! `outlake status`: each partition's committed position; for events partitions (one per
//! calendar, `folder_id` is the calendar id) also the calendarView window their round runs with.

use outlake_pipeline::model::{Cursor, PartitionState, Stream};
use serde_json::json;

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, as_json: bool) -> u8 {
    let lake = match super::open_configured_lake(&config).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut cps = match lake.list(None).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: reading checkpoints: {e}");
            return exit::FAILURE;
        }
    };
    cps.sort_by(|a, b| a.partition.cmp(&b.partition));
    let rows: Vec<serde_json::Value> = cps
        .iter()
        .map(|c| {
            json!({
                "mailbox_id": c.partition.mailbox_id,
                "stream": c.partition.stream.as_str(),
                "folder_id": c.partition.folder_id,
                "last_commit": c.committed_at.to_rfc3339(),
                "rows_committed": c.total_rows,
                "cursor": match (c.state, &c.cursor) {
                    (PartitionState::Retired, _) => "retired",
                    (PartitionState::Parked, _) if c.partition.stream == Stream::Events => "out of scope (calendar excluded)",
                    (PartitionState::Parked, _) => "out of scope (folder excluded)",
                    (PartitionState::Syncing, None) if c.partition.stream == Stream::Calendars => "listing (no delta)",
                    (PartitionState::NeedsRebaseline, _) | (PartitionState::Syncing, None) => "none (re-baseline next run)",
                    (PartitionState::Syncing, Some(Cursor::Next(_))) => "mid-round",
                    (PartitionState::Syncing, Some(Cursor::Delta(_))) => "delta link",
                },
                "state": c.state.as_str(),
                "calendar_window": c.round.scope.calendar_window.map(|w| json!({"start": w.start.to_rfc3339(), "end": w.end.to_rfc3339()})),
                "rebaselines": c.rebaselines,
                "commit": c.seq,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        println!("{:<38} {:<13} {:<18} {:<26} {:>10} {:<32} {:>4}  WINDOW", "MAILBOX", "STREAM", "FOLDER/CALENDAR", "LAST COMMIT", "ROWS", "CURSOR", "REB");
        for r in &rows {
            let folder = r["folder_id"].as_str().map(|f| if f.len() > 16 { format!("{}…", &f[..15]) } else { f.to_string() }).unwrap_or_else(|| "-".into());
            let window = match &r["calendar_window"] {
                serde_json::Value::Null => String::new(),
                w => format!("{} … {}", day(&w["start"]), day(&w["end"])),
            };
            println!(
                "{:<38} {:<13} {:<18} {:<26} {:>10} {:<32} {:>4}  {window}",
                r["mailbox_id"].as_str().unwrap_or(""),
                r["stream"].as_str().unwrap_or(""),
                folder,
                r["last_commit"].as_str().unwrap_or("").chars().take(25).collect::<String>(),
                r["rows_committed"],
                r["cursor"].as_str().unwrap_or(""),
                r["rebaselines"],
            );
        }
    }
    exit::OK
}

/// The date part of an RFC 3339 instant.
fn day(v: &serde_json::Value) -> &str {
    v.as_str().map(|s| s.get(..10).unwrap_or(s)).unwrap_or("")
}
