//! outlake's configuration: TOML + environment through figment, then a pure `validate()`.
//!
//! - [`raw`]: the keys exactly as users write them (`deny_unknown_fields`).
//! - [`keys`]: every known key with its kind and an example; the check of a raw TOML or
//!   environment tree that reports every unknown key ("did you mean …?") and every value of the
//!   wrong kind, in words, and accepts TOML date literals.
//! - [`validated`]: typed values from the pure [`validate`], which reports every bad value.
//! - [`problem`]: [`Problem`] (key, what is wrong, a valid example) and [`ConfigError`], the
//!   list of them. Nothing stops at the first mistake.
//! - [`load`]: defaults → file → `OUTLAKE_<SECTION>__<KEY>` env → check → validate; or,
//!   with [`load_storage`], validate only `[sink]` and `[checkpoint]` ([`StorageConfig`]).
//! - [`secret`]: `Secret`, a string that never prints.
//! - [`folders`]: the folder path patterns of `include_folders` / `exclude_folders`.
//! - [`shard`]: `--shard` (`I/N`, `index/N`, `any`): which mailboxes one worker takes.
//! - [`calendar`]: `calendars` (which calendars) and the rolling calendarView window
//!   (`calendar_start`, `calendar_end`, `calendar_roll`).
//!
//! No network, no storage: connectivity is checked by `outlake check`, not here.
pub mod calendar;
pub mod folders;
pub mod keys;
pub mod load;
pub mod problem;
pub mod raw;
pub mod secret;
pub mod shard;
pub mod validated;

pub use calendar::{CalendarRoll, CalendarSelection, CalendarWindowConfig, OffsetUnit, WindowBound};
pub use folders::FolderPattern;
pub use load::{LoadError, load, load_raw, load_storage};
pub use problem::Problem;
pub use secret::Secret;
pub use shard::Shard;
pub use validated::{AuthKind, Config, ConfigError, Mailboxes, StorageConfig, is_glob, is_loopback_host, validate, validate_storage};
