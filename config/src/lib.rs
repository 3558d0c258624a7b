//! outlake's configuration: TOML + environment through figment, then a pure `validate()`.
//!
//! - [`raw`]: the keys exactly as users write them (`deny_unknown_fields`).
//! - [`validated`]: typed values; every error names the key, the problem and a valid example.
//! - [`load`]: defaults → file → `OUTLAKE_<SECTION>__<KEY>` env → validate.
//! - [`secret`]: `Secret`, a string that never prints.
//! - [`folders`]: the folder path patterns of `include_folders` / `exclude_folders`.
//! - [`calendar`]: `calendars` (which calendars) and the rolling calendarView window
//!   (`calendar_start`, `calendar_end`, `calendar_roll`).
//!
//! No network, no storage: connectivity is checked by `outlake check`, not here.
pub mod calendar;
pub mod folders;
pub mod load;
pub mod raw;
pub mod secret;
pub mod validated;

pub use calendar::{CalendarRoll, CalendarSelection, CalendarWindowConfig, OffsetUnit, WindowBound};
pub use folders::FolderPattern;
pub use load::{LoadError, load, load_raw};
pub use secret::Secret;
pub use validated::{AuthKind, Config, ConfigError, Mailboxes, is_glob, is_loopback_host, validate};
