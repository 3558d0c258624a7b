//! `outlake status`: each partition's committed position; for events partitions (one per
//! calendar, `folder_id` is the calendar id) also the calendarView window their round runs with.
//!
//! Needs only `[sink]` and `[checkpoint]`. Folders are shown by their path of display names
//! (`Inbox/Projects/2024`), read from the lake's own `mail_folders` table: per folder id the row
//! with the largest `_seq`, when it is an upsert ([`Lake::current_keys`] of the mailbox's
//! `mail_folders` partition). Calendars are shown by name the same way from the `calendars`
//! partition, mailboxes by UPN from the `mailboxes` table (by user id when the lake has no row
//! for them). A folder or calendar without a known name (deleted, or never listed) shows the
//! end of its id, which is where Graph ids differ (they share long prefixes). The table's
//! columns are as wide as their widest cell. Mailboxes a worker holds the lease of now follow
//! the table (who, which run, until when); with `--json`, each row's `leased_by`.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use outlake_pipeline::lake::DynLake;
use outlake_pipeline::model::{Checkpoint, Cursor, KeyState, PartitionKey, PartitionState, Stream};
use serde_json::json;

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, as_json: bool) -> u8 {
    let super::ExistingLake { lake, url, mut checkpoints } = match super::open_existing_lake(&config).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    if checkpoints.is_empty() && !as_json {
        println!("the lake at {url} has no committed partition yet (only staged files); `outlake sync` commits them");
        return exit::OK;
    }
    let names = Names::read(&lake, &checkpoints).await;
    let leases = match live_leases(&lake).await {
        Ok(l) => l,
        Err(e) => {
            crate::logging::error(&format!("reading the mailbox leases: {e}"));
            return exit::FAILURE;
        }
    };
    checkpoints.sort_by_cached_key(|c| (c.partition.mailbox_id.clone(), c.partition.stream, names.label(c), c.partition.folder_id.clone()));
    if as_json {
        let rows: Vec<serde_json::Value> = checkpoints
            .iter()
            .map(|c| {
                let mut row = json_row(c, &names);
                row["leased_by"] = leases
                    .get(&c.partition.mailbox_id)
                    .map_or(serde_json::Value::Null, |l| json!({"worker": l.holder.worker, "run_id": l.holder.run_id, "until": l.expires_at.to_rfc3339()}));
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = checkpoints.iter().map(|c| table_row(c, &names)).collect();
        print!("{}", render(&COLUMNS, &rows));
        if !leases.is_empty() {
            println!("\nleased now ({} mailbox(es) being synced):", leases.len());
            let rows: Vec<Vec<String>> = leases
                .values()
                .map(|l| {
                    let who = names.upns.get(&l.mailbox_id).cloned().unwrap_or_else(|| l.mailbox_id.clone());
                    vec![who, l.holder.worker.clone(), l.holder.run_id.clone(), l.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)]
                })
                .collect();
            print!("{}", render(&LEASE_COLUMNS, &rows));
        }
    }
    exit::OK
}

const LEASE_COLUMNS: [(&str, Align); 4] = [("MAILBOX", Align::Left), ("WORKER", Align::Left), ("RUN", Align::Left), ("UNTIL", Align::Left)];

/// The leases held now (not released, not expired), by mailbox id.
async fn live_leases(lake: &DynLake) -> Result<std::collections::BTreeMap<String, outlake_pipeline::lease::LeaseRecord>, outlake_pipeline::lake::LakeError> {
    let Some(store) = lake.leases() else { return Ok(Default::default()) };
    let now = chrono::Utc::now();
    Ok(store.list_leases().await?.into_iter().filter(|r| r.is_live(now)).map(|r| (r.mailbox_id.clone(), r)).collect())
}

/// A cell's alignment in its column.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

const COLUMNS: [(&str, Align); 8] = [
    ("MAILBOX", Align::Left),
    ("STREAM", Align::Left),
    ("FOLDER/CALENDAR", Align::Left),
    ("LAST COMMIT", Align::Left),
    ("ROWS", Align::Right),
    ("CURSOR", Align::Left),
    ("REB", Align::Right),
    ("WINDOW", Align::Left),
];

/// A header line and one line per row; every column as wide as its widest cell (in characters),
/// two spaces between columns, no trailing spaces.
pub fn render(columns: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).chain([columns[i].0.chars().count()]).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.len()).map(width).collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(columns)
            .zip(&widths)
            .map(|((cell, (_, align)), w)| match align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|(h, _)| *h).collect());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn table_row(c: &Checkpoint, names: &Names) -> Vec<String> {
    let window = match c.round.scope.calendar_window {
        Some(w) => format!("{} … {}", w.start.format("%Y-%m-%d"), w.end.format("%Y-%m-%d")),
        None => "-".into(),
    };
    vec![
        names.upns.get(&c.partition.mailbox_id).cloned().unwrap_or_else(|| c.partition.mailbox_id.clone()),
        c.partition.stream.as_str().to_string(),
        names.label(c),
        c.committed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        c.total_rows.to_string(),
        cursor(c).to_string(),
        c.rebaselines.to_string(),
        window,
    ]
}

