//! `outlake reset`: forget cursors so the next sync starts a new round without a token. That
//! round owes deletes: at its end, keys the output holds but Graph no longer returns get delete
//! rows.
//!
//! Needs only `[sink]` and `[checkpoint]`. It resets what it is told and nothing by default:
//! `--mailbox` (a user id, or a UPN the lake's `mailboxes` table knows), `--stream`, both, or `--all` for every
//! partition. Without one of them it refuses; a `--mailbox` or `--stream` that matches no
//! partition of the lake is an error, not "0 partitions reset". Both are usage mistakes:
//! exit 2, like a flag clap refuses. No lake at the configured place: exit 1.

use outlake_pipeline::lake::CommitRequest;
use outlake_pipeline::model::{Checkpoint, PartitionState, Stream};

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, mailbox: Option<String>, stream: Option<String>, all: bool) -> u8 {
    if mailbox.is_none() && stream.is_none() && !all {
        eprintln!("error: say what to reset: --mailbox <user id>, --stream <stream>, both, or --all for every partition");
        eprintln!("note: `outlake status` lists the partitions; e.g. outlake reset --config outlake.toml --mailbox <user id> --stream messages");
        return exit::CONFIG_OR_AUTH;
    }
    let stream = match stream.as_deref().map(|s| (s, Stream::parse(s))) {
        None => None,
        Some((_, Some(s))) if s.is_delta() => Some(s),
        Some((s, parsed)) => {
            let why = if parsed.is_some() { "has no cursor to forget (it is read whole every run)" } else { "is not a stream" };
            eprintln!("error: --stream {s:?} {why}; use messages, events or mail_folders");
            return exit::CONFIG_OR_AUTH;
        }
    };
    let super::ExistingLake { lake, url, checkpoints } = match super::open_existing_lake(&config).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    // A UPN is resolved to its user id through the lake's `mailboxes` table.
    let mailbox_id = match mailbox.as_deref().map(str::trim) {
        Some(m) if !checkpoints.iter().any(|c| c.partition.mailbox_id.eq_ignore_ascii_case(m)) => {
            Some(id_of_upn(&lake, &checkpoints, m).await.unwrap_or_else(|| m.to_string()))
        }
        other => other.map(str::to_string),
    };
    let matched: Vec<Checkpoint> = checkpoints
        .into_iter()
        .filter(|c| mailbox_id.as_deref().is_none_or(|m| c.partition.mailbox_id.eq_ignore_ascii_case(m)))
        .filter(|c| stream.is_none_or(|s| s == c.partition.stream))
        .collect();
    if matched.is_empty() && !all {
        eprintln!("error: {}", no_match(&url, mailbox.as_deref(), stream));
        return exit::CONFIG_OR_AUTH;
    }
    let run_id = crate::wiring::uuid_like();
    let (mut reset, mut pending, mut left) = (0, 0, 0);
    for cp in matched {
        // Streams without a cursor (the calendars listing) have nothing to forget.
        if !cp.partition.stream.is_delta() {
            continue;
        }
        match cp.state {
            PartitionState::Syncing => {}
            PartitionState::NeedsRebaseline => {
                pending += 1;
                continue;
            }
            PartitionState::Parked | PartitionState::Retired => {
                left += 1;
                continue;
            }
        }
        let req = CommitRequest {
            partition: cp.partition.clone(),
            previous: Some(cp.clone()),
            files: vec![],
            state: PartitionState::NeedsRebaseline,
            cursor: None,
            round: cp.round.clone(),
            high_water_seq: cp.high_water_seq,
            run_id: run_id.clone(),
            rows: 0,
            rebaselined: true,
        };
        if let Err(e) = lake.commit(req).await {
            eprintln!("error: resetting {}: {e}", cp.partition);
            return exit::FAILURE;
        }
        reset += 1;
    }
    print!("{reset} partition(s) reset; the next sync re-baselines them");
    if pending > 0 {
        print!("; {pending} already re-baseline next run");
    }
    if left > 0 {
        print!("; {left} parked or retired left as they are");
    }
    println!();
    exit::OK
}

/// The user id whose `mailboxes` row has this UPN (without regard to case), if the lake has one.
async fn id_of_upn(lake: &outlake_pipeline::lake::DynLake, checkpoints: &[Checkpoint], upn: &str) -> Option<String> {
    for c in checkpoints.iter().filter(|c| c.partition.stream == Stream::Mailboxes) {
        let keys = lake.current_keys(&c.partition).await.ok()?;
        if keys.get(&c.partition.mailbox_id).is_some_and(|k| !k.deleted && k.display_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(upn))) {
            return Some(c.partition.mailbox_id.clone());
        }
    }
    None
}

/// Why a selection matched nothing, and what to do.
fn no_match(url: &str, mailbox: Option<&str>, stream: Option<Stream>) -> String {
    let what = match (mailbox, stream) {
        (Some(m), Some(s)) => format!("no {s} partition of mailbox `{m}`"),
        (Some(m), None) => format!("no partition of mailbox `{m}`"),
        (None, Some(s)) => format!("no {s} partition"),
        (None, None) => "no partition".to_string(),
    };
    let hint = match mailbox {
        Some(m) if m.contains('@') => "; no synced mailbox has that UPN in the `mailboxes` table: run `outlake status` to see the mailboxes",
        Some(_) => "; run `outlake status` to see the mailbox ids it holds",
        None => "; run `outlake status` to see its partitions",
    };
    format!("the lake at {url} has {what}{hint}")
}
