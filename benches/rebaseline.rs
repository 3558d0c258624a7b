//! Rebaseline memory: one large mailbox, backfilled, then its delta tokens expired and a few
//! thousand changes made, then synced again (every folder re-baselines and owes deletes).
//!
//! Prints wall time and peak RSS of both runs, their ratio, and checks the rebuilt current state
//! against the simulator's truth (count and ids of the messages table).
//!
//! Run: `cargo build --release --bin outlake && cargo bench --bench rebaseline`
//! Size: `OUTLAKE_BENCH_MESSAGES=200000 cargo bench --bench rebaseline` (the simulator holds
//! about 20 KB per message, so 1,000,000 needs more memory than this machine has).

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn main() {
    let messages = env_usize("OUTLAKE_BENCH_MESSAGES", 200_000);
    let changes = env_usize("OUTLAKE_BENCH_CHANGES", 700);
    println!("rebaseline: 1 mailbox × {messages} messages, {changes} changes of each kind between the runs; {}", machine());
    let dir = bench_dir();
    let cfg = bench_world(1, messages);
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

    let truth: BTreeSet<String> =
        sim.truth()["mailboxes"][0]["messages"].as_array().expect("truth").iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect();
    let current = current_message_ids(&lake);
    println!("current state: {} messages; truth: {}; equal: {}", current.len(), truth.len(), current == truth);
    assert_eq!(current, truth, "the rebuilt state differs from the truth");
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

/// Ids present in the messages table by the documented rule: per (folder, id), the row with the
/// largest `_seq`, present when `_op = 'upsert'`.
fn current_message_ids(lake: &Path) -> BTreeSet<String> {
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
    latest.into_iter().filter(|(_, (_, present))| *present).map(|((_, id), _)| id).collect()
}
