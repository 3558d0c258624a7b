//! Windows time-zone names (as Outlook uses them) mapped to IANA zones, with DST from chrono-tz.
//!
//! Used to honour `Prefer: outlook.timezone="…"` for event start/end and to place all-day
//! events at midnight in their original zone. Unknown names fall back to UTC, and so does
//! `"UTC"` itself. IANA names are accepted too.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

const WINDOWS: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("GMT Standard Time", "Europe/London"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
];

/// Windows zone names the world generator uses for events.
pub const EVENT_ZONES: &[&str] = &["UTC", "Pacific Standard Time", "Eastern Standard Time", "W. Europe Standard Time", "India Standard Time"];

/// Resolves a Windows or IANA zone name; `None` for unknown names.
pub fn resolve(name: &str) -> Option<Tz> {
    let n = name.trim().trim_matches('"');
    WINDOWS.iter().find(|(w, _)| w.eq_ignore_ascii_case(n)).and_then(|(_, iana)| iana.parse().ok()).or_else(|| n.parse().ok())
}

/// The wall-clock time of `t` in zone `name` (UTC when unknown).
pub fn to_local(t: DateTime<Utc>, name: &str) -> NaiveDateTime {
    match resolve(name) {
        Some(tz) => t.with_timezone(&tz).naive_local(),
        None => t.naive_utc(),
    }
}

/// The instant of wall-clock `local` in zone `name` (earliest on ambiguity, shifted on gaps).
pub fn to_utc(local: NaiveDateTime, name: &str) -> DateTime<Utc> {
    match resolve(name) {
        Some(tz) => match tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
            chrono::LocalResult::None => to_utc(local + chrono::Duration::hours(1), name) - chrono::Duration::hours(1),
        },
        None => Utc.from_utc_datetime(&local),
    }
}
