//! Hostile pages: deliberate corruption of delta pages, for tests of what a client does with
//! input Graph should never send (issue 9). Off unless [`SimConfig::hostile`] holds rules.
//!
//! A [`HostileRule`] names a mailbox (id or UPN), optionally a stream, which pages of a round it
//! applies to, and a [`Corruption`]. Rules are checked after the page was rendered and the sync
//! state advanced, exactly as if Graph had sent the corrupted bytes; every matching rule is
//! applied in order. The rules are live: change them with [`crate::Simulator::reconfigure`].
//!
//! Also here: a tiny byte-level mutator and a time-bounded fuzz loop over a seed corpus
//! ([`fuzz`]), shared by the fuzz-style property tests of the connector and the sink (the
//! stable toolchain cannot run `cargo fuzz`).
//!
//! [`SimConfig::hostile`]: crate::SimConfig::hostile

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The delta collection a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileStream {
    MailFolders,
    Messages,
    Events,
}

/// Which pages of a delta round a rule corrupts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSelect {
    /// Every page.
    #[default]
    All,
    /// Only a round's first request (no `$skiptoken` / `$deltatoken` in the URL).
    Initial,
    /// Only pages fetched through a link (`$skiptoken` or `$deltatoken`).
    Links,
}

/// What is done to a matching page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    /// `value` becomes an object.
    ValueNotArray,
    /// Every upsert item gets properties of the wrong JSON type or unreadable timestamps
    /// (messages: `isRead: "yes"`, `receivedDateTime: "not a date"`, `categories: 5`; events:
    /// `isAllDay: "yes"`, `createdDateTime: "not a date"`, `categories: 5`, `start: "tomorrow"`;
    /// folders: `totalItemCount: "many"`, `isHidden: "no"`).
    WrongTypes,
    /// The first upsert item's `id` becomes a number.
    IdNotString,
    /// `@odata.nextLink` / `@odata.deltaLink` point to `https://evil.example.com` (same path
    /// and query).
    ForeignNextLink,
    /// A top-level `@hostile.padding` string makes the body at least this many bytes.
    OversizedPage(usize),
    /// Unknown properties on the page and on every item (a new Graph release); harmless.
    UnknownFields,
    /// These properties are removed from every item (e.g. `"subject"`); harmless.
    DropProperties(Vec<String>),
}

/// One corruption of one mailbox's pages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostileRule {
    /// User id or UPN (case-insensitive).
    pub mailbox: String,
    /// `None`: every stream.
    #[serde(default)]
    pub stream: Option<HostileStream>,
    #[serde(default)]
    pub pages: PageSelect,
    pub corruption: Corruption,
}

impl HostileRule {
    pub fn new(mailbox: impl Into<String>, stream: Option<HostileStream>, corruption: Corruption) -> Self {
        HostileRule { mailbox: mailbox.into(), stream, pages: PageSelect::All, corruption }
    }
    pub fn pages(mut self, pages: PageSelect) -> Self {
        self.pages = pages;
        self
    }
}

/// The host foreign links point to.
pub const EVIL_HOST: &str = "evil.example.com";

/// Apply every rule that matches a delta page of (`user_id`, `upn`, `stream`). `via_link`: the
/// request carried a `$skiptoken`/`$deltatoken`. Returns the body unchanged when no rule matches.
pub fn apply(rules: &[HostileRule], user_id: &str, upn: &str, stream: HostileStream, via_link: bool, body: Bytes) -> Bytes {
    let matching: Vec<&HostileRule> = rules
        .iter()
        .filter(|r| r.mailbox == user_id || r.mailbox.eq_ignore_ascii_case(upn))
        .filter(|r| r.stream.is_none_or(|s| s == stream))
        .filter(|r| match r.pages {
            PageSelect::All => true,
            PageSelect::Initial => !via_link,
            PageSelect::Links => via_link,
        })
        .collect();
    if matching.is_empty() {
        return body;
    }
    let Ok(mut page) = serde_json::from_slice::<Value>(&body) else { return body };
    for r in matching {
        corrupt(&mut page, stream, &r.corruption);
    }
    Bytes::from(serde_json::to_vec(&page).expect("json"))
}

fn upserts(page: &mut Value) -> impl Iterator<Item = &mut serde_json::Map<String, Value>> {
    page.get_mut("value").and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut).filter(|o| !o.contains_key("@removed"))
}