fn json_row(c: &Checkpoint, names: &Names) -> serde_json::Value {
    json!({
        "mailbox_id": c.partition.mailbox_id,
        "user_principal_name": names.upns.get(&c.partition.mailbox_id),
        "stream": c.partition.stream.as_str(),
        "folder_id": c.partition.folder_id,
        "folder_name": names.name(&c.partition),
        "last_commit": c.committed_at.to_rfc3339(),
        "rows_committed": c.total_rows,
        "cursor": cursor(c),
        "state": c.state.as_str(),
        "calendar_window": c.round.scope.calendar_window.map(|w| json!({"start": w.start.to_rfc3339(), "end": w.end.to_rfc3339()})),
        "rebaselines": c.rebaselines,
        "commit": c.seq,
    })
}

fn cursor(c: &Checkpoint) -> &'static str {
    match (c.state, &c.cursor) {
        (PartitionState::Retired, _) => "retired",
        (PartitionState::Parked, _) if c.partition.stream == Stream::Events => "out of scope (calendar excluded)",
        (PartitionState::Parked, _) => "out of scope (folder excluded)",
        (PartitionState::Syncing, None) if !c.partition.stream.is_delta() => "listing (no delta)",
        (PartitionState::NeedsRebaseline, _) | (PartitionState::Syncing, None) => "none (re-baseline next run)",
        (PartitionState::Syncing, Some(Cursor::Next(_))) => "mid-round",
        (PartitionState::Syncing, Some(Cursor::Delta(_))) => "delta link",
    }
}

/// Folder paths, calendar names and mailbox UPNs, from the lake's `mail_folders`, `calendars`
/// and `mailboxes` partitions.
#[derive(Default)]
struct Names {
    /// (mailbox id, folder id) → `Inbox/Projects/2024`.
    folders: HashMap<(String, String), String>,
    /// (mailbox id, calendar id) → `Calendar`.
    calendars: HashMap<(String, String), String>,
    /// Mailbox id → UPN, from the `mailboxes` table.
    upns: HashMap<String, String>,
}

/// Mailboxes read at once.
const READ_CONCURRENCY: usize = 8;

