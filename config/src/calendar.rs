//! Which calendars to copy, and the calendarView window: `source.calendars`,
//! `source.calendar_start`, `source.calendar_end`, `source.calendar_roll`.
//!
//! ```toml
//! [source]
//! calendars = "owned"          # or "all", or ["Calendar", "Team *"]
//! calendar_start = "-365d"     # an offset from now, or "2024-01-01", or "2024-01-01T00:00:00Z"
//! calendar_end = "+18mo"
//! calendar_roll = "month"      # "month" | "week" | "day"
//! ```
//!
//! **Bounds.** Each bound is either an instant — an RFC 3339 timestamp, or a date `YYYY-MM-DD`
//! meaning midnight UTC, quoted or written as a TOML literal (`calendar_start = 2024-01-01`);
//! a date and time without an offset is refused, not guessed — or an offset from now, always
//! a string: a sign, a whole number and a unit, `d` (days),
//! `w` (weeks), `mo` (months) or `y` (years): `"-30d"`, `"+2w"`, `"+18mo"`, `"-1y"`. Zero may be
//! written without a sign (`"0d"`); any other offset needs one, so that `"30d"` is never
//! guessed to mean before or after. `m` is refused: it reads as minutes as easily as months.
//! Defaults: `"-365d"` and `"+365d"`.
//!
//! **Rolling.** Offsets are not applied to the current instant but to an *anchor*: now snapped
//! down to the start of the current roll period in UTC — midnight (`day`), Monday midnight
//! (`week`) or the 1st of the month at midnight (`month`, the default). A relative window thus
//! moves once per period rather than on every run, so consecutive runs in a period ask Graph for
//! the same window. Days and weeks are exact multiples of 24 hours; months and years are
//! calendar arithmetic (31 January + 1 month = 28/29 February).
//!
//! **Limits.** The resolved window must end after it starts and span at most
//! [`MAX_WINDOW_DAYS`] days: Graph's calendarView refuses longer windows. A window that mixes an
//! instant and an offset can become too long later; [`CalendarWindowConfig::resolve`] says so
//! when it does, naming the key.
//!
//! **Calendars.** `"owned"` (default): the calendars the mailbox owns. `"all"`: also calendars
//! other people share with it. A list: calendars whose display name matches any entry, without
//! regard to case; entries may be globs (`*`, `?`, `[…]`; write `[[]` for a literal `[`).

use std::fmt;

use chrono::{DateTime, Datelike, Days, Months, SecondsFormat, TimeDelta, Utc};

use crate::problem::Problem;
use crate::raw::RawCalendars;
use crate::validated::{err, no_offset_hint, parse_instant};

/// Graph's calendarView refuses windows longer than this.
pub const MAX_WINDOW_DAYS: i64 = 1825;
pub const DEFAULT_CALENDAR_START: &str = "-365d";
pub const DEFAULT_CALENDAR_END: &str = "+365d";

const START_KEY: &str = "source.calendar_start";
const END_KEY: &str = "source.calendar_end";
const ROLL_KEY: &str = "source.calendar_roll";
const CALENDARS_KEY: &str = "source.calendars";
const WINDOW_EXAMPLE: &str = "calendar_start = \"-365d\", calendar_end = \"+365d\" (or \"2024-01-01\" … \"2026-12-31\")";
const CALENDARS_EXAMPLE: &str = "calendars = \"owned\" (or \"all\", or [\"Calendar\", \"Team *\"])";

/// The unit of an offset bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetUnit {
    Day,
    Week,
    Month,
    Year,
}

impl OffsetUnit {
    /// The suffix as written: `d`, `w`, `mo`, `y`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetUnit::Day => "d",
            OffsetUnit::Week => "w",
            OffsetUnit::Month => "mo",
            OffsetUnit::Year => "y",
        }
    }
}

/// One end of the calendar window, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowBound {
    /// A fixed instant.
    At(DateTime<Utc>),
    /// `amount` units after (negative: before) the anchor of the current roll period.
    Offset { amount: i32, unit: OffsetUnit },
}

