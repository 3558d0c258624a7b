//! Why a partition did not finish, as a type: each variant maps to one [`FailureKind`] of the
//! report, and run-stopping source errors are recognised by their kind.

use crate::lake::LakeError;
use crate::source::SourceError;

use super::report::FailureKind;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("{}", .0.message)]
    Source(SourceError),
    #[error("{}{}", .0.message, .0.path.as_ref().map(|p| format!(" (path: {p})")).unwrap_or_default())]
    Lake(LakeError),
    /// The fetch task panicked; the payload's text when it had one.
    #[error("the fetch task panicked ({0}); pages staged before it were committed; this is a bug: please report it with the log")]
    FetchPanicked(String),
    /// The fetch task ended without a final link and was not cancelled.
    #[error(
        "the fetch task ended before the round's final link without an error; pages staged before were committed; this is a bug: please report it with the log"
    )]
    FetchEndedEarly,
    /// An Arrow operation on a page failed.
    #[error("{0}")]
    Batch(String),
    /// A failure, after which committing what was fetched before it failed too.
    #[error("{cause}; then committing the pages fetched before it failed too: {commit}")]
    CommitAfterFailure { cause: Box<PartitionError>, commit: LakeError },
}

impl From<LakeError> for PartitionError {
    fn from(e: LakeError) -> Self {
        PartitionError::Lake(e)
    }
}

impl PartitionError {
    pub fn kind(&self) -> FailureKind {
        match self {
            PartitionError::Source(e) => FailureKind::of_source(e.kind),
            PartitionError::Lake(e) => FailureKind::of_lake(e.kind),
            PartitionError::FetchPanicked(_) => FailureKind::Panicked,
            PartitionError::FetchEndedEarly => FailureKind::EndedEarly,
            PartitionError::Batch(_) => FailureKind::Internal,
            PartitionError::CommitAfterFailure { cause, .. } => cause.kind(),
        }
    }

    /// The source error that must stop the whole run, if this is one.
    pub fn run_stopping(&self) -> Option<&SourceError> {
        match self {
            PartitionError::Source(e) if e.kind.stops_run() => Some(e),
            PartitionError::CommitAfterFailure { cause, .. } => cause.run_stopping(),
            _ => None,
        }
    }
}
