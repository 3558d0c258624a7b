//! From a validated `Config` to running parts: the Graph source, the lake, the runner.

use std::sync::Arc;

use anyhow::Context;
use outlake_config::validated::{CheckpointConfig, SinkConfig};
use outlake_config::{AuthKind, CalendarSelection, Config, Mailboxes};
use outlake_connectors::{AuthMode, GraphOptions, GraphSource, MailboxSelection};
use outlake_pipeline::lake::DynLake;
use outlake_pipeline::model::{CalendarWindow, Stream};
use outlake_pipeline::progress::Progress;
use outlake_pipeline::runner::{Cancel, RunReport, RunSettings, Runner};
use outlake_pipeline::scope::{CalendarFilter, FolderScope, MessageScope};
use outlake_pipeline::seq::SeqGen;
use outlake_pipeline::source::DynSource;
use outlake_sinks::{ObjectLake, WriterSettings};

/// The instant a run computes its calendar window from: now, or `OUTLAKE_NOW` (an RFC 3339
/// instant) when set — to see which window a rolling configuration gives on another day.
pub fn run_now() -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    match std::env::var("OUTLAKE_NOW") {
        Ok(v) => chrono::DateTime::parse_from_rfc3339(v.trim())
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| anyhow::anyhow!("OUTLAKE_NOW={v:?} is not an RFC 3339 instant ({e}); e.g. OUTLAKE_NOW=2027-01-15T00:00:00Z, or unset it")),
        Err(_) => Ok(chrono::Utc::now()),
    }
}

