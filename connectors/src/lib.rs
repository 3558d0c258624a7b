//! outlake's Microsoft Graph source: auth, HTTP client, retry classification, delta paging and
//! Graph JSON → Arrow normalization. Implements `outlake_pipeline::source::Source`.

pub mod graph;

pub use graph::{
    AuthMode, DelegatedTokens, GraphOptions, GraphSource, MailboxSelection, NormalizeContext, NormalizeError, NormalizeErrorKind, NormalizedPage,
    normalize_page,
};
