//! `outlake reset`: forget cursors so the next sync starts a new round without a token. That
//! round owes deletes: at its end, keys the output holds but Graph no longer returns get delete
//! rows.

use outlake_pipeline::lake::CommitRequest;
use outlake_pipeline::model::{PartitionState, Stream};

use crate::cli::ConfigArg;
use crate::exit;

pub async fn run(config: ConfigArg, mailbox: Option<String>, stream: Option<String>) -> u8 {
    let cfg = match super::load_config(&config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let stream = match stream.as_deref().map(|s| (s, Stream::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((s, None)) => {
            eprintln!("error: --stream {s:?} is not a stream; use messages, events or mail_folders");
            return exit::CONFIG_OR_AUTH;
        }
    };
    let lake = match crate::wiring::open_lake(&cfg).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::FAILURE;
        }
    };
    let checkpoints = match lake.list(mailbox.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: reading checkpoints: {e}");
            return exit::FAILURE;
        }
    };
    let run_id = crate::wiring::uuid_like();
    let mut n = 0;
    for cp in checkpoints {
        // The calendars listing has no cursor to forget: it is listed whole every run.
        if cp.state != PartitionState::Syncing || !cp.partition.stream.is_delta() || stream.is_some_and(|s| s != cp.partition.stream) {
            continue;
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
        n += 1;
    }
    println!("{n} partition(s) reset; the next sync re-baselines them");
    exit::OK
}
