//! Progress bars (indicatif) drawn from the pipeline's progress events: one bar per active
//! mailbox and a total. Off when stderr is not a terminal, unless `--progress always`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use outlake_pipeline::progress::{Progress, ProgressEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cli::ProgressMode;

pub struct Renderer {
    task: Option<JoinHandle<()>>,
}

impl Renderer {
    pub async fn finish(self) {
        if let Some(t) = self.task {
            let _ = t.await;
        }
    }
}

/// A progress sink for the pipeline, and the renderer that draws it (if enabled). The
/// renderer ends when every sender is dropped.
pub fn start(mode: ProgressMode) -> (Progress, Renderer) {
    let enabled = match mode {
        ProgressMode::Always => true,
        ProgressMode::Never => false,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
    };
    if !enabled {
        return (Progress::none(), Renderer { task: None });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let target = if mode == ProgressMode::Always { ProgressDrawTarget::stderr_with_hz(10) } else { ProgressDrawTarget::stderr() };
    let task = tokio::spawn(render(rx, MultiProgress::with_draw_target(target)));
    (Progress::new(tx), Renderer { task: Some(task) })
}

async fn render(mut rx: mpsc::UnboundedReceiver<ProgressEvent>, multi: MultiProgress) {
    let total_style = ProgressStyle::with_template("{prefix:>12.bold} [{bar:30}] {pos}/{len} mailboxes · {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mailbox_style = ProgressStyle::with_template("{prefix:>30.dim} [{bar:30.cyan/blue}] {human_pos}/{human_len} items · {per_sec} · ETA {eta} · {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let total = multi.add(ProgressBar::new(0).with_style(total_style).with_prefix("outlake"));
    total.enable_steady_tick(Duration::from_millis(200));
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut rows: u64 = 0;
    while let Some(ev) = rx.recv().await {
        match ev {
            ProgressEvent::RunStarted { mailboxes } => total.set_length(mailboxes as u64),
            ProgressEvent::MailboxStarted { mailbox_id, label } => {
                let bar = multi.add(ProgressBar::new(0).with_style(mailbox_style.clone()).with_prefix(truncate(&label, 30)));
                bars.insert(mailbox_id, bar);
            }
            ProgressEvent::MailboxExpected { mailbox_id, items } => {
                if let Some(b) = bars.get(&mailbox_id) {
                    b.inc_length(items);
                }
            }
            ProgressEvent::Page { mailbox_id, rows: n, upserts, .. } => {
                rows += n;
                if let Some(b) = bars.get(&mailbox_id) {
                    if b.length().unwrap_or(0) < b.position() + upserts {
                        b.set_length(b.position() + upserts);
                    }
                    b.inc(upserts);
                }
                total.set_message(format!("{rows} rows"));
            }
            ProgressEvent::MailboxFinished { mailbox_id, ok } => {
                if let Some(b) = bars.remove(&mailbox_id) {
                    if ok {
                        b.finish_and_clear();
                    } else {
                        b.abandon_with_message("failed");
                    }
                }
                total.inc(1);
            }
            ProgressEvent::MailboxSkipped { .. } | ProgressEvent::Committed { .. } | ProgressEvent::Rebaselined { .. } => {}
        }
    }
    total.finish_and_clear();
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}
