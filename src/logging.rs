//! Logs on stderr through `tracing`: readable by default, JSON with `--log-format json`,
//! filtered by `RUST_LOG` (default `info`). Secrets are held in `Secret` and never reach a log.
//!
//! Contract with the progress bars (`crate::progress`): while bars are on the screen they are
//! registered here ([`attach_bars`]), and every log line is written through
//! `MultiProgress::suspend` — the bars are erased, the line is written, the bars are drawn again
//! below it. A log line is therefore never overwritten by a bar frame, and a bar frame is never
//! left behind by a log line (indicatif moves the cursor up over the lines it drew last; a line
//! written behind its back would be erased instead of the frame).
//!
//! Lines that are the program's own output rather than logs — the run summary and the plain
//! `--progress always` lines — go through [`emit`]: plain text, or with `--log-format json` one
//! JSON object shaped like the tracing lines (`timestamp`, `level`, `message`, then the fields as
//! JSON values), so that with `--log-format json` every line on stderr is JSON. They are not
//! subject to `RUST_LOG`: a user who asked for them gets them.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use indicatif::MultiProgress;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::cli::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(BarAwareStderr).with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The `--log-format` in force (text before `init`).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// Route stderr writes through `multi` until [`detach_bars`].
pub fn attach_bars(multi: &MultiProgress) {
    *BARS.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
}

pub fn detach_bars() {
    *BARS.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Write whole lines to stderr, above the bars when they are drawn.
pub fn write_stderr(bytes: &[u8]) {
    // Clone the handle out of the lock: `suspend` takes indicatif's own lock, and nothing may
    // wait on ours while holding that one.
    let bars = BARS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let write = || {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    };
    match bars {
        Some(multi) => multi.suspend(write),
        None => write(),
    }
}

/// A line of the program's own output on stderr: `text` as it is with `--log-format text`; with
/// `--log-format json` one JSON object with `message` and `fields` (values, never Debug text).
pub fn emit(level: &str, message: &str, text: &str, fields: serde_json::Map<String, serde_json::Value>) {
    let line = match format() {
        LogFormat::Text => format!("{text}\n"),
        LogFormat::Json => format!("{}\n", json_line(level, message, fields, chrono::Utc::now())),
    };
    write_stderr(line.as_bytes());
}

/// An error of the program's own (not a tracing event): `error: <message>` as text, a JSON
/// object at level ERROR with `--log-format json`.
pub fn error(message: &str) {
    emit("ERROR", message, &format!("error: {message}"), serde_json::Map::new());
}

/// A note that follows an error: `note: <message>` as text, level INFO in JSON.
pub fn note(message: &str) {
    emit("INFO", message, &format!("note: {message}"), serde_json::Map::new());
}

/// The JSON object `emit` writes: the keys of tracing-subscriber's flattened JSON lines, in
/// their order (`timestamp`, `level`, `message`, the fields, `target`); a field named like one of
/// those is dropped.
pub fn json_line(level: &str, message: &str, fields: serde_json::Map<String, serde_json::Value>, now: chrono::DateTime<chrono::Utc>) -> String {
    let str = |s: &str| serde_json::Value::from(s).to_string();
    let mut out =
        format!("{{\"timestamp\":{},\"level\":{},\"message\":{}", str(&now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)), str(level), str(message));
    for (k, v) in fields.iter().filter(|(k, _)| !["timestamp", "level", "message", "target"].contains(&k.as_str())) {
        out.push_str(&format!(",{}:{}", str(k), v));
    }
    out.push_str(",\"target\":\"outlake\"}");
    out
}

/// tracing's writer: one buffer per event, written whole when the event is done.
struct BarAwareStderr;

impl<'a> MakeWriter<'a> for BarAwareStderr {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::with_capacity(256))
    }
}

struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_stderr(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_keeps_values_typed_and_the_reserved_keys_first() {
        let mut f = serde_json::Map::new();
        f.insert("upserts".into(), 12.into());
        f.insert("fatal".into(), serde_json::Value::Null);
        f.insert("message".into(), "not this one".into());
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z").unwrap().with_timezone(&chrono::Utc);
        let line = json_line("INFO", "run \"finished\"", f, now);
        assert_eq!(
            line,
            r#"{"timestamp":"2026-01-02T03:04:05.678901Z","level":"INFO","message":"run \"finished\"","fatal":null,"upserts":12,"target":"outlake"}"#
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["upserts"], 12);
    }
}
