//! Write: `RecordBatch` → Parquet (zstd) through the sink's staged writer, on one core.
//!
//! The batches are the normalized `typical` pages (1000 messages each, stored `$select`
//! fields, no body); one iteration writes 20 of them (20,000 messages) into one staged file
//! and closes it. Stores: object_store's in-memory store (the encoder alone) and the local
//! filesystem (what `file://` sinks do). zstd levels 1 and 3 (3 is the default).
//!
//! Run: `cargo bench --bench write`

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::RecordBatch;
use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outlake_connectors::{NormalizeContext, normalize_page};
use outlake_pipeline::lake::Lake;
use outlake_pipeline::model::{PartitionKey, Stream};
use outlake_pipeline::seq::SeqGen;
use outlake_simulator::SimConfig;
use outlake_sinks::{ObjectLake, StoreRoot, WriterSettings, build_store, memory_store};

const PAGES: usize = 20;

/// Normalized pages of the first mailbox (messages, `$select` fields, 1000 per page).
fn batches() -> Vec<RecordBatch> {
    let host = SimHost::start(SimConfig { users: 2, messages_per_mailbox: 25_000, events_per_mailbox: 0, ..SimConfig::default() });
    let sim = host.sim();
    let user = sim.mailbox_ids()[0].clone();
    let pages = host.rt.block_on(async {
        let http = reqwest::Client::new();
        let bearer = token(&http, sim).await;
        let prefer = prefer(1000);
        let base = sim.url();
        let mut out = Vec::new();
        for f in folders(&http, &bearer, &prefer, &base, &user).await {
            out.extend(follow(&http, &bearer, &prefer, message_delta_url(&base, &user, &f, false), true).await.1);
        }
        out
    });
    host.stop();
    let ctx = NormalizeContext { mailbox_id: user, folder_id: None, extracted_at: chrono::Utc::now(), run_id: "bench".into(), fetch_bodies: false };
    let seq = SeqGen::new(0);
    let mut full: Vec<RecordBatch> =
        pages.iter().map(|p| normalize_page(Stream::Messages, p, &ctx, &seq).unwrap().batch).filter(|b| b.num_rows() == 1000).collect();
    assert!(full.len() >= PAGES, "only {} full pages", full.len());
    full.truncate(PAGES);
    full
}

fn bench(c: &mut Criterion) {
    let batches = batches();
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = build_store(&format!("file://{}", dir.path().display()), &BTreeMap::new()).unwrap();
    let memory = StoreRoot::new(memory_store("bench"), "memory:///bench");
    let part = PartitionKey::new("00000000-0000-0000-0000-000000000001", Stream::Messages, Some("AAMkAGI2folder".into()));

    let mut g = c.benchmark_group("write");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(rows));
    for (name, root, level) in [("memory_zstd3", &memory, 3), ("memory_zstd1", &memory, 1), ("local_zstd3", &local, 3)] {
        let settings = WriterSettings { zstd_level: level, ..WriterSettings::default() };
        let write_all = || {
            rt.block_on(async {
                let mut w = ObjectLake::from_store(root.store.clone(), None, settings.clone()).writer(&part);
                for b in &batches {
                    w.write(b).await.unwrap();
                }
                w.finish().await.unwrap()
            })
        };
        let files = write_all();
        println!(
            "write/{name}: {rows} messages → {} file(s), {:.1} bytes per message",
            files.len(),
            files.iter().map(|f| f.bytes).sum::<u64>() as f64 / rows as f64
        );
        g.bench_function(name, |b| b.iter(write_all));
    }
    // The encoder alone with other properties, to see what the sink's settings cost.
    if std::env::var("OUTLAKE_BENCH_WRITE_VARIANTS").is_ok() {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::{EnabledStatistics, WriterProperties};
        use parquet::schema::types::ColumnPath;
        let unique = ["id", "body_preview", "change_key", "conversation_id", "internet_message_id", "web_link", "body_content", "_seq"];
        let variants: Vec<(&str, WriterProperties)> = vec![
            (
                "props_sink_default",
                WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                    .set_statistics_enabled(EnabledStatistics::Page)
                    .build(),
            ),
            ("props_no_dict_unique", {
                let mut b = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                    .set_statistics_enabled(EnabledStatistics::Page);
                for c in unique {
                    b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
                }
                b.build()
            }),
            ("props_no_dict_unique_chunk_stats", {
                let mut b = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                    .set_statistics_enabled(EnabledStatistics::Chunk);
                for c in unique {
                    b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
                }
                b.build()
            }),
            ("props_no_dict_unique_zstd1", {
                let mut b = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
                    .set_statistics_enabled(EnabledStatistics::Page);
                for c in unique {
                    b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
                }
                b.build()
            }),
            (
                "props_no_dict_at_all",
                WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                    .set_statistics_enabled(EnabledStatistics::Page)
                    .set_dictionary_enabled(false)
                    .build(),
            ),
        ];
        for (name, props) in variants {
            let write = || {
                let mut w = parquet::arrow::ArrowWriter::try_new(Vec::new(), batches[0].schema(), Some(props.clone())).unwrap();
                for b in &batches {
                    w.write(b).unwrap();
                }
                w.into_inner().unwrap()
            };
            println!("write/{name}: {:.1} bytes per message", write().len() as f64 / rows as f64);
            g.bench_function(name, |b| b.iter(write));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
