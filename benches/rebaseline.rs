//! Rebaseline memory: one mailbox whose Inbox holds a million messages, backfilled, then its
//! delta tokens expired and a few thousand changes made, then synced again (every folder
//! re-baselines and owes deletes).
//!
//! Prints wall time and peak RSS of both runs, their ratio, and checks the rebuilt current state
//! against the simulator's (the (folder, id) keys of the messages table against
//! `Simulator::message_ids`).
//!
//! The Inbox's messages are the simulator's bulk folder (`SimConfig::bulk_messages`): generated
//! on demand from (seed, index), so the simulator holds only the ones that change; the rest of
//! the mailbox is a small stored world (`OUTLAKE_BENCH_STORED`, 200 messages over its folders).
//!
//! Run: `cargo build --release --bin outlake && cargo bench --bench rebaseline`
//! Size: `OUTLAKE_BENCH_MESSAGES=20000 cargo bench --bench rebaseline` (default 1,000,000);
//! changes of each kind: `OUTLAKE_BENCH_CHANGES` (700).

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use common::*;
use outlake_simulator::SimConfig;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn main() {
    let messages = env_usize("OUTLAKE_BENCH_MESSAGES", 1_000_000);
    let stored = env_usize("OUTLAKE_BENCH_STORED", 200);
    let changes = env_usize("OUTLAKE_BENCH_CHANGES", 700);
    println!(
        "rebaseline: 1 mailbox, Inbox + {messages} generated messages, {stored} stored ones; {changes} changes of each kind between the runs; {}",
        machine()
    );
    let dir = bench_dir();
    let cfg = SimConfig { bulk_messages: messages, ..bench_world(1, stored) };
    let host = SimHost::start(cfg);
    let sim = host.sim();
    let mailbox = sim.mailbox_ids()[0].clone();
    let lake = dir.path().join("lake");
    let config = write_config(dir.path(), sim, &lake, 1000, "", "");

    let backfill = run_outlake(&config, dir.path(), "backfill");
    report("backfill", &backfill);

    sim.expire_sync_state(&mailbox);
    sim.mutate(sim.random_changes(7, changes)).expect("changes apply");
    let rebaseline = run_outlake(&config, dir.path(), "rebaseline");
    report("rebaseline", &rebaseline);
    assert!(rebaseline.total("rebaselines") > 0, "the second run did not re-baseline: {:#}", rebaseline.report["totals"]);

    let ratio = rebaseline.max_rss_kib as f64 / backfill.max_rss_kib.max(1) as f64;
    println!("peak RSS rebaseline ÷ backfill: {ratio:.2} (target ≤ 1.2); rebaseline peak {} MB (target ≤ 200 MB)", rebaseline.max_rss_kib / 1024);

    let truth = sim.message_ids(&mailbox);
    let current = current_message_ids(&lake);
    let (missing, extra) = (truth.difference(&current).count(), current.difference(&truth).count());
    println!("current state: {} messages; simulator: {}; missing {missing}, extra {extra}", current.len(), truth.len());
    assert!(missing == 0 && extra == 0, "the rebuilt state differs from the simulator's: {missing} missing, {extra} extra");
    host.stop();
}

fn report(label: &str, run: &Run) {
    println!(
        "{label}: {:.1}s wall, peak RSS {} MB, {} upserts, {} deletes, {} pages, {:.1} CPU-s",
        run.wall.as_secs_f64(),
        run.max_rss_kib / 1024,
        run.total("upserts"),
        run.total("deletes"),
        run.total("pages"),
        (run.user_cpu + run.sys_cpu).as_secs_f64()
    );
}

/// (folder, id) present in the messages table by the documented rule: per (folder, id), the row
/// with the largest `_seq`, present when `_op = 'upsert'`.
fn current_message_ids(lake: &Path) -> BTreeSet<(String, String)> {
    let mut latest: HashMap<(String, String), (i64, bool)> = HashMap::new();
    let mut stack = vec![lake.join("messages")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "parquet") {
                continue;
            }
            let file = std::fs::File::open(&p).expect("open");
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let col = |n: &str| batch.column_by_name(n).unwrap_or_else(|| panic!("{n} column")).clone();
                let (ids, folders, ops, seqs) = (col("id"), col("parent_folder_id"), col("_op"), col("_seq"));
                let (ids, folders, ops) = (ids.as_string::<i32>(), folders.as_string::<i32>(), ops.as_string::<i32>());
                let seqs = seqs.as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    let key = (folders.value(i).to_string(), ids.value(i).to_string());
                    let row = (seqs.value(i), ops.value(i) == "upsert" && ids.is_valid(i));
                    let slot = latest.entry(key).or_insert(row);
                    if slot.0 < row.0 {
                        *slot = row;
                    }
                }
            }
        }
    }
    latest.into_iter().filter(|(_, (_, present))| *present).map(|(key, _)| key).collect()
}
