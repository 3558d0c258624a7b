//! Fuzz-style property test of the commit-record reader (`outlake_sinks::format::
//! decode_record`), issue 9. Replays the checked-in corpus `fuzz/corpus/commit_record/` (plus
//! `regressions/`), then mutates it for `OUTLAKE_FUZZ_SECS` seconds (default 2; CI 60 via
//! `scripts/fuzz.sh`).
//!
//! Invariants: no panic; a rejected record is `Corrupt` and its message names the record; an
//! accepted record re-encodes to a record that decodes to the same checkpoint.

use std::path::PathBuf;

use outlake_pipeline::lake::LakeErrorKind;
use outlake_simulator::hostile::fuzz;
use outlake_sinks::format::{decode_record, encode_record};

const URL: &str = "file:///lake/_state/m/p/00000000000000000001.json";

fn check(bytes: &[u8]) {
    match decode_record(URL, bytes) {
        Ok(cp) => {
            let again = decode_record(URL, &encode_record(&cp)).expect("a re-encoded record decodes");
            assert_eq!(again, cp, "round trip");
        }
        Err(e) => {
            assert_eq!(e.kind, LakeErrorKind::Corrupt, "{e}");
            assert!(e.message.contains(URL), "the record is not named: {e}");
            assert_eq!(e.path.as_deref(), Some(URL));
        }
    }
}

#[test]
fn commit_record_reader_survives_hostile_bytes() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/commit_record");
    let s = fuzz::run("commit_record", &corpus, fuzz::budget(2.0), 64 * 1024, check);
    assert!(s.executions as usize >= s.corpus);
}