impl fmt::Display for WindowBound {
    /// `2024-01-01T00:00:00Z`, `-365d`, `+18mo`, `+0d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowBound::At(t) => f.write_str(&instant(*t)),
            WindowBound::Offset { amount, unit } => write!(f, "{amount:+}{}", unit.as_str()),
        }
    }
}

impl WindowBound {
    /// Parse a bound written under `key` (`source.calendar_start` or `source.calendar_end`).
    pub(crate) fn parse(v: &str, key: &str) -> Result<WindowBound, Problem> {
        let v = v.trim();
        let example = bound_example(key);
        if let Some(t) = parse_instant(v) {
            return Ok(WindowBound::At(t));
        }
        match parse_offset(v) {
            Some(Ok((amount, unit))) => Ok(WindowBound::Offset { amount, unit }),
            Some(Err(problem)) => Err(err(key, format!("{v:?}: {problem}"), &example)),
            None => {
                let problem = no_offset_hint(v)
                    .unwrap_or_else(|| format!("{v:?} is neither an offset from now (-30d, +2w, +18mo, -1y), a date (YYYY-MM-DD) nor an RFC 3339 timestamp"));
                Err(err(key, problem, &example))
            }
        }
    }

    /// The instant this bound names for a period that starts at `anchor`; `None` past chrono's range.
    fn at(self, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (amount, unit) = match self {
            WindowBound::At(t) => return Some(t),
            WindowBound::Offset { amount, unit } => (amount, unit),
        };
        let n = amount.unsigned_abs();
        let forward = amount >= 0;
        match unit {
            OffsetUnit::Day | OffsetUnit::Week => {
                let days = Days::new(u64::from(n) * if unit == OffsetUnit::Week { 7 } else { 1 });
                if forward { anchor.checked_add_days(days) } else { anchor.checked_sub_days(days) }
            }
            OffsetUnit::Month | OffsetUnit::Year => {
                let months = Months::new(if unit == OffsetUnit::Year { n.checked_mul(12)? } else { n });
                if forward { anchor.checked_add_months(months) } else { anchor.checked_sub_months(months) }
            }
        }
    }
}

/// `Some` when `v` looks like an offset (a sign, or digits followed by letters): then `Ok` with
/// the signed amount and unit, or `Err` with what is wrong. `None` when it does not look like one.
fn parse_offset(v: &str) -> Option<Result<(i32, OffsetUnit), String>> {
    let (sign, rest) = match v.as_bytes().first() {
        Some(b'+') => (Some(1i64), &v[1..]),
        Some(b'-') => (Some(-1i64), &v[1..]),
        _ => (None, v),
    };
    let split = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (digits, unit) = rest.split_at(split);
    let offset_like = sign.is_some() || (!digits.is_empty() && unit.chars().all(|c| c.is_ascii_alphabetic()));
    if !offset_like {
        return None;
    }
    Some((|| {
        if digits.is_empty() {
            return Err("an offset is a sign, a whole number and a unit, such as -30d or +18mo".to_string());
        }
        let unit = match unit.to_ascii_lowercase().as_str() {
            "d" => OffsetUnit::Day,
            "w" => OffsetUnit::Week,
            "mo" => OffsetUnit::Month,
            "y" => OffsetUnit::Year,
            "m" => return Err(format!("unit `{unit}` is ambiguous (months or minutes?); write `mo` for months, such as -{digits}mo")),
            "" => return Err("the offset has no unit; units are d (days), w (weeks), mo (months), y (years)".to_string()),
            _ => return Err(format!("unknown unit {unit:?}; units are d (days), w (weeks), mo (months), y (years)")),
        };
        let n: i64 = digits.parse().map_err(|_| "the number is too large".to_string())?;
        let amount = match sign {
            Some(s) => i32::try_from(s * n).map_err(|_| "the number is too large".to_string())?,
            None if n == 0 => 0,
            None => {
                return Err(format!("an offset needs a sign: -{digits}{u} for {digits}{u} before now, +{digits}{u} for after", u = unit.as_str()));
            }
        };
        Ok((amount, unit))
    })())
}

