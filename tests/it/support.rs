//! Helpers for end-to-end tests: a simulator, a lake folder, the real binary, and a reader
//! that rebuilds current state from the Parquet output by the documented rule (per key, the
//! row with the largest `_seq`, present when `_op = 'upsert'`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

use arrow::array::RecordBatch;
use outlake_simulator::{SimConfig, Simulator};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

pub type Row = Map<String, Value>;

pub struct Env {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    pub async fn start(cfg: SimConfig, extra_toml: &str) -> Env {
        let sim = Simulator::start(cfg).await.expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("outlake.toml");
        let out = dir.path().join("lake");
        std::fs::create_dir_all(&out).unwrap();
        let toml = format!(
            r#"[source]
{connection}mailboxes = "all"
{page_size}{window}{extra_source}

[sink]
url = "file://{out}"
{extra_rest}
"#,
            connection = sim.source_toml(),
            window =
                if extra_toml.contains("calendar_start") { String::new() } else { format!("calendar_start = \"{CAL_START}\"\ncalendar_end = \"{CAL_END}\"\n") },
            out = out.display(),
            page_size = if extra_toml.contains("page_size") { "" } else { "page_size = 50\n" },
            extra_source = extra_toml.split("#rest").next().unwrap_or(""),
            extra_rest = extra_toml.split("#rest").nth(1).unwrap_or(""),
        );
        std::fs::write(&config, toml).unwrap();
        Env { sim, dir, config }
    }