/// Apply one corruption to a parsed page.
pub fn corrupt(page: &mut Value, stream: HostileStream, c: &Corruption) {
    match c {
        Corruption::ValueNotArray => {
            page["value"] = json!({"hostile": "value is an object, not an array"});
        }
        Corruption::WrongTypes => {
            for item in upserts(page) {
                let set: &[(&str, Value)] = match stream {
                    HostileStream::Messages => &[("isRead", json!("yes")), ("receivedDateTime", json!("not a date")), ("categories", json!(5))],
                    HostileStream::Events => {
                        &[("isAllDay", json!("yes")), ("createdDateTime", json!("not a date")), ("categories", json!(5)), ("start", json!("tomorrow"))]
                    }
                    HostileStream::MailFolders => &[("totalItemCount", json!("many")), ("isHidden", json!("no"))],
                };
                for (k, v) in set {
                    item.insert((*k).to_string(), v.clone());
                }
            }
        }
        Corruption::IdNotString => {
            if let Some(item) = upserts(page).next() {
                item.insert("id".into(), json!(12345));
            }
        }
        Corruption::ForeignNextLink => {
            for k in ["@odata.nextLink", "@odata.deltaLink"] {
                if let Some(Value::String(link)) = page.get(k)
                    && let Ok(mut u) = url::Url::parse(link)
                {
                    let _ = u.set_scheme("https");
                    let _ = u.set_host(Some(EVIL_HOST));
                    let _ = u.set_port(None);
                    page[k] = json!(u.to_string());
                }
            }
        }
        Corruption::OversizedPage(bytes) => {
            page["@hostile.padding"] = json!("x".repeat(*bytes));
        }
        Corruption::UnknownFields => {
            page["@odata.futureAnnotation"] = json!({"nested": [1, 2, {"deep": true}]});
            for item in upserts(page) {
                item.insert("futureProperty".into(), json!({"a": [1, "two", null]}));
                item.insert("@odata.futureType".into(), json!("#microsoft.graph.future"));
            }
        }
        Corruption::DropProperties(names) => {
            for item in upserts(page) {
                for n in names {
                    item.remove(n);
                }
            }
        }
    }
}