/// `calendar_start = "-365d" (or …)` for the start key, the `+` forms for the end key.
fn bound_example(key: &str) -> String {
    if key == START_KEY {
        "calendar_start = \"-365d\" (or \"-6mo\", \"2024-01-01\", \"2024-01-01T00:00:00Z\")".to_string()
    } else {
        "calendar_end = \"+365d\" (or \"+18mo\", \"2026-12-31\", \"2026-12-31T00:00:00Z\")".to_string()
    }
}

/// How often a window with offsets moves: the length of the roll period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarRoll {
    Day,
    Week,
    Month,
}

impl CalendarRoll {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarRoll::Day => "day",
            CalendarRoll::Week => "week",
            CalendarRoll::Month => "month",
        }
    }

    /// `daily`, `weekly`, `monthly`.
    fn adverb(self) -> &'static str {
        match self {
            CalendarRoll::Day => "daily",
            CalendarRoll::Week => "weekly",
            CalendarRoll::Month => "monthly",
        }
    }

    pub(crate) fn parse(v: Option<&str>) -> Result<CalendarRoll, Problem> {
        match v.unwrap_or("month") {
            "month" => Ok(CalendarRoll::Month),
            "week" => Ok(CalendarRoll::Week),
            "day" => Ok(CalendarRoll::Day),
            other => Err(err(ROLL_KEY, format!("unknown roll {other:?}; use \"month\", \"week\" or \"day\""), "calendar_roll = \"month\"")),
        }
    }

    /// The start of the period holding `now`, in UTC: midnight, Monday midnight, or the 1st of
    /// the month at midnight. Offsets are applied to this anchor.
    pub fn period_start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let day = now.date_naive();
        let first = match self {
            CalendarRoll::Day => day,
            CalendarRoll::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            CalendarRoll::Month => day.with_day(1).expect("every month has a 1st"),
        };
        first.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    }
}

/// `source.calendar_start`, `source.calendar_end` and `source.calendar_roll`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalendarWindowConfig {
    pub start: WindowBound,
    pub end: WindowBound,
    pub roll: CalendarRoll,
}

impl Default for CalendarWindowConfig {
    /// `-365d … +365d`, rolling monthly.
    fn default() -> Self {
        CalendarWindowConfig {
            start: WindowBound::Offset { amount: -365, unit: OffsetUnit::Day },
            end: WindowBound::Offset { amount: 365, unit: OffsetUnit::Day },
            roll: CalendarRoll::Month,
        }
    }
}

impl CalendarWindowConfig {
    /// Parse the three raw keys (absent: the defaults), reporting a problem for each bad one.
    /// Does not resolve: see [`Self::resolve`].
    pub(crate) fn parse(start: Option<&str>, end: Option<&str>, roll: Option<&str>) -> Result<CalendarWindowConfig, Vec<Problem>> {
        let start = WindowBound::parse(start.unwrap_or(DEFAULT_CALENDAR_START), START_KEY);
        let end = WindowBound::parse(end.unwrap_or(DEFAULT_CALENDAR_END), END_KEY);
        let roll = CalendarRoll::parse(roll);
        match (start, end, roll) {
            (Ok(start), Ok(end), Ok(roll)) => Ok(CalendarWindowConfig { start, end, roll }),
            (start, end, roll) => Err([start.err(), end.err(), roll.err()].into_iter().flatten().collect()),
        }
    }

