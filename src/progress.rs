//! Progress on stderr, drawn from the pipeline's progress events.
//!
//! Three displays, chosen once per run ([`Display::choose`]):
//!
//! * **bars** (stderr is a terminal, `--progress auto|always`): a total bar — items done of
//!   expected, rate, ETA, mailboxes done of total, requests in flight, time spent throttled — and
//!   one bar per active mailbox (as many as fit the terminal's height). Log lines are printed above the bars through
//!   `logging` (never over them), and the bars are cleared when the run ends, so what stays on
//!   the screen is the log and the summary.
//! * **lines** (`--progress always` when stderr is not a terminal, e.g. a file): one plain line
//!   every [`LINE_EVERY`] and one at the end, e.g.
//!   `progress: 2/3 mailboxes, 1,234/4,000 items, 310/s, ETA 9s, 61/64 requests in flight,
//!   throttled 0s` — or the same as a JSON object with `--log-format json`. No escape codes.
//! * **none** (`--progress never`, or `auto` when stderr is not a terminal).
//!
//! The numbers come from [`Tally`], a pure fold of the events (tested without a terminal):
//!
//! * items = per mailbox, the larger of the rows staged (`Page`) and the rows committed
//!   (`Committed`: this also counts rows written without a page — the delete rows of a folder
//!   that is gone, the calendars listing); once the run is over, the summary's "rows written";
//! * expected = per mailbox, the larger of what its folders said they hold (`MailboxExpected`,
//!   known on a baseline only) and what it has staged; a finished mailbox counts what it staged.
//!   So the total reaches N/N when the run ends. When no mailbox announced a count (an
//!   incremental run), there is no expected total, no fill and no ETA: a spinner and a count;
//! * rate = items per second since the first page (an average: over a long backfill it is the
//!   best guess of the rest), rounded (`1,310/s`); ETA = (expected − items) / rate. Without an
//!   expected total (an incremental sweep) the ETA comes from the mailboxes: (total − done) ×
//!   the time per mailbox done so far since the run started — a sweep of many small mailboxes
//!   is paced by the requests in flight, so its mailboxes finish at a steady rate. The expected
//!   end is printed as a time of day too (`ETA 9m 12s (~14:32)`);
//! * in flight = the latest `Requests` event: requests to Graph in flight now, of
//!   `limits.max_in_flight` ([`watch_requests`] sends one a second);
//! * throttled = the sum of `Throttled` events' waits (limiter and Retry-After).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use outlake_pipeline::limiter::Limiter;
use outlake_pipeline::progress::{Progress, ProgressEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cli::ProgressMode;
use crate::logging;

/// How often the plain display prints a line (and once more at the end).
pub const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the bars' rate, ETA and spinner are recomputed when no event arrives.
const BAR_REFRESH: Duration = Duration::from_millis(250);
/// How often [`watch_requests`] reports the requests in flight.
pub const REQUESTS_EVERY: Duration = Duration::from_secs(1);

pub struct Renderer {
    task: Option<JoinHandle<()>>,
}

impl Renderer {
    /// Wait for the display to draw the end of the run and clear its bars. Returns once every
    /// `Progress` handed out by `start` has been dropped.
    pub async fn finish(self) {
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bars,
    Lines,
    None,
}

impl Display {
    /// `drawable`: stderr is a terminal indicatif draws on (not `TERM=dumb`).
    pub fn choose(mode: ProgressMode, terminal: bool, drawable: bool) -> Display {
        match mode {
            ProgressMode::Never => Display::None,
            _ if terminal && drawable => Display::Bars,
            ProgressMode::Always => Display::Lines,
            // A terminal that cannot draw bars still gets lines: someone is watching.
            ProgressMode::Auto if terminal => Display::Lines,
            ProgressMode::Auto => Display::None,
        }
    }
}

/// A progress sink for the pipeline, and the renderer that draws it (if enabled). The
/// renderer ends when every sender is dropped.
pub fn start(mode: ProgressMode) -> (Progress, Renderer) {
    let terminal = std::io::stderr().is_terminal();
    let drawable = terminal && !ProgressDrawTarget::stderr().is_hidden();
    let display = Display::choose(mode, terminal, drawable);
    if display == Display::None {
        return (Progress::none(), Renderer { task: None });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let task = match display {
        Display::Bars => tokio::spawn(bars(rx)),
        _ => tokio::spawn(lines(rx, LINE_EVERY)),
    };
    (Progress::new(tx), Renderer { task: Some(task) })
}

/// One mailbox's share of the tally.
#[derive(Debug, Clone, Default, PartialEq)]
struct MailboxTally {
    /// Rows of its `Page` events.
    staged: u64,
    /// Rows of its `Committed` events: also the rows written without a page (delete rows of a
    /// folder that is gone, the calendars listing), so at the end this is what it wrote.
    committed: u64,
    /// What its folders said they hold; `None` until `MailboxExpected`.
    expected: Option<u64>,
    finished: bool,
    first_page: Option<Duration>,
}

impl MailboxTally {
    fn items(&self) -> u64 {
        self.staged.max(self.committed)
    }

    fn len(&self) -> Option<u64> {
        match (self.finished, self.expected) {
            (true, _) => Some(self.items()),
            (false, Some(e)) => Some(e.max(self.items())),
            (false, None) => None,
        }
    }
}

/// The run's progress so far: a pure fold of the events, with the time of each (since the
/// renderer started) passed in. Totals are kept as running sums (a tenant may have thousands
/// of mailboxes; each event touches one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// From `RunStarted`: mailboxes the run syncs (skipped users are not among them).
    pub mailboxes: Option<u64>,
    pub finished: u64,
    pub failed: u64,
    pub throttled_ms: u64,
    /// From the latest `Requests` event: (in flight, limit).
    pub in_flight: Option<(u64, u64)>,
    /// When `RunStarted` came (the mailboxes' ETA counts from there).
    run_started: Option<Duration>,
    /// Σ items over mailboxes.
    items: u64,
    /// Σ len (or items when no count is known) over mailboxes, and whether any count is known.
    expected: u64,
    any_expected: bool,
    first_page: Option<Duration>,
    per_mailbox: HashMap<String, MailboxTally>,
}

impl Tally {
    pub fn apply(&mut self, ev: &ProgressEvent, at: Duration) {
        match ev {
            ProgressEvent::RunStarted { mailboxes } => {
                self.mailboxes = Some(*mailboxes as u64);
                self.run_started = Some(at);
            }
            ProgressEvent::Requests { in_flight, limit, .. } => self.in_flight = Some((*in_flight, *limit)),
            ProgressEvent::MailboxStarted { mailbox_id, .. } => self.update(mailbox_id, |_| {}),
            ProgressEvent::MailboxExpected { mailbox_id, items } => {
                self.any_expected = true;
                self.update(mailbox_id, |m| m.expected = Some(m.expected.unwrap_or(0) + items));
            }
            ProgressEvent::Page { mailbox_id, rows, .. } => {
                self.first_page.get_or_insert(at);
                self.update(mailbox_id, |m| {
                    m.staged += rows;
                    m.first_page.get_or_insert(at);
                });
            }
            ProgressEvent::Committed { mailbox_id, rows, .. } => self.update(mailbox_id, |m| m.committed += rows),
            ProgressEvent::Throttled { waited_ms, .. } => self.throttled_ms += waited_ms,
            ProgressEvent::MailboxFinished { mailbox_id, ok } => {
                self.finished += 1;
                if !ok {
                    self.failed += 1;
                }
                self.update(mailbox_id, |m| m.finished = true);
            }
            ProgressEvent::MailboxLeftAlone { .. } => self.mailboxes = self.mailboxes.map(|n| n.saturating_sub(1)),
            ProgressEvent::MailboxSkipped { .. } | ProgressEvent::Rebaselined { .. } => {}
        }
    }

    /// Change one mailbox and keep the running sums.
    fn update(&mut self, id: &str, f: impl FnOnce(&mut MailboxTally)) {
        let m = self.per_mailbox.entry(id.to_string()).or_default();
        let (items, len) = (m.items(), m.len().unwrap_or(m.items()));
        f(m);
        self.items = self.items - items + m.items();
        self.expected = self.expected - len + m.len().unwrap_or(m.items());
    }

    /// Rows staged or committed so far (the summary's "rows written", once the run is over).
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Items the run is expected to write: `None` while no mailbox has announced a count.
    pub fn expected(&self) -> Option<u64> {
        self.any_expected.then_some(self.expected.max(self.items))
    }

    /// Items per second since the first page.
    pub fn rate(&self, now: Duration) -> Option<f64> {
        rate(self.items(), self.first_page, now)
    }

    /// From the items when a total is expected, else from the mailboxes done so far.
    pub fn eta(&self, now: Duration) -> Option<Duration> {
        eta(self.items(), self.expected(), self.rate(now)).or_else(|| self.mailboxes_eta(now))
    }

    /// (total − done) × the time per mailbox done so far, once one is done and some are left.
    fn mailboxes_eta(&self, now: Duration) -> Option<Duration> {
        let total = self.mailboxes?;
        let left = total.checked_sub(self.finished).filter(|&l| l > 0)?;
        let done = Some(self.finished).filter(|&d| d > 0)?;
        let spent = now.checked_sub(self.run_started?)?;
        Some(Duration::from_secs_f64((spent.as_secs_f64() * left as f64 / done as f64).min(365.0 * 86400.0)))
    }

    fn in_flight_text(&self) -> Option<String> {
        self.in_flight.map(|(n, limit)| format!("{}/{} requests in flight", count_text(n), count_text(limit)))
    }

    fn mailbox(&self, id: &str) -> Option<&MailboxTally> {
        self.per_mailbox.get(id)
    }

    fn mailboxes_text(&self) -> String {
        match self.mailboxes {
            Some(n) => format!("{}/{} mailboxes", self.finished, n),
            None => format!("{}/? mailboxes", self.finished),
        }
    }

    fn failed_text(&self) -> String {
        if self.failed > 0 { format!(" ({} failed)", self.failed) } else { String::new() }
    }

    /// The total bar's text: `12,345/16,000 items · 1,310/s · ETA 3s · 2/3 mailboxes · 61/64
    /// requests in flight · throttled 0s`. `clock`: the time of day now, for the expected end.
    pub fn bar_text(&self, now: Duration, clock: Option<chrono::NaiveTime>) -> String {
        let mut parts = vec![items_text(self.items(), self.expected())];
        parts.push(rate_text(self.rate(now)));
        if let Some(e) = self.eta(now) {
            parts.push(eta_text(e, clock));
        }
        parts.push(format!("{}{}", self.mailboxes_text(), self.failed_text()));
        parts.extend(self.in_flight_text());
        parts.push(format!("throttled {}", duration_text(Duration::from_millis(self.throttled_ms))));
        parts.join(" · ")
    }

    /// The plain display's line: `progress: 2/3 mailboxes, 1,234/4,000 items, 310/s, ETA 9s,
    /// 61/64 requests in flight, throttled 0s`.
    pub fn line_text(&self, now: Duration, clock: Option<chrono::NaiveTime>) -> String {
        let mut parts = vec![format!("{}{}", self.mailboxes_text(), self.failed_text()), items_text(self.items(), self.expected()), rate_text(self.rate(now))];
        if let Some(e) = self.eta(now) {
            parts.push(eta_text(e, clock));
        }
        parts.extend(self.in_flight_text());
        parts.push(format!("throttled {}", duration_text(Duration::from_millis(self.throttled_ms))));
        format!("progress: {}", parts.join(", "))
    }

    /// The same as `line_text`, as JSON fields (numbers, `null` when unknown).
    pub fn line_fields(&self, now: Duration) -> serde_json::Map<String, serde_json::Value> {
        let mut f = serde_json::Map::new();
        f.insert("mailboxes_done".into(), self.finished.into());
        f.insert("mailboxes_total".into(), self.mailboxes.into());
        f.insert("mailboxes_failed".into(), self.failed.into());
        f.insert("items".into(), self.items().into());
        f.insert("items_expected".into(), self.expected().into());
        f.insert("items_per_sec".into(), self.rate(now).map(|r| r.round() as u64).into());
        f.insert("eta_secs".into(), self.eta(now).map(|e| e.as_secs()).into());
        f.insert("requests_in_flight".into(), self.in_flight.map(|(n, _)| n).into());
        f.insert("max_in_flight".into(), self.in_flight.map(|(_, l)| l).into());
        f.insert("throttled_ms".into(), self.throttled_ms.into());
        f
    }
}

fn rate(items: u64, first_page: Option<Duration>, now: Duration) -> Option<f64> {
    let secs = now.checked_sub(first_page?)?.as_secs_f64();
    // Under a tenth of a second the average says nothing yet.
    (secs >= 0.1).then(|| items as f64 / secs)
}

fn eta(items: u64, expected: Option<u64>, rate: Option<f64>) -> Option<Duration> {
    let left = expected?.checked_sub(items).filter(|&l| l > 0)?;
    let rate = rate.filter(|&r| r > 0.0)?;
    Some(Duration::from_secs_f64((left as f64 / rate).min(365.0 * 86400.0)))
}

/// `1234567` → `1,234,567`.
pub fn count_text(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn items_text(items: u64, expected: Option<u64>) -> String {
    match expected {
        Some(e) => format!("{}/{} items", count_text(items), count_text(e)),
        None => format!("{} items", count_text(items)),
    }
}

/// Whole items per second with thousands separators (`1,310/s`); one decimal under 10/s;
/// `-/s` before there is a rate.
pub fn rate_text(rate: Option<f64>) -> String {
    match rate {
        None => "-/s".into(),
        Some(r) if r < 9.95 => format!("{r:.1}/s"),
        Some(r) => format!("{}/s", count_text(r.round() as u64)),
    }
}

/// `ETA 9s`; from a minute on, with the time of day it ends at: `ETA 9m 12s (~14:32)`.
fn eta_text(eta: Duration, clock: Option<chrono::NaiveTime>) -> String {
    match clock {
        Some(now) if eta >= Duration::from_secs(60) => {
            let end = now + chrono::Duration::from_std(eta).unwrap_or(chrono::Duration::zero());
            format!("ETA {} (~{})", duration_text(eta), end.format("%H:%M"))
        }
        _ => format!("ETA {}", duration_text(eta)),
    }
}

/// The time of day now, in the local zone (the expected end of a long sweep).
fn clock() -> Option<chrono::NaiveTime> {
    Some(chrono::Local::now().time())
}

/// Until `stop` fires (or is dropped): every [`REQUESTS_EVERY`], a `Requests` event with the
/// limiter's requests in flight, and one more at the end.
pub async fn watch_requests(progress: Progress, limiter: std::sync::Arc<Limiter>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let emit = || {
        progress.emit(ProgressEvent::Requests {
            in_flight: u64::from(limiter.in_flight()),
            limit: u64::from(limiter.config().max_in_flight_total.max(1)),
            admitted: limiter.admitted(),
        })
    };
    let mut tick = tokio::time::interval(REQUESTS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => emit(),
        }
    }
    emit();
}

/// `0s`, `42s`, `3m 04s`, `2h 05m`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// The plain display: a line every `every`, and one when the run ends.
async fn lines(mut rx: mpsc::UnboundedReceiver<ProgressEvent>, every: Duration) {
    let t0 = Instant::now();
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval_at(t0 + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let print = |tally: &Tally| logging::emit("INFO", "progress", &tally.line_text(t0.elapsed(), clock()), tally.line_fields(t0.elapsed()));
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => tally.apply(&ev, t0.elapsed()),
                None => break,
            },
            _ = tick.tick() => print(&tally),
        }
    }
    print(&tally);
}