/// A byte-level mutator and a time-bounded fuzz loop over a seed corpus, for fuzz-style
/// property tests that run under `cargo test` on the stable toolchain.
///
/// [`run`] first replays every file of the corpus directory (and of its `regressions/`
/// subfolder), then mutates corpus entries until the time budget is spent: bit flips, byte
/// insertions and deletions, splices of two entries, repeated chunks, and JSON-aware edits
/// (swap a value for another type, deepen nesting, huge numbers). The budget comes from the
/// environment variable `OUTLAKE_FUZZ_SECS` (default 2 s; CI sets 60). A panic in the target is
/// caught, the input is written to `<corpus>/../../artifacts/<name>/crash-<hash>` and the test
/// fails naming that file.
pub mod fuzz {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    /// xorshift64*: deterministic, no dependency.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
        }
    }

    const TOKENS: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1e308",
        "-9223372036854775809",
        "18446744073709551616",
        "1.5",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "[[[[[[[[[[[[[[[[[[[[",
        "{\"id\":",
        "\"value\":",
        "\"@removed\":{}",
        "\"id\":7",
        "\"2024-02-30T25:61:00Z\"",
        "\"not a date\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"@odata.nextLink\":",
        "\"@odata.deltaLink\":",
        "\"https://evil.example.com/v1.0/x\"",
        ",",
        ":",
        "\"format_version\":",
        "\"cursor\":",
        "\"seq\":",
        "\"files\":",
    ];

    /// One random edit of `input`, using `other` for splices.
    pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
        let mut v = input.to_vec();
        let edits = 1 + rng.below(4);
        for _ in 0..edits {
            let len = v.len();
            match rng.below(8) {
                0 if len > 0 => {
                    let i = rng.below(len);
                    v[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(len + 1);
                    v.insert(i, rng.next_u64() as u8);
                }
                2 if len > 0 => {
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(16));
                    v.drain(i..i + n);
                }
                3 if !other.is_empty() => {
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len());
                    v.truncate(cut);
                    v.extend_from_slice(&other[from..]);
                }
                4 if len > 0 => {
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(64));
                    let chunk = v[i..i + n].to_vec();
                    for _ in 0..1 + rng.below(8) {
                        v.splice(i..i, chunk.iter().copied());
                    }
                }
                5 | 6 => {
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    let i = rng.below(len + 1);
                    if rng.below(2) == 0 && len > 0 {
                        // Replace a token-sized span.
                        let n = rng.below((len - i).min(12) + 1);
                        v.splice(i..i + n, t.iter().copied());
                    } else {
                        v.splice(i..i, t.iter().copied());
                    }
                }
                _ if len > 0 => {
                    v.truncate(rng.below(len));
                }
                _ => {}
            }
        }
        v.truncate(max_len);
        v
    }

    /// `OUTLAKE_FUZZ_SECS`, default `default_secs`.
    pub fn budget(default_secs: f64) -> Duration {
        let secs = std::env::var("OUTLAKE_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(default_secs);
        Duration::from_secs_f64(secs.max(0.0))
    }

    fn read_dir_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
            .collect();
        out.sort();
        out
    }

    /// What one run did.
    #[derive(Debug, Default, Clone)]
    pub struct Summary {
        pub corpus: usize,
        pub executions: u64,
    }

    /// Replay the corpus at `corpus_dir` (must hold at least one file), then mutate it for the
    /// budget. `target` must not panic; any invariant it checks it checks with `assert!`.
    pub fn run(name: &str, corpus_dir: &Path, budget: Duration, max_len: usize, target: impl Fn(&[u8])) -> Summary {
        let mut corpus: Vec<Vec<u8>> = read_dir_files(corpus_dir).into_iter().map(|(_, b)| b).collect();
        corpus.extend(read_dir_files(&corpus_dir.join("regressions")).into_iter().map(|(_, b)| b));
        assert!(!corpus.is_empty(), "fuzz target {name}: no seed corpus in {}", corpus_dir.display());
        let artifacts = corpus_dir.parent().and_then(Path::parent).map(|p| p.join("artifacts").join(name));
        let check = |input: &[u8]| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
            if let Err(e) = r {
                let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                let saved = artifacts.as_ref().and_then(|dir| {
                    std::fs::create_dir_all(dir).ok()?;
                    let h = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3));
                    let p = dir.join(format!("crash-{h:016x}"));
                    std::fs::write(&p, input).ok()?;
                    Some(p)
                });
                panic!(
                    "fuzz target {name} panicked: {msg}\ninput ({} bytes) saved to {}; add it to {}/regressions/ once fixed\n{}",
                    input.len(),
                    saved.map(|p| p.display().to_string()).unwrap_or_else(|| "(could not save)".into()),
                    corpus_dir.display(),
                    String::from_utf8_lossy(&input[..input.len().min(400)])
                );
            }
        };
        let mut summary = Summary { corpus: corpus.len(), executions: 0 };
        for c in &corpus {
            check(c);
            summary.executions += 1;
        }
        let seed = std::env::var("OUTLAKE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1));
        let mut rng = Rng::new(seed);
        let t0 = Instant::now();
        while t0.elapsed() < budget {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            let mut input = mutate(&mut rng, a, b, max_len);
            // Stack a few generations on one input now and then.
            for _ in 0..rng.below(3) {
                input = mutate(&mut rng, &input, b, max_len);
            }
            check(&input);
            summary.executions += 1;
        }
        eprintln!("fuzz {name}: seed {seed}, {} corpus entries, {} executions in {:.1}s", summary.corpus, summary.executions, t0.elapsed().as_secs_f64());
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Bytes {
        Bytes::from(
            json!({
                "value": [{"id": "a", "isRead": true, "subject": "s"}, {"id": "b", "@removed": {"reason": "deleted"}}],
                "@odata.nextLink": "http://127.0.0.1:4000/v1.0/users/u/messages/delta?$skiptoken=x"
            })
            .to_string(),
        )
    }

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn rules_match_mailbox_stream_and_pages() {
        let r = vec![HostileRule::new("U@x.com", Some(HostileStream::Messages), Corruption::ValueNotArray).pages(PageSelect::Links)];
        let same = apply(&r, "id", "other@x.com", HostileStream::Messages, true, page());
        assert_eq!(same, page());
        assert_eq!(apply(&r, "id", "u@x.com", HostileStream::Events, true, page()), page());
        assert_eq!(apply(&r, "id", "u@x.com", HostileStream::Messages, false, page()), page());
        assert!(parse(&apply(&r, "id", "u@x.com", HostileStream::Messages, true, page()))["value"].is_object());
    }

    #[test]
    fn corruptions() {
        let go = |c: Corruption| parse(&apply(&[HostileRule::new("u", None, c)], "u", "", HostileStream::Messages, false, page()));
        let w = go(Corruption::WrongTypes);
        assert_eq!(w["value"][0]["isRead"], "yes");
        assert!(w["value"][1].get("isRead").is_none(), "deletes stay as they are");
        assert_eq!(go(Corruption::IdNotString)["value"][0]["id"], 12345);
        let f = go(Corruption::ForeignNextLink);
        assert_eq!(f["@odata.nextLink"], "https://evil.example.com/v1.0/users/u/messages/delta?$skiptoken=x");
        assert!(serde_json::to_vec(&go(Corruption::OversizedPage(5000))).unwrap().len() > 5000);
        assert!(go(Corruption::DropProperties(vec!["subject".into()]))["value"][0].get("subject").is_none());
        assert!(go(Corruption::UnknownFields)["value"][0].get("futureProperty").is_some());
    }

    #[test]
    fn mutator_stays_bounded() {
        let mut rng = fuzz::Rng::new(7);
        let mut v = b"{\"value\":[]}".to_vec();
        for _ in 0..2000 {
            v = fuzz::mutate(&mut rng, &v, b"{\"a\":1}", 4096);
            assert!(v.len() <= 4096);
        }
    }
}