    /// The window in force at `now`: (start, end), start < end, at most 1825 days apart.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), Problem> {
        let anchor = self.roll.period_start(now);
        let out_of_range = |key: &str, b: WindowBound| err(key, format!("{b} from {} is outside the representable dates", instant(anchor)), WINDOW_EXAMPLE);
        let start = self.start.at(anchor).ok_or_else(|| out_of_range(START_KEY, self.start))?;
        let end = self.end.at(anchor).ok_or_else(|| out_of_range(END_KEY, self.end))?;
        if end <= start {
            return Err(err(
                END_KEY,
                format!(
                    "the window must end after it starts, but calendar_end {} ({}) is not after calendar_start {} ({})",
                    self.end,
                    instant(end),
                    self.start,
                    instant(start)
                ),
                WINDOW_EXAMPLE,
            ));
        }
        if end - start > TimeDelta::days(MAX_WINDOW_DAYS) {
            return Err(err(
                END_KEY,
                format!(
                    "calendar_start {} ({}) to calendar_end {} ({}) spans {} days; Graph's calendarView accepts at most {MAX_WINDOW_DAYS}",
                    self.start,
                    instant(start),
                    self.end,
                    instant(end),
                    (end - start).num_days()
                ),
                WINDOW_EXAMPLE,
            ));
        }
        Ok((start, end))
    }

    /// True when a bound is an offset (the window moves with time).
    pub fn is_rolling(&self) -> bool {
        matches!(self.start, WindowBound::Offset { .. }) || matches!(self.end, WindowBound::Offset { .. })
    }

    /// The bounds as written, e.g. "-365d … +365d (rolls monthly)" or
    /// "2024-01-01T00:00:00Z … 2026-12-31T00:00:00Z".
    pub fn describe(&self) -> String {
        if self.is_rolling() { format!("{} … {} (rolls {})", self.start, self.end, self.roll.adverb()) } else { format!("{} … {}", self.start, self.end) }
    }
}

/// `source.calendars`: which of a mailbox's calendars to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarSelection {
    /// The calendars the mailbox owns (default).
    Owned,
    /// Also calendars shared with the mailbox.
    All,
    /// Calendars whose display name matches one of these patterns. The patterns are lower-cased
    /// and matched against the lower-cased name (glob's own case folding is ASCII only).
    Named(Vec<glob::Pattern>),
}

