//! Fuzz-style property test of page parsing + normalization (issue 9). `cargo fuzz` needs a
//! nightly toolchain; this runs under `cargo test` on stable: it replays the checked-in seed
//! corpus `fuzz/corpus/normalize/` (plus `regressions/`), then mutates it for
//! `OUTLAKE_FUZZ_SECS` seconds (default 2; CI: `scripts/fuzz.sh` runs 60).
//!
//! Invariants, for every input and every stream: no panic; an `Ok` page has the stream's schema,
//! one row per item, at most as many malformed items as upserts, and a memory footprint bounded
//! by the input size; an `Err` draws nothing from the `_seq` generator.

use std::path::PathBuf;

use chrono::TimeZone;
use outlake_connectors::{NormalizeContext, normalize_page, schema};
use outlake_pipeline::model::Stream;
use outlake_pipeline::seq::SeqGen;
use outlake_simulator::hostile::fuzz;

fn ctx() -> NormalizeContext {
    NormalizeContext {
        mailbox_id: "mbx".into(),
        folder_id: Some("folder".into()),
        extracted_at: chrono::Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
        run_id: "run".into(),
        fetch_bodies: true,
    }
}

fn check(body: &[u8]) {
    let c = ctx();
    for stream in Stream::ALL {
        let seq = SeqGen::new(0);
        let before = seq.high_water();
        match normalize_page(stream, body, &c, &seq) {
            Ok(p) => {
                let b = &p.batch;
                assert_eq!(b.schema(), schema(stream));
                assert_eq!(b.num_rows(), p.upserted_ids.len() + p.removed, "{stream}: one row per item");
                assert!(p.malformed_items <= p.upserted_ids.len(), "{stream}: malformed counts upserts only");
                // Bounded allocation: Arrow output stays within a constant factor of the input.
                let mem = b.get_array_memory_size();
                assert!(mem <= 2 * 1024 * 1024 + 64 * body.len(), "{stream}: {mem} bytes of Arrow for a {}-byte page", body.len());
            }
            Err(e) => {
                assert_eq!(seq.high_water(), before, "{stream}: a failed page drew _seq values");
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[test]
fn normalize_survives_hostile_pages() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/normalize");
    let s = fuzz::run("normalize", &corpus, fuzz::budget(2.0), 64 * 1024, check);
    assert!(s.executions as usize >= s.corpus);
}

#[test]
fn deep_nesting_and_huge_inputs_fail_cleanly() {
    // serde_json's recursion limit turns deep nesting into an error, not a stack overflow.
    let deep = format!("{{\"value\":[{{\"id\":\"a\",\"x\":{}{}}}]}}", "[".repeat(100_000), "]".repeat(100_000));
    check(deep.as_bytes());
    let many = format!("{{\"value\":[{}{{\"id\":\"z\"}}],\"@odata.deltaLink\":\"d\"}}", "{\"id\":\"a\",\"categories\":[\"c\"]},".repeat(50_000));
    check(many.as_bytes());
}