    pub fn lake(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    /// Run the real binary with this env's config.
    pub fn outlake(&self, args: &[&str]) -> Output {
        self.outlake_with_env(args, &[])
    }

    /// Run the real binary with extra environment variables.
    pub fn outlake_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_outlake"));
        cmd.args(args).arg("--config").arg(&self.config).env("RUST_LOG", "warn").env_remove("OUTLAKE_CONFIG");
        for (k, _) in std::env::vars() {
            if k.starts_with("OUTLAKE_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.output().expect("outlake runs")
    }

    /// `sync` with a JSON report; returns the report.
    pub fn sync_reported(&self, env: &[(&str, &str)]) -> Value {
        let report = self.dir.path().join("report.json");
        let out = self.outlake_with_env(&["sync", "--progress", "never", "--report", report.to_str().unwrap()], env);
        assert_success(&out);
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
    }

    pub fn sync(&self) -> Output {
        self.outlake(&["sync", "--progress", "never"])
    }
}

pub const CAL_START: &str = "2024-01-01T00:00:00Z";
pub const CAL_END: &str = "2028-12-01T00:00:00Z";

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "outlake failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every committed Parquet file of a table (what a `<table>/**/*.parquet` glob sees).
pub fn table_files(lake: &Path, table: &str) -> Vec<PathBuf> {
    files_under(&lake.join(table)).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect()
}

/// Every file below `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `outlake sync --report <name>`: the process output and the report (`Null` when none was
/// written).
pub fn sync_with_report(env: &Env, name: &str) -> (Output, Value) {
    let p = env.dir.path().join(name);
    let out = env.outlake(&["sync", "--progress", "never", "--report", p.to_str().unwrap()]);
    let rep = std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    (out, rep)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// All rows of a table as JSON objects (arrow's JSON writer: timestamps become strings,
/// lists arrays, structs objects; nulls are left out).
pub fn read_rows(lake: &Path, table: &str) -> Vec<Row> {
    let files: Vec<Vec<RecordBatch>> = table_files(lake, table).iter().map(|f| read_batches(f)).collect();
    batches_to_rows(files.into_iter().flatten())
}

pub fn batches_to_rows(batches: impl IntoIterator<Item = RecordBatch>) -> Vec<Row> {
    let mut rows = Vec::new();
    {
        for b in batches {
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            w.write(&b).unwrap();
            w.finish().unwrap();
            let v: Vec<Value> = serde_json::from_slice(&w.into_inner()).unwrap_or_default();
            rows.extend(v.into_iter().filter_map(|r| match r {
                Value::Object(m) => Some(m),
                _ => None,
            }));
        }
    }
    rows
}

pub fn key_of(table: &str, r: &Row) -> String {
    let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    match table {
        "messages" => format!("{}|{}|{}", s("mailbox_id"), s("parent_folder_id"), s("id")),
        "events" => format!("{}|{}|{}", s("mailbox_id"), s("calendar_id"), s("id")),
        _ => format!("{}|{}", s("mailbox_id"), s("id")),
    }
}

/// Current state by the documented rule.
pub fn current_state(lake: &Path, table: &str) -> BTreeMap<String, Row> {
    state_of_rows(table, read_rows(lake, table))
}

pub fn state_of_rows(table: &str, rows: Vec<Row>) -> BTreeMap<String, Row> {
    let mut latest: HashMap<String, Row> = HashMap::new();
    for r in rows {
        let k = key_of(table, &r);
        let seq = r.get("_seq").and_then(|v| v.as_i64()).expect("_seq is an integer");
        let newer = latest.get(&k).map(|o| o["_seq"].as_i64().unwrap() < seq).unwrap_or(true);
        if newer {
            latest.insert(k, r);
        }
    }
    latest.into_iter().filter(|(_, r)| r.get("_op").and_then(|v| v.as_str()) == Some("upsert")).collect()
}

/// No `(key, _seq)` pair appears twice in a table.
pub fn assert_no_duplicate_seq(lake: &Path, table: &str) {
    let mut seen = std::collections::HashSet::new();
    for r in read_rows(lake, table) {
        let k = format!("{}#{}", key_of(table, &r), r["_seq"]);
        assert!(seen.insert(k.clone()), "{table}: (key, _seq) {k} appears twice");
    }
}

/// One sync run inside the test process (for tests that need the pipeline's own objects: a
/// wrapped object store, progress events), with the same settings the e2e config uses.
pub async fn run_in_process(
    sim: &Simulator,
    lake: outlake_pipeline::lake::DynLake,
    folders: outlake_pipeline::scope::FolderScope,
    progress: outlake_pipeline::progress::Progress,
) -> outlake_pipeline::runner::RunReport {
    run_in_process_as(sim, lake, folders, progress, |s| s, 50).await
}

/// [`run_in_process`] with the Graph source wrapped (to inject faults around it).
pub async fn run_in_process_with(
    sim: &Simulator,
    lake: outlake_pipeline::lake::DynLake,
    wrap: impl FnOnce(outlake_pipeline::source::DynSource) -> outlake_pipeline::source::DynSource,
) -> outlake_pipeline::runner::RunReport {
    run_in_process_as(sim, lake, Default::default(), outlake_pipeline::progress::Progress::none(), wrap, 50).await
}

/// [`run_in_process_with`], committing every `commit_every_pages` pages.
pub async fn run_in_process_committing(
    sim: &Simulator,
    lake: outlake_pipeline::lake::DynLake,
    wrap: impl FnOnce(outlake_pipeline::source::DynSource) -> outlake_pipeline::source::DynSource,
    commit_every_pages: u32,
) -> outlake_pipeline::runner::RunReport {
    run_in_process_as(sim, lake, Default::default(), outlake_pipeline::progress::Progress::none(), wrap, commit_every_pages).await
}

async fn run_in_process_as(
    sim: &Simulator,
    lake: outlake_pipeline::lake::DynLake,
    folders: outlake_pipeline::scope::FolderScope,
    progress: outlake_pipeline::progress::Progress,
    wrap: impl FnOnce(outlake_pipeline::source::DynSource) -> outlake_pipeline::source::DynSource,
    commit_every_pages: u32,
) -> outlake_pipeline::runner::RunReport {
    use outlake_connectors::{GraphOptions, GraphSource, MailboxSelection};
    use outlake_pipeline::runner::{Cancel, RunSettings, Runner};
    use std::sync::Arc;
    let url = url::Url::parse(&sim.url()).unwrap();
    let mut o = GraphOptions::new(sim.tenant_id(), sim.client_id(), Some(outlake_config::Secret::new(sim.client_secret())));
    o.authority_url = url.clone();
    o.graph_url = url;
    o.mailboxes = MailboxSelection::All;
    o.page_size = 50;
    o.calendar_start = super::truth::parse_ts(CAL_START).unwrap();
    o.calendar_end = super::truth::parse_ts(CAL_END).unwrap();
    let calendar_window = outlake_pipeline::model::CalendarWindow { start: o.calendar_start, end: o.calendar_end };
    let source: outlake_pipeline::source::DynSource = wrap(Arc::new(GraphSource::new(o).unwrap()));
    let floor = Runner::seq_floor(&lake).await.unwrap();
    let settings = RunSettings {
        run_id: format!("in-process-{floor}"),
        streams: outlake_pipeline::model::Stream::ALL.to_vec(),
        commit_every_pages,
        commit_every: std::time::Duration::from_secs(60),
        max_parallel_mailboxes: 4,
        max_concurrent_per_mailbox: 4,
        folders,
        messages: Default::default(),
        calendars: Default::default(),
        calendar_window: Some(calendar_window),
        exclude_mailboxes: vec![],
        page_budget_bytes: 64 << 20,
        first_page_bytes: 1 << 20,
        shard: Default::default(),
        lease_ttl: Some(std::time::Duration::from_secs(60)),
    };
    let runner = Arc::new(Runner::new(source, lake, settings, progress, Arc::new(outlake_pipeline::seq::SeqGen::new(floor)), Cancel::default()));
    runner.run().await
}
