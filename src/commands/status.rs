//! `outlake status`: each partition's committed position.

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
                "cursor": match (&c.cursor, c.retired) {
                    (_, true) => "retired",
                    (None, _) if c.is_out_of_scope() => "out of scope (folder excluded)",
                    (None, _) => "none (re-baseline next run)",
                    (Some(k), _) if k.kind() == "next" => "mid-round",
                    _ => "delta link",
                },
                "rebaselines": c.rebaselines,
                "commit": c.seq,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        println!("{:<38} {:<13} {:<18} {:<26} {:>10} {:<28} {:>4}", "MAILBOX", "STREAM", "FOLDER", "LAST COMMIT", "ROWS", "CURSOR", "REB");
        for r in &rows {
            let folder = r["folder_id"].as_str().map(|f| if f.len() > 16 { format!("{}…", &f[..15]) } else { f.to_string() }).unwrap_or_else(|| "-".into());
            println!(
                "{:<38} {:<13} {:<18} {:<26} {:>10} {:<28} {:>4}",
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