impl Names {
    /// Reads the `mail_folders` (and `calendars`) partition of every mailbox that has messages
    /// (events) partitions. A read that fails leaves those names unknown, with a warning: the
    /// positions are what `status` is for.
    async fn read(lake: &DynLake, checkpoints: &[Checkpoint]) -> Names {
        let wanted: BTreeSet<PartitionKey> = checkpoints
            .iter()
            .filter_map(|c| match c.partition.stream {
                Stream::Messages => Some(PartitionKey::new(c.partition.mailbox_id.clone(), Stream::MailFolders, None)),
                Stream::Events => Some(PartitionKey::new(c.partition.mailbox_id.clone(), Stream::Calendars, None)),
                Stream::Mailboxes => Some(c.partition.clone()),
                _ => None,
            })
            .collect();
        let reads = futures::stream::iter(wanted).map(|p| async move {
            let keys = lake.current_keys(&p).await;
            (p, keys)
        });
        let mut names = Names::default();
        let mut results = reads.buffer_unordered(READ_CONCURRENCY);
        while let Some((p, keys)) = results.next().await {
            let keys = match keys {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("warning: reading the names in {p} failed ({e}); showing ids");
                    continue;
                }
            };
            if p.stream == Stream::Mailboxes {
                if let Some(upn) = keys.get(&p.mailbox_id).filter(|k| !k.deleted).and_then(|k| k.display_name.clone()) {
                    names.upns.insert(p.mailbox_id.clone(), upn);
                }
                continue;
            }
            let (map, paths) = match p.stream {
                Stream::MailFolders => (&mut names.folders, folder_paths(&keys)),
                _ => {
                    (&mut names.calendars, keys.iter().filter(|(_, k)| !k.deleted).filter_map(|(id, k)| Some((id.clone(), k.display_name.clone()?))).collect())
                }
            };
            map.extend(paths.into_iter().map(|(id, name)| ((p.mailbox_id.clone(), id), name)));
        }
        names
    }

    /// The folder's path or the calendar's name, when known.
    fn name(&self, p: &PartitionKey) -> Option<&str> {
        let id = p.folder_id.clone()?;
        let map = match p.stream {
            Stream::Messages => &self.folders,
            Stream::Events => &self.calendars,
            _ => return None,
        };
        map.get(&(p.mailbox_id.clone(), id)).map(String::as_str)
    }

    /// What the table shows: the name, else `id …<end of the id>`, else `-`.
    fn label(&self, c: &Checkpoint) -> String {
        match (self.name(&c.partition), &c.partition.folder_id) {
            (Some(name), _) => name.to_string(),
            (None, Some(id)) => {
                let tail: String = id.chars().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect();
                let short = if tail.len() < id.len() { format!("…{tail}") } else { tail };
                if c.state == PartitionState::Retired { format!("(deleted) id {short}") } else { format!("id {short}") }
            }
            (None, None) => "-".into(),
        }
    }
}

/// Every current folder's path of display names (`Inbox/Projects/2024`), following
/// `parent_folder_id` up to a folder the table does not hold (the root).
fn folder_paths(keys: &HashMap<String, KeyState>) -> HashMap<String, String> {
    let live = |id: &str| keys.get(id).filter(|k| !k.deleted && k.display_name.is_some());
    keys.keys()
        .filter(|id| live(id).is_some())
        .map(|id| {
            let mut parts = Vec::new();
            let mut at = Some(id.as_str());
            // Bounded: a cycle in bad data must not hang `status`.
            while let Some(k) = at.and_then(live).filter(|_| parts.len() < 64) {
                parts.push(k.display_name.as_deref().unwrap_or(""));
                at = k.parent_folder_id.as_deref();
            }
            parts.reverse();
            (id.clone(), parts.join("/"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, parent: Option<&str>, seq: i64, deleted: bool) -> KeyState {
        KeyState {
            seq,
            deleted,
            change_key: None,
            parent_folder_id: parent.map(String::from),
            display_name: (!deleted).then(|| name.to_string()),
            item_count: None,
        }
    }

    #[test]
    fn folder_paths_follow_parents_up_to_the_root() {
        let keys: HashMap<String, KeyState> = [
            ("inbox".to_string(), folder("Inbox", Some("root"), 1, false)),
            ("p".to_string(), folder("Projects", Some("inbox"), 2, false)),
            ("y".to_string(), folder("2024", Some("p"), 3, false)),
            ("gone".to_string(), folder("Old", Some("inbox"), 4, true)),
            ("loop1".to_string(), folder("A", Some("loop2"), 5, false)),
            ("loop2".to_string(), folder("B", Some("loop1"), 6, false)),
        ]
        .into();
        let p = folder_paths(&keys);
        assert_eq!(p["y"], "Inbox/Projects/2024");
        assert_eq!(p["inbox"], "Inbox");
        assert!(!p.contains_key("gone"));
        assert!(p["loop1"].len() < 200);
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let cols = [("A", Align::Left), ("NUM", Align::Right), ("LAST", Align::Left)];
        let rows = vec![vec!["Posteingang/Ünterordner".to_string(), "12345".into(), "-".into()], vec!["x".into(), "1".into(), "yy".into()]];
        let text = render(&cols, &rows);
        assert_eq!(text, "A                          NUM  LAST\nPosteingang/Ünterordner  12345  -\nx                            1  yy\n");
    }
}