/// The bars. Registered with `logging` while drawn, so log lines go above them.
async fn bars(mut rx: mpsc::UnboundedReceiver<ProgressEvent>) {
    let t0 = Instant::now();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    logging::attach_bars(&multi);
    let styles = Styles::new();
    let total = multi.add(ProgressBar::no_length().with_style(styles.total_spinner.clone()).with_prefix("outlake"));
    let mut tally = Tally::default();
    let mut shown: HashMap<String, ProgressBar> = HashMap::new();
    let cap = mailbox_bars_that_fit();
    let mut refresh = tokio::time::interval(BAR_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let now = t0.elapsed();
                tally.apply(&ev, now);
                match &ev {
                    ProgressEvent::MailboxStarted { mailbox_id, label } if shown.len() < cap => {
                        let bar = multi.add(ProgressBar::no_length().with_style(styles.mailbox_spinner.clone()).with_prefix(truncate(label, 30)));
                        shown.insert(mailbox_id.clone(), bar);
                    }
                    ProgressEvent::MailboxExpected { mailbox_id, .. } | ProgressEvent::Page { mailbox_id, .. } => {
                        if let (Some(bar), Some(m)) = (shown.get(mailbox_id), tally.mailbox(mailbox_id)) {
                            draw_mailbox(bar, m, now, &styles);
                        }
                    }
                    ProgressEvent::MailboxFinished { mailbox_id, .. } => {
                        if let Some(bar) = shown.remove(mailbox_id) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                    }
                    _ => {}
                }
                draw_total(&total, &tally, now, &styles);
                if matches!(ev, ProgressEvent::MailboxFinished { .. }) {
                    // Rare, and the step a person watches for: draw it now, not at the next
                    // rate-limited frame (which, for the last mailbox, never comes).
                    total.force_draw();
                }
            }
            _ = refresh.tick() => {
                let now = t0.elapsed();
                for (id, bar) in &shown {
                    if let Some(m) = tally.mailbox(id) {
                        draw_mailbox(bar, m, now, &styles);
                    }
                }
                draw_total(&total, &tally, now, &styles);
            }
        }
    }
    for (_, bar) in shown.drain() {
        bar.finish_and_clear();
        multi.remove(&bar);
    }
    total.finish_and_clear();
    let _ = multi.clear();
    logging::detach_bars();
}

