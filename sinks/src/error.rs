//! Errors of the sink: the pipeline's [`LakeError`], built with the object involved and a sentence
//! that says what failed and what to do about it.
//!
//! Classification (the runner acts on [`LakeErrorKind`]):
//! - `Conflict`: another writer committed this partition's next position first.
//! - `Corrupt`: a commit record (or the data it points to) cannot be trusted; a person must look.
//! - `Storage`: the store refused or failed a request (network, credentials, permissions); retrying
//!   the run is safe because every step of the commit protocol is idempotent.

pub use outlake_pipeline::lake::{LakeError, LakeErrorKind};

/// A storage failure on `url` while doing `what` (a phrase such as "write commit record").
pub(crate) fn storage(what: &str, url: &str, err: &dyn std::fmt::Display, fix: &str) -> LakeError {
    LakeError::new(LakeErrorKind::Storage, Some(url.to_string()), format!("could not {what} {url}: {err}; {fix}"))
}

/// A corrupt or unreadable persisted object.
pub(crate) fn corrupt(url: &str, message: impl Into<String>) -> LakeError {
    LakeError::new(LakeErrorKind::Corrupt, Some(url.to_string()), message.into())
}

/// A configuration problem found while building a store (bad URL, unknown option).
pub(crate) fn config(url: &str, message: impl Into<String>) -> LakeError {
    LakeError::new(LakeErrorKind::Storage, Some(url.to_string()), message.into())
}

/// The fix most storage failures share.
pub(crate) const CHECK_STORE: &str = "check the storage URL, credentials and network access, then run again (a rerun resumes from the last commit)";
