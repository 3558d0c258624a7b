//! Every key outlake knows, with the kind of value it takes and an example; and the check of a
//! raw value tree (a TOML file, or the `OUTLAKE_*` environment) against them.
//!
//! serde's `deny_unknown_fields` stops at the first unknown key of a struct and describes types
//! as Rust does (`i64`, `map`). So before serde sees anything, [`check_tree`] walks the tree
//! figment read and reports **every** problem in words:
//!
//! - an unknown section or key, once, by its full path, with "did you mean `source.client_id`?"
//!   for a near miss (edit distance ≤ 2, or the same letters up to case, `_` and `-`), or a key
//!   of another section (`source.max_in_flight` → `limits.max_in_flight`), or else the list of
//!   the section's keys;
//! - a value of the wrong kind: "expected a whole number, found the string \"64\"", with the
//!   key's example. A secret's value is never quoted back.
//!
//! Problem keys are removed from the tree, so the serde pass that follows sees only keys of the
//! right kind. The walk also normalizes what serde cannot take as it stands:
//!
//! - **TOML date and datetime literals** (`received_after = 2024-01-01`, unquoted). The `toml`
//!   crate hands them to figment as a one-key table `{ "$__toml_private_datetime" = "…" }` —
//!   hence the "found map" users saw. For the three date keys (`received_after`,
//!   `calendar_start`, `calendar_end`) the walk replaces that table with its text, so a literal
//!   and a quoted string are the same thing; elsewhere a literal is reported as a date.
//! - **Environment values.** figment parses `OUTLAKE_*` values as TOML-ish data, so
//!   `OUTLAKE_SOURCE__CLIENT_SECRET=12345` arrives as a number and `…=true` as a boolean. For
//!   keys that take a string, the walk uses the variable's text as written instead.
//! - **`sink.options`**: object_store options are strings; `aws_allow_http = true` and
//!   `port = 9000` are taken as `"true"` and `"9000"`.
//!
//! [`KEYS`] must match the serde structs in [`crate::raw`]; a unit test compares them.

use std::collections::BTreeMap;

use figment::value::{Dict, Num, Value};

use crate::problem::{Problem, env_var_for};

/// The sections, in the order of the README.
pub const SECTIONS: [&str; 4] = ["source", "limits", "sink", "checkpoint"];

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A string that is never printed back.
    Secret,
    /// A date or RFC 3339 timestamp, quoted or a TOML literal (`received_after`).
    Instant,
    /// An offset string, or a date or timestamp quoted or as a TOML literal (`calendar_start`).
    Bound,
    StrOrList,
    List,
    Int,
    Float,
    Bool,
    /// A table of strings (`sink.options`).
    StrMap,
}

impl Kind {
    /// What a value of this kind is, in words.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Str | Kind::Secret => "a string",
            Kind::Instant => "a date or an RFC 3339 timestamp (quoted or not)",
            Kind::Bound => "an offset string such as \"-365d\", or a date or RFC 3339 timestamp (quoted or not)",
            Kind::StrOrList => "a string or a list of strings",
            Kind::List => "a list of strings",
            Kind::Int => "a whole number",
            Kind::Float => "a number",
            Kind::Bool => "true or false",
            Kind::StrMap => "a table of strings",
        }
    }
}

/// A key: its section, its name, what it takes, and a valid example (`page_size = 1000`).
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub section: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub example: &'static str,
}

impl KeySpec {
    /// `source.page_size`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }
}

const fn k(section: &'static str, name: &'static str, kind: Kind, example: &'static str) -> KeySpec {
    KeySpec { section, name, kind, example }
}