struct Styles {
    total_bar: ProgressStyle,
    total_spinner: ProgressStyle,
    mailbox_bar: ProgressStyle,
    mailbox_spinner: ProgressStyle,
}

impl Styles {
    fn new() -> Styles {
        let style = |t: &str| ProgressStyle::with_template(t).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
        Styles {
            total_bar: style("{prefix:>30.bold} [{bar:30}] {msg}"),
            total_spinner: style("{prefix:>30.bold} {spinner} {msg}"),
            mailbox_bar: style("{prefix:>30.dim} [{bar:30.cyan/blue}] {msg}"),
            mailbox_spinner: style("{prefix:>30.dim} {spinner:.cyan} {msg}"),
        }
    }
}

/// Position, length (and so the style: a bar when a length is known, else a spinner) and text.
fn set_bar(bar: &ProgressBar, items: u64, len: Option<u64>, text: String, with_bar: &ProgressStyle, spinner: &ProgressStyle) {
    match (len, bar.length()) {
        (Some(l), None) => {
            bar.set_style(with_bar.clone());
            bar.set_length(l);
        }
        (Some(l), Some(old)) if l != old => bar.set_length(l),
        _ => {}
    }
    if len.is_none() && bar.length().is_none() {
        bar.set_style(spinner.clone());
        bar.tick();
    }
    bar.set_position(items);
    bar.set_message(text);
}