impl CalendarSelection {
    /// `Named`: whether any pattern matches `name` without regard to case. `Owned`/`All`: true
    /// (they select by owner, not by name).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            CalendarSelection::Owned | CalendarSelection::All => true,
            CalendarSelection::Named(patterns) => {
                let name = name.to_lowercase();
                let opts = glob::MatchOptions { case_sensitive: false, require_literal_separator: false, require_literal_leading_dot: false };
                patterns.iter().any(|p| p.matches_with(&name, opts))
            }
        }
    }

    pub(crate) fn parse(v: Option<&RawCalendars>) -> Result<CalendarSelection, Problem> {
        match v {
            None => Ok(CalendarSelection::Owned),
            Some(RawCalendars::Keyword(k)) if k == "owned" => Ok(CalendarSelection::Owned),
            Some(RawCalendars::Keyword(k)) if k == "all" => Ok(CalendarSelection::All),
            Some(RawCalendars::Keyword(k)) => Err(err(
                CALENDARS_KEY,
                format!("unknown value {k:?}; use \"owned\", \"all\" or a list of calendar names (a single name is written [{k:?}])"),
                CALENDARS_EXAMPLE,
            )),
            Some(RawCalendars::List(list)) => {
                if list.is_empty() {
                    return Err(err(CALENDARS_KEY, "the list is empty; name at least one calendar, or use \"owned\" or \"all\"", CALENDARS_EXAMPLE));
                }
                list.iter()
                    .map(|name| {
                        if name.trim().is_empty() {
                            return Err(err(CALENDARS_KEY, "the list holds an empty name", CALENDARS_EXAMPLE));
                        }
                        glob::Pattern::new(&name.to_lowercase()).map_err(|e| err(CALENDARS_KEY, format!("{name:?} is not a glob: {e}"), CALENDARS_EXAMPLE))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(CalendarSelection::Named)
            }
        }
    }
}

/// `2024-01-01T00:00:00Z`.
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn bound(s: &str) -> WindowBound {
        WindowBound::parse(s, START_KEY).unwrap()
    }

    fn window(start: &str, end: &str, roll: &str) -> CalendarWindowConfig {
        CalendarWindowConfig::parse(Some(start), Some(end), Some(roll)).unwrap()
    }

    fn off(amount: i32, unit: OffsetUnit) -> WindowBound {
        WindowBound::Offset { amount, unit }
    }

    #[test]
    fn parses_each_offset_form_and_unit() {
        assert_eq!(bound("-30d"), off(-30, OffsetUnit::Day));
        assert_eq!(bound("+18mo"), off(18, OffsetUnit::Month));
        assert_eq!(bound("+2w"), off(2, OffsetUnit::Week));
        assert_eq!(bound("-1y"), off(-1, OffsetUnit::Year));
        assert_eq!(bound("0d"), off(0, OffsetUnit::Day));
        assert_eq!(bound("+0d"), off(0, OffsetUnit::Day));
        assert_eq!(bound("-0w"), off(0, OffsetUnit::Week));
        assert_eq!(bound(" -6MO "), off(-6, OffsetUnit::Month));
        assert_eq!(bound("+365d").to_string(), "+365d");
        assert_eq!(bound("0d").to_string(), "+0d");
        assert_eq!(bound("-18mo").to_string(), "-18mo");
    }

    #[test]
    fn parses_dates_and_timestamps() {
        assert_eq!(bound("2024-01-01"), WindowBound::At(t("2024-01-01T00:00:00Z")));
        assert_eq!(bound("2024-01-01T09:30:00+02:00"), WindowBound::At(t("2024-01-01T07:30:00Z")));
        assert_eq!(bound("2024-01-01T00:00:00Z").to_string(), "2024-01-01T00:00:00Z");
    }

    #[test]
    fn bad_bounds_say_what_is_wrong() {
        let problem = |s: &str| {
            let e = WindowBound::parse(s, END_KEY).unwrap_err();
            assert_eq!(e.key, END_KEY);
            assert!(e.example.contains("calendar_end = \"+365d\""), "{e}");
            e.message
        };
        let m = problem("-3m");
        assert!(m.contains("ambiguous") && m.contains("-3mo"), "{m}");
        assert!(problem("+3h").contains("unknown unit \"h\""));
        assert!(problem("+3 d").contains("unknown unit"));
        assert!(problem("+30").contains("no unit"));
        assert!(problem("-d").contains("sign, a whole number and a unit"));
        assert!(problem("30d").contains("needs a sign"));
        assert!(problem("+99999999999d").contains("too large"));
        assert!(problem("yesterday").contains("RFC 3339"));
        assert!(problem("2024-13-01").contains("YYYY-MM-DD"));
    }

    #[test]
    fn offsets_apply_to_the_start_of_the_roll_period() {
        let now = t("2026-12-02T14:00:00Z"); // a Wednesday
        let month = window("-365d", "+365d", "month").resolve(now).unwrap();
        assert_eq!(month, (t("2026-12-01T00:00:00Z") - TimeDelta::days(365), t("2026-12-01T00:00:00Z") + TimeDelta::days(365)));
        assert_eq!(month.0, t("2025-12-01T00:00:00Z"));
        let week = window("-365d", "+2w", "week").resolve(now).unwrap();
        assert_eq!(week, (t("2026-11-30T00:00:00Z") - TimeDelta::days(365), t("2026-12-14T00:00:00Z")));
        let day = window("0d", "+1d", "day").resolve(now).unwrap();
        assert_eq!(day, (t("2026-12-02T00:00:00Z"), t("2026-12-03T00:00:00Z")));
        // A Monday is its own week's anchor.
        assert_eq!(CalendarRoll::Week.period_start(t("2026-11-30T00:00:00Z")), t("2026-11-30T00:00:00Z"));
        assert_eq!(CalendarRoll::Week.period_start(t("2026-12-06T23:59:59Z")), t("2026-11-30T00:00:00Z"));
    }

    #[test]
    fn months_and_years_are_calendar_arithmetic() {
        // Month ends clamp to the last day of the shorter month.
        let (s, e) = window("-1mo", "+1mo", "day").resolve(t("2026-03-31T10:00:00Z")).unwrap();
        assert_eq!((s, e), (t("2026-02-28T00:00:00Z"), t("2026-04-30T00:00:00Z")));
        let (s, e) = window("-1y", "+18mo", "day").resolve(t("2028-02-29T10:00:00Z")).unwrap();
        assert_eq!((s, e), (t("2027-02-28T00:00:00Z"), t("2029-08-29T00:00:00Z")));
        let (s, e) = window("-6mo", "+1y", "month").resolve(t("2026-08-17T10:00:00Z")).unwrap();
        assert_eq!((s, e), (t("2026-02-01T00:00:00Z"), t("2027-08-01T00:00:00Z")));
        // Weeks are exact days.
        let (s, _) = window("-2w", "+1d", "day").resolve(t("2026-03-01T10:00:00Z")).unwrap();
        assert_eq!(s, t("2026-02-15T00:00:00Z"));
    }

    #[test]
    fn the_window_moves_once_per_period() {
        let w = window("-365d", "+365d", "month");
        let a = w.resolve(t("2026-11-01T00:00:00Z")).unwrap();
        assert_eq!(a, w.resolve(t("2026-11-30T23:59:00Z")).unwrap());
        let b = w.resolve(t("2026-12-01T00:00:00Z")).unwrap();
        assert_ne!(a, b);
        assert_eq!(b.0 - a.0, TimeDelta::days(30));

        let w = window("-30d", "+30d", "week");
        assert_eq!(w.resolve(t("2026-12-01T08:00:00Z")).unwrap(), w.resolve(t("2026-12-06T23:59:00Z")).unwrap());
        assert_ne!(w.resolve(t("2026-12-06T23:59:00Z")).unwrap(), w.resolve(t("2026-12-07T00:00:00Z")).unwrap());

        let w = window("-30d", "+30d", "day");
        assert_eq!(w.resolve(t("2026-12-01T00:00:00Z")).unwrap(), w.resolve(t("2026-12-01T23:59:59Z")).unwrap());
        assert_ne!(w.resolve(t("2026-12-01T23:59:59Z")).unwrap(), w.resolve(t("2026-12-02T00:00:00Z")).unwrap());
    }

    #[test]
    fn absolute_windows_ignore_now() {
        let w = window("2024-01-01", "2026-12-31T00:00:00Z", "week");
        assert!(!w.is_rolling());
        let expect = (t("2024-01-01T00:00:00Z"), t("2026-12-31T00:00:00Z"));
        assert_eq!(w.resolve(t("2020-05-05T05:05:05Z")).unwrap(), expect);
        assert_eq!(w.resolve(t("2030-05-05T05:05:05Z")).unwrap(), expect);
        assert_eq!(w.describe(), "2024-01-01T00:00:00Z … 2026-12-31T00:00:00Z");
    }

    #[test]
    fn defaults_and_description() {
        let w = CalendarWindowConfig::parse(None, None, None).unwrap();
        assert_eq!(w, CalendarWindowConfig::default());
        assert!(w.is_rolling());
        assert_eq!(w.describe(), "-365d … +365d (rolls monthly)");
        assert_eq!(window("2024-01-01", "+0d", "week").describe(), "2024-01-01T00:00:00Z … +0d (rolls weekly)");
        assert_eq!(CalendarRoll::Day.as_str(), "day");
        assert_eq!(CalendarRoll::Week.as_str(), "week");
        assert_eq!(CalendarRoll::Month.as_str(), "month");
    }

    #[test]
    fn resolve_refuses_empty_reversed_and_long_windows() {
        let now = t("2026-12-02T14:00:00Z");
        for (start, end) in [("+0d", "0d"), ("+1mo", "-1mo"), ("2026-01-01", "2025-01-01"), ("2026-01-01", "2025-12-01T00:00:00Z")] {
            let e = window(start, end, "month").resolve(now).unwrap_err();
            assert_eq!(e.key, END_KEY);
            assert!(e.message.contains("must end after it starts"), "{e}");
            assert!(e.example.contains("calendar_end"), "{e}");
        }
        let e = window("-3y", "+3y", "month").resolve(now).unwrap_err();
        assert_eq!(e.key, END_KEY);
        assert!(e.message.contains("1825") && e.message.contains("2192 days"), "{e}");
        // Exactly 1825 days is allowed; a second more is not.
        assert!(window("-1825d", "0d", "day").resolve(now).is_ok());
        assert!(window("2020-01-01T00:00:00Z", "2024-12-30T00:00:00Z", "day").resolve(now).is_ok());
        assert!(window("2020-01-01T00:00:00Z", "2024-12-30T00:00:01Z", "day").resolve(now).is_err());
        // A window mixing an instant and an offset is fine today and too long later.
        let mixed = window("2024-01-01", "+1y", "month");
        assert!(mixed.resolve(now).is_ok());
        assert!(mixed.resolve(t("2029-01-01T00:00:00Z")).unwrap_err().message.contains("1825"));
        // Offsets past chrono's range are an error, not a panic.
        let e = window("-1d", "+2000000000y", "month").resolve(now).unwrap_err();
        assert!(e.message.contains("outside"), "{e}");
    }

    #[test]
    fn roll_values() {
        assert_eq!(CalendarRoll::parse(None).unwrap(), CalendarRoll::Month);
        assert_eq!(CalendarRoll::parse(Some("week")).unwrap(), CalendarRoll::Week);
        assert_eq!(CalendarRoll::parse(Some("day")).unwrap(), CalendarRoll::Day);
        let e = CalendarRoll::parse(Some("monthly")).unwrap_err();
        assert_eq!(e.key, ROLL_KEY);
        assert!(e.message.contains("\"month\", \"week\" or \"day\""), "{e}");
    }

    #[test]
    fn calendar_selection() {
        let parse = |v: RawCalendars| CalendarSelection::parse(Some(&v));
        assert_eq!(CalendarSelection::parse(None).unwrap(), CalendarSelection::Owned);
        assert_eq!(parse(RawCalendars::Keyword("owned".into())).unwrap(), CalendarSelection::Owned);
        assert_eq!(parse(RawCalendars::Keyword("all".into())).unwrap(), CalendarSelection::All);
        assert!(CalendarSelection::Owned.matches_name("anything") && CalendarSelection::All.matches_name("anything"));

        let named = parse(RawCalendars::List(vec!["Calendar".into(), "Team *".into(), "Kalender Ä?".into()])).unwrap();
        assert!(named.matches_name("calendar"));
        assert!(named.matches_name("CALENDAR"));
        assert!(named.matches_name("team Sales"));
        assert!(named.matches_name("kalender äX"));
        assert!(!named.matches_name("Calendar 2"));
        assert!(!named.matches_name("Birthdays"));

        let e = parse(RawCalendars::List(vec![])).unwrap_err();
        assert_eq!(e.key, CALENDARS_KEY);
        assert!(e.message.contains("empty") && e.example.contains("calendars = "), "{e}");
        assert!(parse(RawCalendars::List(vec![" ".into()])).unwrap_err().message.contains("empty name"));
        assert!(parse(RawCalendars::List(vec!["[Team".into()])).unwrap_err().message.contains("not a glob"));
        let e = parse(RawCalendars::Keyword("Calendar".into())).unwrap_err();
        assert!(e.message.contains("\"owned\", \"all\"") && e.message.contains("[\"Calendar\"]"), "{e}");
    }
}