/// Every key, section by section, in the order of the raw structs.
pub const KEYS: &[KeySpec] = &[
    k("source", "tenant_id", Kind::Str, "tenant_id = \"contoso.onmicrosoft.com\""),
    k("source", "client_id", Kind::Str, "client_id = \"00000000-0000-0000-0000-000000000000\""),
    k("source", "client_secret", Kind::Secret, "client_secret = \"<the secret's value>\" (better: OUTLAKE_SOURCE__CLIENT_SECRET)"),
    k("source", "client_secret_file", Kind::Str, "client_secret_file = \"/run/secrets/outlake\""),
    k("source", "authority_url", Kind::Str, "authority_url = \"https://login.microsoftonline.com\""),
    k("source", "graph_url", Kind::Str, "graph_url = \"https://graph.microsoft.com\""),
    k("source", "auth", Kind::Str, "auth = \"client_credentials\""),
    k("source", "mailboxes", Kind::StrOrList, "mailboxes = [\"adele@contoso.com\"]"),
    k("source", "exclude_mailboxes", Kind::List, "exclude_mailboxes = [\"room-*@contoso.com\"]"),
    k("source", "include_folders", Kind::List, "include_folders = [\"inbox\", \"Projects/2024\"]"),
    k("source", "exclude_folders", Kind::List, "exclude_folders = [\"junkemail\", \"deleteditems\"]"),
    k("source", "received_after", Kind::Instant, "received_after = 2024-01-01"),
    k("source", "streams", Kind::List, "streams = [\"messages\", \"events\", \"mail_folders\"]"),
    k("source", "page_size", Kind::Int, "page_size = 1000"),
    k("source", "calendar_start", Kind::Bound, "calendar_start = \"-365d\""),
    k("source", "calendar_end", Kind::Bound, "calendar_end = \"+365d\""),
    k("source", "calendar_roll", Kind::Str, "calendar_roll = \"month\""),
    k("source", "calendars", Kind::StrOrList, "calendars = \"owned\""),
    k("source", "fetch_bodies", Kind::Bool, "fetch_bodies = true"),
    k("source", "redirect_uri", Kind::Str, "redirect_uri = \"http://localhost:48444/callback\""),
    k("source", "scopes", Kind::StrOrList, "scopes = \"offline_access Mail.Read Calendars.Read\""),
    k("source", "token_cache", Kind::Str, "token_cache = \"/var/lib/outlake/tokens.json\""),
    k("limits", "requests_per_window", Kind::Int, "requests_per_window = 10000"),
    k("limits", "window_secs", Kind::Float, "window_secs = 600"),
    k("limits", "max_concurrent_per_mailbox", Kind::Int, "max_concurrent_per_mailbox = 4"),
    k("limits", "max_in_flight", Kind::Int, "max_in_flight = 64"),
    k("limits", "max_parallel_mailboxes", Kind::Int, "max_parallel_mailboxes = 64"),
    k("limits", "retry_max_attempts", Kind::Int, "retry_max_attempts = 8"),
    k("limits", "retry_max_wait_secs", Kind::Float, "retry_max_wait_secs = 60"),
    k("limits", "retry_max_total_secs", Kind::Float, "retry_max_total_secs = 900"),
    k("limits", "request_timeout_secs", Kind::Float, "request_timeout_secs = 120"),
    k("limits", "max_page_mb", Kind::Int, "max_page_mb = 256"),
    k("limits", "max_buffered_mb", Kind::Int, "max_buffered_mb = 64"),
    k("limits", "max_requests_per_sec", Kind::Int, "max_requests_per_sec = 2000"),
    k("sink", "url", Kind::Str, "url = \"file:///var/lib/outlake/out\""),
    k("sink", "options", Kind::StrMap, "options = { aws_region = \"eu-west-1\" }"),
    k("sink", "row_group_rows", Kind::Int, "row_group_rows = 131072"),
    k("sink", "target_file_mb", Kind::Int, "target_file_mb = 256"),
    k("sink", "zstd_level", Kind::Int, "zstd_level = 1"),
    k("checkpoint", "url", Kind::Str, "url = \"file:///var/lib/outlake/state\""),
    k("checkpoint", "commit_every_pages", Kind::Int, "commit_every_pages = 50"),
    k("checkpoint", "commit_every_secs", Kind::Float, "commit_every_secs = 60"),
    k("checkpoint", "lease_ttl_secs", Kind::Float, "lease_ttl_secs = 300"),
];

/// The key `section.name`, if outlake knows it.
pub fn spec(section: &str, name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.section == section && s.name == name)
}

/// The key names of one section.
pub fn section_keys(section: &str) -> impl Iterator<Item = &'static str> + '_ {
    KEYS.iter().filter(move |s| s.section == section).map(|s| s.name)
}

/// Where a tree came from; for the environment, each key path's variable text as written.
pub(crate) enum Origin<'a> {
    File,
    Env(&'a BTreeMap<String, String>),
}

