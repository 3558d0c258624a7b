//! Normalize: a Graph messages delta page → Arrow `RecordBatch`, on one core.
//!
//! Pages are real simulator pages (the bytes outlake receives), fetched once at start:
//! - `typical`: the stored `$select` fields as the simulator renders them (~1.8 KB per message:
//!   Exchange-length ids, a 255-character preview, a long webLink), 1000 per page;
//! - `compact`: the same page with every field kept but shorter values (~1.2 KB per message;
//!   700 bytes cannot hold every stored field with realistic values);
//! - `html_body`: `$select` + `body`, each body replaced by ~20 KB of HTML, 100 per page.
//!
//! Run: `cargo bench --bench normalize` (criterion prints time per page and messages/s).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outlake_connectors::{NormalizeContext, normalize_page};
use outlake_pipeline::model::Stream;
use outlake_pipeline::seq::SeqGen;
use outlake_simulator::SimConfig;

/// One page of the inbox of the first mailbox, with `page_size` messages.
fn inbox_page(page_size: usize, bodies: bool) -> (String, Vec<u8>) {
    let host = SimHost::start(SimConfig { users: 2, messages_per_mailbox: 3000, events_per_mailbox: 0, ..SimConfig::default() });
    let sim = host.sim();
    let (user, body) = host.rt.block_on(async {
        let http = reqwest::Client::new();
        let bearer = token(&http, sim).await;
        let prefer = prefer(page_size);
        let user = sim.mailbox_ids()[0].clone();
        let base = sim.url();
        let fs = folders(&http, &bearer, &prefer, &base, &user).await;
        let mut best = Vec::new();
        for f in fs {
            let r = http.get(message_delta_url(&base, &user, &f, bodies)).bearer_auth(&bearer).header("Prefer", &prefer).send().await.unwrap();
            let status = r.status();
            let b = r.bytes().await.unwrap().to_vec();
            assert!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&b));
            if count_items(&b) > count_items(&best) {
                best = b;
            }
        }
        (user, best)
    });
    host.stop();
    (user, body)
}

/// Every message body replaced by ~20 KB of HTML.
fn with_big_bodies(page: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(page).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&page[..page.len().min(600)])));
    let mut html = String::from("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>");
    let mut i = 0;
    while html.len() < 20_000 {
        html.push_str(&format!("<p style=\"margin:0\">Paragraph {i}: the quarterly numbers &amp; the &quot;plan&quot; are attached, see <a href=\"https://contoso.sharepoint.com/x/{i}\">the deck</a>.</p>\r\n"));
        i += 1;
    }
    html.push_str("</body></html>");
    for m in v["value"].as_array_mut().unwrap() {
        m["body"] = serde_json::json!({"contentType": "html", "content": html});
    }
    serde_json::to_vec(&v).unwrap()
}

/// The same messages with shorter values (preview, links, ids, recipients); every selected
/// field is still present.
fn compacted(page: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(page).unwrap();
    let short = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    for m in v["value"].as_array_mut().unwrap() {
        for (k, n) in
            [("id", 40), ("parentFolderId", 40), ("conversationId", 40), ("changeKey", 16), ("internetMessageId", 30), ("bodyPreview", 60), ("webLink", 40)]
        {
            if let Some(s) = m[k].as_str() {
                m[k] = serde_json::json!(short(s, n));
            }
        }
        for k in ["toRecipients", "ccRecipients", "bccRecipients", "replyTo"] {
            if let Some(a) = m[k].as_array_mut() {
                a.truncate(if k == "toRecipients" { 1 } else { 0 });
            }
        }
    }
    println!("normalize/compact: sample message {}", v["value"][0]);
    serde_json::to_vec(&v).unwrap()
}

fn ctx(user: &str, bodies: bool) -> NormalizeContext {
    NormalizeContext {
        mailbox_id: user.to_string(),
        folder_id: Some("AAMkAGI2folder".into()),
        extracted_at: chrono::Utc::now(),
        run_id: "bench".into(),
        fetch_bodies: bodies,
    }
}

fn bench(c: &mut Criterion) {
    let (user, typical) = inbox_page(1000, false);
    let (_, html) = inbox_page(100, true);
    let html = with_big_bodies(&html);
    let compact = compacted(&typical);
    let seq = SeqGen::new(0);
    let mut g = c.benchmark_group("normalize");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for (name, page, bodies) in [("typical", &typical, false), ("compact", &compact, false), ("html_body_20k", &html, true)] {
        let n = count_items(page);
        let ctx = ctx(&user, bodies);
        let check = normalize_page(Stream::Messages, page, &ctx, &seq).expect("normalizes");
        assert_eq!(check.batch.num_rows() as u64, n);
        println!("normalize/{name}: {n} messages per page, {} bytes per message on the wire", page.len() as u64 / n);
        g.throughput(Throughput::Elements(n));
        g.bench_function(name, |b| b.iter(|| normalize_page(Stream::Messages, std::hint::black_box(page), &ctx, &seq).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