fn draw_total(bar: &ProgressBar, tally: &Tally, now: Duration, styles: &Styles) {
    set_bar(bar, tally.items(), tally.expected(), tally.bar_text(now, clock()), &styles.total_bar, &styles.total_spinner);
}

fn draw_mailbox(bar: &ProgressBar, m: &MailboxTally, now: Duration, styles: &Styles) {
    let r = rate(m.items(), m.first_page, now);
    let mut text = format!("{} · {}", items_text(m.items(), m.len()), rate_text(r));
    if let Some(e) = eta(m.items(), m.len(), r) {
        text.push_str(&format!(" · ETA {}", duration_text(e)));
    }
    set_bar(bar, m.items(), m.len(), text, &styles.mailbox_bar, &styles.mailbox_spinner);
}

/// Mailbox bars that fit below the log on this terminal: a bar line may wrap once on a narrow
/// terminal, and bars taller than the screen cannot be redrawn in place (indicatif moves the
/// cursor up over what it drew, and cannot move above the top line), so at most half the rows
/// less a few, and at most 16. Mailboxes beyond that are counted on the total bar only.
fn mailbox_bars_that_fit() -> usize {
    let rows = terminal_rows().unwrap_or(24) as usize;
    (rows.saturating_sub(8) / 2).clamp(1, 16)
}