impl Origin<'_> {
    fn env_var(&self, path: &str) -> Option<String> {
        matches!(self, Origin::Env(_)).then(|| env_var_for(path))
    }

    fn raw_text(&self, path: &str) -> Option<&str> {
        match self {
            Origin::File => None,
            Origin::Env(raw) => raw.get(path).map(String::as_str),
        }
    }

    /// A key's example as this origin writes it: `max_in_flight = 64` or
    /// `OUTLAKE_LIMITS__MAX_IN_FLIGHT=64`.
    fn example(&self, spec: &KeySpec) -> String {
        match self {
            Origin::File => spec.example.to_string(),
            Origin::Env(_) => env_example(spec),
        }
    }
}

/// `OUTLAKE_SOURCE__TENANT_ID=contoso.onmicrosoft.com` from `tenant_id = "contoso.onmicrosoft.com"`.
fn env_example(spec: &KeySpec) -> String {
    let value = spec.example.split_once(" = ").map(|(_, v)| v).unwrap_or(spec.example);
    let value = value.split(" (").next().unwrap_or(value);
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if !inner.contains(['"', ' ', '\'']) => inner.to_string(),
        _ if value.contains(|c: char| !(c.is_ascii_alphanumeric() || "-+.:/_@".contains(c))) => format!("'{value}'"),
        _ => value.to_string(),
    };
    format!("{}={value}", env_var_for(&spec.path()))
}

/// What [`check_tree`] found.
pub(crate) struct Checked {
    /// The tree with every problem key removed and date literals turned into strings.
    pub tree: Dict,
    pub problems: Vec<Problem>,
    /// The key paths suggested by "did you mean": a later "is missing" for one of them says
    /// nothing the suggestion did not.
    pub suggested: Vec<String>,
}

/// Check a tree read from one origin against [`KEYS`].
pub(crate) fn check_tree(tree: Dict, origin: &Origin<'_>) -> Checked {
    let mut out = Dict::new();
    let mut problems = Vec::new();
    let mut suggested = Vec::new();
    for (top, value) in tree {
        if !SECTIONS.contains(&top.as_str()) {
            let (problem, suggestion) = unknown_top_level(&top, &value, origin);
            problems.push(problem);
            suggested.extend(suggestion);
            continue;
        }
        let Value::Dict(_, section) = value else {
            let example = format!("[{top}] on a line of its own, then its keys");
            problems.push(with_env(Problem::new(&top, format!("expected a table, found {}", found(&value, false)), example), origin.env_var(&top)));
            continue;
        };
        let mut clean = Dict::new();
        for (name, v) in section {
            let path = format!("{top}.{name}");
            match spec(&top, &name) {
                None => {
                    let (problem, suggestion) = unknown_key(&top, &name, origin);
                    problems.push(problem);
                    suggested.extend(suggestion);
                }
                Some(spec) => match accept(spec.kind, v, origin.raw_text(&path)) {
                    Ok(v) => {
                        clean.insert(name, v);
                    }
                    Err(message) => problems.push(with_env(Problem::new(path.clone(), message, origin.example(spec)), origin.env_var(&path))),
                },
            }
        }
        out.insert(top, Value::from(clean));
    }
    Checked { tree: out, problems, suggested }
}

fn with_env(mut p: Problem, env_var: Option<String>) -> Problem {
    p.env_var = env_var;
    p
}

