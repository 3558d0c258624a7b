//! Exit codes, documented in the README. Scripts and schedulers branch on them.

/// Everything finished.
pub const OK: u8 = 0;
/// An unexpected error (storage failure, a bug): nothing committed was lost.
pub const FAILURE: u8 = 1;
/// Configuration or credentials are wrong: fix the config or sign in again.
pub const CONFIG_OR_AUTH: u8 = 2;
/// Some mailboxes failed; the others were synced and committed.
pub const PARTIAL: u8 = 3;
/// Interrupted (Ctrl-C / SIGTERM) after committing what was staged.
pub const INTERRUPTED: u8 = 130;