#[cfg(unix)]
fn terminal_rows() -> Option<u16> {
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some(ws.ws_row)
}

#[cfg(not(unix))]
fn terminal_rows() -> Option<u16> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn page(id: &str, rows: u64) -> ProgressEvent {
        ProgressEvent::Page { mailbox_id: id.into(), stream: outlake_pipeline::model::Stream::Messages, rows, upserts: rows }
    }

    #[test]
    fn numbers_are_rounded_and_grouped() {
        assert_eq!(rate_text(Some(1309.6621)), "1,310/s");
        assert_eq!(rate_text(Some(4.26)), "4.3/s");
        assert_eq!(rate_text(Some(9.96)), "10/s");
        assert_eq!(rate_text(None), "-/s");
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(1000), "1,000");
        assert_eq!(count_text(1234567), "1,234,567");
        assert_eq!(duration_text(secs(0.4)), "0s");
        assert_eq!(duration_text(secs(184.0)), "3m 04s");
        assert_eq!(duration_text(secs(7500.0)), "2h 05m");
    }

    /// The user report: the total stopped at 2/3 and the rate printed as `1,309.6621/s`. The
    /// tally of a whole run ends at N/N mailboxes and items done = expected, even when folders
    /// announced more items than they served (totalItemCount counts what delta skips).
    #[test]
    fn a_whole_run_ends_at_n_of_n() {
        let mut t = Tally::default();
        t.apply(&ProgressEvent::RunStarted { mailboxes: 3 }, secs(0.0));
        t.apply(&ProgressEvent::MailboxSkipped { mailbox: "nomail".into(), reason: "no mailbox".into() }, secs(0.0));
        for id in ["a", "b", "c"] {
            t.apply(&ProgressEvent::MailboxStarted { mailbox_id: id.into(), label: id.into() }, secs(0.0));
            t.apply(&ProgressEvent::MailboxExpected { mailbox_id: id.into(), items: 1000 }, secs(0.0));
        }
        assert_eq!(t.expected(), Some(3000));
        t.apply(&page("a", 600), secs(1.0));
        t.apply(&page("b", 400), secs(2.0));
        // 1000 items in the 1 s since the first page.
        assert_eq!(t.bar_text(secs(2.0), None), "1,000/3,000 items · 1,000/s · ETA 2s · 0/3 mailboxes · throttled 0s");
        t.apply(&page("a", 390), secs(2.0));
        t.apply(&ProgressEvent::MailboxFinished { mailbox_id: "a".into(), ok: true }, secs(2.0));
        // a served 990 of its announced 1000: the expectation follows what it did.
        assert_eq!(t.expected(), Some(2990));
        t.apply(&page("b", 700), secs(3.0));
        t.apply(&ProgressEvent::Throttled { mailbox_id: "c".into(), waited_ms: 61_000 }, secs(3.0));
        t.apply(&ProgressEvent::MailboxFinished { mailbox_id: "b".into(), ok: true }, secs(3.0));
        t.apply(&page("c", 10), secs(4.0));
        t.apply(&ProgressEvent::MailboxFinished { mailbox_id: "c".into(), ok: false }, secs(4.0));
        assert_eq!(t.items(), 2100);
        assert_eq!(t.expected(), Some(2100));
        assert_eq!(t.eta(secs(4.0)), None);
        assert_eq!(t.line_text(secs(4.0), None), "progress: 3/3 mailboxes (1 failed), 2,100/2,100 items, 700/s, throttled 1m 01s");
        let f = t.line_fields(secs(4.0));
        assert_eq!(f["mailboxes_done"], 3);
        assert_eq!(f["items_expected"], 2100);
        assert_eq!(f["items_per_sec"], 700);
        assert_eq!(f["throttled_ms"], 61_000);
        assert!(f["eta_secs"].is_null());
    }

    /// Rows written without a page (a folder that is gone: its delete rows) count once they are
    /// committed; rows of pages are not counted twice when their commit comes.
    #[test]
    fn committed_rows_count_once() {
        let mut t = Tally::default();
        t.apply(&ProgressEvent::MailboxStarted { mailbox_id: "a".into(), label: "a".into() }, secs(0.0));
        t.apply(&page("a", 50), secs(0.0));
        t.apply(&ProgressEvent::Committed { mailbox_id: "a".into(), stream: outlake_pipeline::model::Stream::Messages, rows: 50 }, secs(0.1));
        assert_eq!(t.items(), 50);
        t.apply(&ProgressEvent::Committed { mailbox_id: "a".into(), stream: outlake_pipeline::model::Stream::Messages, rows: 117 }, secs(0.2));
        assert_eq!(t.items(), 167);
        t.apply(&ProgressEvent::MailboxFinished { mailbox_id: "a".into(), ok: true }, secs(0.3));
        assert_eq!((t.items(), t.expected()), (167, None));
    }

    /// An incremental run announces no counts: a count, no made-up total or ETA.
    #[test]
    fn without_counts_there_is_no_expected_total() {
        let mut t = Tally::default();
        t.apply(&ProgressEvent::RunStarted { mailboxes: 2 }, secs(0.0));
        t.apply(&ProgressEvent::MailboxStarted { mailbox_id: "a".into(), label: "a".into() }, secs(0.0));
        t.apply(&page("a", 12), secs(0.5));
        assert_eq!(t.expected(), None);
        assert_eq!(t.line_text(secs(0.5), None), "progress: 0/2 mailboxes, 12 items, -/s, throttled 0s");
        assert_eq!(t.line_text(secs(2.5), None), "progress: 0/2 mailboxes, 12 items, 6.0/s, throttled 0s");
    }

    #[test]
    fn display_follows_mode_and_terminal() {
        use Display::*;
        use ProgressMode::*;
        assert_eq!(Display::choose(Auto, true, true), Bars);
        assert_eq!(Display::choose(Auto, false, false), None);
        assert_eq!(Display::choose(Always, false, false), Lines);
        assert_eq!(Display::choose(Always, true, true), Bars);
        // TERM=dumb: indicatif draws nothing there.
        assert_eq!(Display::choose(Always, true, false), Lines);
        assert_eq!(Display::choose(Auto, true, false), Lines);
        assert_eq!(Display::choose(Never, true, true), None);
    }

    /// A long incremental sweep announces no item counts: its ETA comes from the mailboxes
    /// done, with the time of day it ends at, and the line shows the requests in flight.
    #[test]
    fn a_sweep_shows_mailboxes_in_flight_and_its_expected_end() {
        let mut t = Tally::default();
        t.apply(&ProgressEvent::RunStarted { mailboxes: 1000 }, secs(10.0));
        t.apply(&ProgressEvent::Requests { in_flight: 63, limit: 64, admitted: 5_000 }, secs(20.0));
        for i in 0..250 {
            t.apply(&ProgressEvent::MailboxFinished { mailbox_id: format!("m{i}"), ok: true }, secs(60.0));
        }
        // 250 mailboxes in 50 s since the run started: 750 more take 150 s.
        assert_eq!(t.eta(secs(60.0)), Some(secs(150.0)));
        let at = chrono::NaiveTime::from_hms_opt(14, 30, 0);
        assert_eq!(t.line_text(secs(60.0), at), "progress: 250/1000 mailboxes, 0 items, -/s, ETA 2m 30s (~14:32), 63/64 requests in flight, throttled 0s");
        assert_eq!(t.bar_text(secs(60.0), None), "0 items · -/s · ETA 2m 30s · 250/1000 mailboxes · 63/64 requests in flight · throttled 0s");
        let f = t.line_fields(secs(60.0));
        assert_eq!((f["requests_in_flight"].as_u64(), f["max_in_flight"].as_u64(), f["eta_secs"].as_u64()), (Some(63), Some(64), Some(150)));
        // Done: no ETA.
        for i in 250..1000 {
            t.apply(&ProgressEvent::MailboxFinished { mailbox_id: format!("m{i}"), ok: true }, secs(200.0));
        }
        assert_eq!(t.eta(secs(200.0)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_reported_every_second_and_at_the_end() {
        use outlake_pipeline::limiter::LimiterConfig;
        let limiter = std::sync::Arc::new(Limiter::new(LimiterConfig {
            requests_per_window: 10_000,
            window: Duration::from_secs(600),
            max_concurrent_per_mailbox: 4,
            max_in_flight_total: 8,
            max_requests_per_sec: None,
        }));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let held = [limiter.acquire("a").await, limiter.acquire("b").await];
        let watch = tokio::spawn(watch_requests(Progress::new(tx), limiter.clone(), stopped));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(held);
        stop.send(()).expect("the watcher is running");
        watch.await.expect("the watcher ends");
        let mut seen = Vec::new();
        while let Ok(ProgressEvent::Requests { in_flight, limit, admitted }) = rx.try_recv() {
            seen.push((in_flight, limit, admitted));
        }
        // At 0 s and 1 s with two requests in flight, and at the end with none.
        assert_eq!(seen, vec![(2, 8, 2), (2, 8, 2), (0, 8, 2)]);
    }
}