/// A value of `kind`, normalized; or what is wrong with it. `raw` is the environment
/// variable's text, when the value came from one.
fn accept(kind: Kind, v: Value, raw: Option<&str>) -> Result<Value, String> {
    let secret = kind == Kind::Secret;
    let wrong = |v: &Value| format!("expected {}, found {}", kind.expected(), found(v, secret));
    match kind {
        Kind::Str | Kind::Secret | Kind::StrOrList | Kind::Instant | Kind::Bound => {
            if let Value::String(..) = v {
                return Ok(v);
            }
            if let (Some(text), Kind::Instant | Kind::Bound) = (toml_datetime(&v), kind) {
                return Ok(Value::from(text.to_string()));
            }
            if kind == Kind::StrOrList && matches!(v, Value::Array(..)) {
                return string_list(v, kind);
            }
            match raw {
                // figment parsed the variable as data (a number, true, a list…); the key takes text.
                Some(text) if toml_datetime(&v).is_none() => Ok(Value::from(text.to_string())),
                _ => Err(wrong(&v)),
            }
        }
        Kind::List => match v {
            Value::Array(..) => string_list(v, kind),
            other => Err(wrong(&other)),
        },
        Kind::Int => match &v {
            Value::Num(_, n) if is_whole(n) => match whole(n) {
                Some(i) if i64::try_from(i).is_ok() => Ok(v),
                _ => Err(format!("expected a whole number, found {}, which is too large", found(&v, false))),
            },
            _ => Err(wrong(&v)),
        },
        Kind::Float => match &v {
            Value::Num(..) => Ok(v),
            _ => Err(wrong(&v)),
        },
        Kind::Bool => match &v {
            Value::Bool(..) => Ok(v),
            _ => Err(wrong(&v)),
        },
        Kind::StrMap => match v {
            Value::Dict(tag, dict) => {
                let mut out = Dict::new();
                for (name, value) in dict {
                    let text = match &value {
                        Value::String(_, s) => s.clone(),
                        Value::Num(_, n) => num_text(n),
                        Value::Bool(_, b) => b.to_string(),
                        other => return Err(format!("expected {}, found {} under `{name}`", kind.expected(), found(other, false))),
                    };
                    out.insert(name, Value::from(text));
                }
                Ok(Value::Dict(tag, out))
            }
            other => Err(wrong(&other)),
        },
    }
}

/// An array whose items are all strings, as is; or what is wrong.
fn string_list(v: Value, kind: Kind) -> Result<Value, String> {
    if let Value::Array(_, items) = &v
        && let Some(bad) = items.iter().find(|i| !matches!(i, Value::String(..)))
    {
        return Err(format!("expected {}, found a list holding {}", kind.expected(), found(bad, false)));
    }
    Ok(v)
}

fn is_whole(n: &Num) -> bool {
    !matches!(n, Num::F32(_) | Num::F64(_))
}

/// A whole number's value, signed or not (`None` past `i128`, or for a float).
fn whole(n: &Num) -> Option<i128> {
    n.to_i128().or_else(|| n.to_u128().and_then(|u| i128::try_from(u).ok()))
}

fn num_text(n: &Num) -> String {
    match n {
        Num::F32(x) => format!("{x:?}"),
        Num::F64(x) => format!("{x:?}"),
        other => whole(other).map(|i| i.to_string()).or_else(|| other.to_u128().map(|u| u.to_string())).unwrap_or_default(),
    }
}