/// The calendarView window in force for a run that starts at `now`.
pub fn calendar_window(cfg: &Config, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<CalendarWindow> {
    let (start, end) = cfg.source.calendar_window.resolve(now).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(CalendarWindow { start, end })
}

/// Which calendars get an events partition.
pub fn calendar_filter(cfg: &Config) -> CalendarFilter {
    match &cfg.source.calendars {
        CalendarSelection::Owned => CalendarFilter::Owned,
        CalendarSelection::All => CalendarFilter::All,
        CalendarSelection::Named(patterns) => CalendarFilter::Named(patterns.clone()),
    }
}

/// Graph options for a run whose calendar window is `window`.
pub fn graph_options(cfg: &Config, window: CalendarWindow) -> anyhow::Result<GraphOptions> {
    let s = &cfg.source;
    let l = &cfg.limits;
    let auth = match s.auth {
        AuthKind::ClientCredentials => AuthMode::ClientCredentials,
        AuthKind::AuthorizationCode | AuthKind::DeviceCode => {
            AuthMode::Delegated { tokens: Arc::new(crate::auth::tokens::open(cfg).map_err(|e| anyhow::anyhow!(e))?) }
        }
    };
    Ok(GraphOptions {
        tenant_id: s.tenant_id.clone(),
        client_id: s.client_id.clone(),
        client_secret: s.client_secret.clone(),
        authority_url: s.authority_url.clone(),
        graph_url: s.graph_url.clone(),
        auth,
        mailboxes: match &s.mailboxes {
            Mailboxes::All => MailboxSelection::All,
            Mailboxes::Me => MailboxSelection::Me,
            Mailboxes::List(l) => MailboxSelection::List(l.clone()),
        },
        page_size: s.page_size,
        fetch_bodies: s.fetch_bodies,
        calendar_start: window.start,
        calendar_end: window.end,
        requests_per_window: l.requests_per_window,
        window: l.window,
        max_concurrent_per_mailbox: l.max_concurrent_per_mailbox,
        max_in_flight_total: l.max_in_flight,
        max_requests_per_sec: l.max_requests_per_sec,
        retry_max_attempts: l.retry_max_attempts,
        retry_max_wait: l.retry_max_wait,
        retry_max_total: l.retry_max_total,
        max_page_bytes: l.max_page_bytes,
        request_timeout: l.request_timeout,
        run_id: None,
    })
}

pub async fn open_lake(cfg: &Config) -> anyhow::Result<DynLake> {
    Ok(Arc::new(open_storage(&cfg.sink, &cfg.checkpoint).await?))
}

/// The lake of `[sink]` and `[checkpoint]` alone (what `status`, `reset` and `vacuum` use: they
/// need no source settings).
pub async fn open_storage(sink: &SinkConfig, checkpoint: &CheckpointConfig) -> anyhow::Result<ObjectLake> {
    let settings = WriterSettings { row_group_rows: sink.row_group_rows, target_file_bytes: sink.target_file_bytes, zstd_level: sink.zstd_level };
    outlake_sinks::open_lake(&sink.url, checkpoint.url.as_deref(), &sink.options, settings).await.with_context(|| format!("opening the lake at {}", sink.url))
}

pub fn streams(cfg: &Config) -> Vec<Stream> {
    cfg.source.streams.iter().filter_map(|s| Stream::parse(s)).collect()
}

/// Run one sync with the given progress sink and cancel flag.
pub async fn sync_once(cfg: &Config, shard: outlake_config::Shard, progress: Progress, cancel: Cancel) -> anyhow::Result<RunReport> {
    let lake = open_lake(cfg).await?;
    let window = calendar_window(cfg, run_now()?)?;
    // The run id is in this line, in every Graph request's User-Agent, in the summary, the report
    // and every row written: a request in Graph's (or the simulator's) log leads to its worker.
    let run_id = uuid_like();
    tracing::info!(run_id = %run_id, version = env!("CARGO_PKG_VERSION"), "run started");
    let mut options = graph_options(cfg, window)?;
    options.run_id = Some(run_id.clone());
    let graph = Arc::new(GraphSource::new(options).context("setting up the Graph client")?);
    let limiter = graph.limiter().clone();
    let source: DynSource = graph;
    let floor = Runner::seq_floor(&lake).await.context("reading checkpoints")?;
    let settings = RunSettings {
        run_id,
        streams: streams(cfg),
        commit_every_pages: cfg.checkpoint.commit_every_pages,
        commit_every: cfg.checkpoint.commit_every,
        max_parallel_mailboxes: cfg.limits.max_parallel_mailboxes as usize,
        max_concurrent_per_mailbox: cfg.limits.max_concurrent_per_mailbox as usize,
        folders: FolderScope { include: cfg.source.include_folders.clone(), exclude: cfg.source.exclude_folders.clone() },
        messages: MessageScope { received_after: cfg.source.received_after },
        calendars: calendar_filter(cfg),
        calendar_window: Some(window),
        exclude_mailboxes: cfg.source.exclude_mailboxes.clone(),
        page_budget_bytes: cfg.limits.max_buffered_bytes,
        // A message with the stored fields is about 2 KB on the wire and as much in Arrow.
        first_page_bytes: cfg.source.page_size as u64 * 4096 * if cfg.source.fetch_bodies { 8 } else { 1 },
        shard,
        lease_ttl: Some(cfg.checkpoint.lease_ttl),
    };
    // The bars and the log show the requests in flight.
    let (stop_watch, watch_stopped) = tokio::sync::oneshot::channel();
    let watch = tokio::spawn(crate::progress::watch_requests(progress.clone(), limiter, watch_stopped));
    let runner = Arc::new(Runner::new(source, lake, settings, progress, Arc::new(SeqGen::new(floor)), cancel));
    let report = runner.run().await;
    drop(stop_watch);
    if let Err(e) = watch.await {
        tracing::warn!(error = %e, "the requests-in-flight watcher failed; the run is not affected");
    }
    Ok(report)
}

/// A run id: UTC time plus random suffix, sortable and readable in file listings.
pub fn uuid_like() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let r: u32 = rand_u32();
    format!("{now}-{r:08x}")
}

fn rand_u32() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish() as u32
}