/// The text of a TOML date/time literal, which figment holds as `{ "$__toml_private_datetime" = "…" }`.
pub(crate) fn toml_datetime(v: &Value) -> Option<&str> {
    match v {
        Value::Dict(_, d) if d.len() == 1 => match d.get(TOML_DATETIME_FIELD) {
            Some(Value::String(_, s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The magic key the `toml` crate gives date/time literals (`toml_datetime`'s `FIELD`).
const TOML_DATETIME_FIELD: &str = "$__toml_private_datetime";

/// A value in words: `the string "64"`, `the whole number 64`, `a list`. With `secret`, the
/// value itself is left out.
pub(crate) fn found(v: &Value, secret: bool) -> String {
    if let Some(text) = toml_datetime(v) {
        let what = if text.contains(':') { "the date and time" } else { "the date" };
        return if secret { "a date".into() } else { format!("{what} {text} (a TOML date literal)") };
    }
    match v {
        Value::String(_, s) if secret => if s.is_empty() { "an empty string" } else { "a string" }.into(),
        Value::String(_, s) => format!("the string {:?}", shorten(s)),
        Value::Num(_, n) if secret => if is_whole(n) { "a whole number" } else { "a number" }.into(),
        Value::Num(_, n) if is_whole(n) => format!("the whole number {}", num_text(n)),
        Value::Num(_, n) => format!("the number {}", num_text(n)),
        Value::Bool(_, b) => b.to_string(),
        Value::Char(_, c) => format!("the character {c:?}"),
        Value::Array(_, items) if items.is_empty() => "an empty list".into(),
        Value::Array(..) => "a list".into(),
        Value::Dict(..) => "a table".into(),
        Value::Empty(..) => "nothing".into(),
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX { s.to_string() } else { format!("{}…", s.chars().take(MAX).collect::<String>()) }
}

/// An unknown key in a known section: the path once, and the key suggested, if any.
fn unknown_key(section: &str, name: &str, origin: &Origin<'_>) -> (Problem, Option<String>) {
    let path = format!("{section}.{name}");
    let env = origin.env_var(&path);
    let (message, example, suggested) = if let Some(near) = suggest(name, section_keys(section)) {
        let target = spec(section, near).expect("a key of this section");
        (format!("unknown key; did you mean {}?", did_you_mean(target, origin)), origin.example(target), Some(target.path()))
    } else if let Some(other) = KEYS.iter().find(|s| s.section != section && s.name == name).or_else(|| suggest_spec(name, |s| s.section != section)) {
        let message = format!("unknown key in [{section}]; did you mean {}? It belongs in [{}]", did_you_mean(other, origin), other.section);
        (message, origin.example(other), Some(other.path()))
    } else {
        (format!("unknown key; the keys of [{section}] are {}", section_keys(section).collect::<Vec<_>>().join(", ")), String::new(), None)
    };
    (with_env(Problem::new(path, message, example), env), suggested)
}

/// A key outside every section: a section misspelt, or a key written above its `[section]`.
fn unknown_top_level(name: &str, value: &Value, origin: &Origin<'_>) -> (Problem, Option<String>) {
    let sections = SECTIONS.map(|s| format!("[{s}]")).join(", ");
    if let Some(spec) = KEYS.iter().find(|s| s.name == name).or_else(|| suggest_spec(name, |_| true)) {
        let message = format!("unknown key outside any section; did you mean `{}`? Write it under [{}]", spec.path(), spec.section);
        let example = format!("[{}] then {}", spec.section, spec.example);
        return (with_env(Problem::new(name, message, example), origin.env_var(name)), Some(spec.path()));
    }
    let (message, example) = if let Some(near) = suggest(name, SECTIONS.iter().copied()) {
        (format!("unknown section; did you mean [{near}]?"), String::new())
    } else if matches!(value, Value::Dict(..)) {
        (format!("unknown section; the sections are {sections}"), String::new())
    } else {
        (format!("unknown key outside any section; keys go in the sections {sections}"), String::new())
    };
    (with_env(Problem::new(name, message, example), origin.env_var(name)), None)
}

/// `` `limits.max_in_flight` ``, and for the environment `` `limits.max_in_flight` (`OUTLAKE_LIMITS__MAX_IN_FLIGHT`) ``.
fn did_you_mean(spec: &KeySpec, origin: &Origin<'_>) -> String {
    match origin {
        Origin::File => format!("`{}`", spec.path()),
        Origin::Env(_) => format!("`{}` (`{}`)", spec.path(), env_var_for(&spec.path())),
    }
}

fn suggest_spec(name: &str, filter: impl Fn(&KeySpec) -> bool) -> Option<&'static KeySpec> {
    let candidates: Vec<&'static KeySpec> = KEYS.iter().filter(|s| filter(s)).collect();
    let near = suggest(name, candidates.iter().map(|s| s.name))?;
    candidates.into_iter().find(|s| s.name == near)
}

/// The candidate `name` most likely meant: the same letters up to case, `_` and `-`
/// (`clientid` → `client_id`), else the closest within edit distance 2 (transpositions count
/// as one edit), for names of at least 3 characters. Ties go to the first candidate.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let squash = |s: &str| s.chars().filter(|c| !matches!(c, '_' | '-')).flat_map(char::to_lowercase).collect::<String>();
    let wanted = squash(name);
    let candidates: Vec<&str> = candidates.collect();
    if let Some(same) = candidates.iter().find(|c| squash(c) == wanted) {
        return Some(same);
    }
    if name.chars().count() < 3 {
        return None;
    }
    let lower = name.to_lowercase();
    candidates.into_iter().map(|c| (edit_distance(&lower, c), c)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::raw::RawConfig;

    fn tree(toml: &str) -> Dict {
        Figment::from(Toml::string(toml)).extract::<Dict>().unwrap()
    }

    fn problems(toml: &str) -> Vec<Problem> {
        check_tree(tree(toml), &Origin::File).problems
    }

    /// `KEYS` and the serde structs must name the same keys: serde's unknown-field error lists
    /// a struct's fields, so ask it for each section's.
    #[test]
    fn keys_match_the_raw_structs() {
        for section in SECTIONS {
            let probe = Figment::from(Toml::string(&format!("[{section}]\nzzz_not_a_key = 1\n")));
            let err = probe.extract::<RawConfig>().unwrap_err();
            let figment::error::Kind::UnknownField(_, expected) = &err.kind else { panic!("{err}") };
            let mut serde_keys: Vec<&str> = expected.to_vec();
            let mut ours: Vec<&str> = section_keys(section).collect();
            serde_keys.sort();
            ours.sort();
            assert_eq!(ours, serde_keys, "[{section}]");
        }
        let err = Figment::from(Toml::string("zzz = 1")).extract::<RawConfig>().unwrap_err();
        let figment::error::Kind::UnknownField(_, expected) = &err.kind else { panic!("{err}") };
        assert_eq!(expected.to_vec(), SECTIONS.to_vec());
    }

    #[test]
    fn every_example_is_valid_for_its_key() {
        for spec in KEYS {
            let toml = format!("[{}]\n{}\n", spec.section, spec.example.split(" (").next().unwrap());
            assert_eq!(problems(&toml), vec![], "{toml}");
        }
    }

    #[test]
    fn near_misses_are_suggested() {
        let cases = [
            ("clientid", "client_id"),
            ("Client_ID", "client_id"),
            ("calender_start", "calendar_start"),
            ("page_sise", "page_size"),
            ("tenant-id", "tenant_id"),
            ("mailboxs", "mailboxes"),
            ("reciever_after", "received_after"),
        ];
        for (typo, meant) in cases {
            assert_eq!(suggest(typo, section_keys("source")), Some(meant), "{typo}");
        }
        assert_eq!(suggest("max_inflight", section_keys("limits")), Some("max_in_flight"));
        assert_eq!(suggest("ur", section_keys("sink")), None, "too short to guess");
        assert_eq!(suggest("foo", section_keys("sink")), None);
        assert_eq!(suggest("compression", section_keys("sink")), None);
        assert_eq!(edit_distance("calender", "calendar"), 1);
        assert_eq!(edit_distance("recieved", "received"), 1, "a transposition is one edit");
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn unknown_keys_are_named_once_with_a_suggestion_or_the_known_keys() {
        let p = problems("[sink]\nfoo = 1\nurl = \"file:///x\"\n[limits]\nmax_inflight = 3\n[source]\nmax_in_flight = 4\n");
        let by_key = |k: &str| p.iter().find(|p| p.key == k).unwrap_or_else(|| panic!("{k}: {p:?}"));
        assert_eq!(p.len(), 3, "{p:?}");
        let foo = by_key("sink.foo");
        assert!(foo.message.contains("url, options, row_group_rows, target_file_mb, zstd_level"), "{foo}");
        assert!(!foo.to_string().contains("sink.foo.foo"), "{foo}");
        let near = by_key("limits.max_inflight");
        assert!(near.message.contains("did you mean `limits.max_in_flight`?"), "{near}");
        assert_eq!(near.example, "max_in_flight = 64");
        let elsewhere = by_key("source.max_in_flight");
        assert!(elsewhere.message.contains("`limits.max_in_flight`") && elsewhere.message.contains("belongs in [limits]"), "{elsewhere}");
    }

    #[test]
    fn top_level_mistakes() {
        let p = problems("tenant_id = \"x\"\n[sorce]\na = 1\n[bogus]\nb = 2\n");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].key == "bogus" && p[0].message.contains("the sections are [source], [limits], [sink], [checkpoint]"), "{}", p[0]);
        assert!(p[1].key == "sorce" && p[1].message.contains("did you mean [source]?"), "{}", p[1]);
        assert!(p[2].key == "tenant_id" && p[2].message.contains("`source.tenant_id`"), "{}", p[2]);
        let p = problems("source = 3");
        assert_eq!(p[0].message, "expected a table, found the whole number 3");
    }

    #[test]
    fn wrong_kinds_are_described_in_words() {
        let p = problems(
            "[source]\npage_size = \"1000\"\nstreams = \"messages\"\nfetch_bodies = \"yes\"\ntenant_id = 42\nmailboxes = [\"a\", 3]\nclient_secret = 123456\n\
             [limits]\nmax_in_flight = 6.5\nwindow_secs = \"600\"\n[sink]\noptions = { a = { b = 1 } }\n",
        );
        let msg = |k: &str| p.iter().find(|p| p.key == k).unwrap_or_else(|| panic!("{k}: {p:?}")).to_string();
        assert_eq!(msg("source.page_size"), "source.page_size: expected a whole number, found the string \"1000\"; e.g. page_size = 1000");
        assert_eq!(
            msg("source.streams"),
            "source.streams: expected a list of strings, found the string \"messages\"; e.g. streams = [\"messages\", \"events\", \"mail_folders\"]"
        );
        assert_eq!(msg("source.fetch_bodies"), "source.fetch_bodies: expected true or false, found the string \"yes\"; e.g. fetch_bodies = true");
        assert!(msg("source.tenant_id").contains("expected a string, found the whole number 42"));
        assert!(msg("source.mailboxes").contains("expected a string or a list of strings, found a list holding the whole number 3"));
        let secret = msg("source.client_secret");
        assert!(secret.contains("found a whole number") && !secret.contains("123456"), "the secret is not printed: {secret}");
        assert!(msg("limits.max_in_flight").contains("expected a whole number, found the number 6.5"));
        assert!(msg("limits.window_secs").contains("expected a number, found the string \"600\""));
        assert!(accept(Kind::Int, Value::from(u64::MAX), None).unwrap_err().contains("too large"));
        for small in [Value::from(250u8), Value::from(7u16), Value::from(-3i8), Value::from(i64::MAX)] {
            assert!(accept(Kind::Int, small.clone(), None).is_ok(), "{small:?}");
        }
        assert!(msg("sink.options").contains("found a table under `a`"));
        for p in &p {
            for rust in ["i64", "u32", "f64", "map", "sequence", "bool"] {
                assert!(!p.message.contains(rust), "{p}");
            }
        }
    }

    #[test]
    fn date_literals_become_text_for_the_date_keys_only() {
        let Checked { tree: clean, problems: p, .. } = check_tree(
            tree(
                "[source]\nreceived_after = 2024-01-01\ncalendar_start = 2024-01-01T00:00:00Z\ncalendar_end = 2026-12-31T10:00:00+02:00\ntenant_id = 2024-01-01\n",
            ),
            &Origin::File,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].message, "expected a string, found the date 2024-01-01 (a TOML date literal)");
        let source = clean["source"].as_dict().unwrap();
        assert_eq!(source["received_after"].as_str(), Some("2024-01-01"));
        assert_eq!(source["calendar_start"].as_str(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(source["calendar_end"].as_str(), Some("2026-12-31T10:00:00+02:00"));
    }

    #[test]
    fn sink_options_take_scalars_as_text() {
        let Checked { tree: clean, problems: p, .. } =
            check_tree(tree("[sink]\noptions = { aws_allow_http = true, port = 9000, region = \"x\" }\n"), &Origin::File);
        assert_eq!(p, vec![]);
        let options = clean["sink"].as_dict().unwrap()["options"].as_dict().unwrap();
        assert_eq!(options["aws_allow_http"].as_str(), Some("true"));
        assert_eq!(options["port"].as_str(), Some("9000"));
    }

    #[test]
    fn environment_text_is_kept_for_string_keys_and_named_in_problems() {
        let raw: BTreeMap<String, String> = [("source.client_secret", "0123"), ("limits.max_in_flight", "lots"), ("source.clientid", "x")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut tree = Dict::new();
        let mut source = Dict::new();
        source.insert("client_secret".into(), "0123".parse::<Value>().unwrap());
        source.insert("clientid".into(), Value::from("x"));
        tree.insert("source".into(), Value::from(source));
        let mut limits = Dict::new();
        limits.insert("max_in_flight".into(), Value::from("lots"));
        tree.insert("limits".into(), Value::from(limits));
        let Checked { tree: clean, problems: p, suggested } = check_tree(tree, &Origin::Env(&raw));
        assert_eq!(suggested, vec!["source.client_id"]);
        assert_eq!(clean["source"].as_dict().unwrap()["client_secret"].as_str(), Some("0123"), "the text as written, not the number 123");
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0].to_string(),
            "limits.max_in_flight (OUTLAKE_LIMITS__MAX_IN_FLIGHT): expected a whole number, found the string \"lots\"; e.g. OUTLAKE_LIMITS__MAX_IN_FLIGHT=64"
        );
        assert_eq!(p[1].key, "source.clientid");
        assert_eq!(p[1].env_var.as_deref(), Some("OUTLAKE_SOURCE__CLIENTID"));
        assert!(p[1].message.contains("did you mean `source.client_id` (`OUTLAKE_SOURCE__CLIENT_ID`)?"), "{}", p[1]);
    }
}
