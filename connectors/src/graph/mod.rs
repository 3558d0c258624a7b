//! The Microsoft Graph v1.0 source, one concern per file:
//!
//! - [`options`]: what the binary configures;
//! - [`auth`] + [`oauth_http`]: access tokens (client credentials through `oauth2`, or delegated
//!   tokens from the binary);
//! - [`client`]: HTTP with headers, the limiter, bounded bodies and retries; [`retry`]
//!   classifies failures once; [`errors`] reads Graph and token-endpoint error bodies;
//! - [`urls`]: first-round URLs and link validation;
//! - [`wire`] + [`normalize`] + [`schema`]: Graph JSON → Arrow;
//! - [`source`]: [`GraphSource`], the `Source` implementation.

pub mod auth;
pub mod client;
pub mod errors;
pub mod normalize;
pub mod oauth_http;
pub mod options;
pub mod retry;
pub mod schema;
pub mod source;
pub mod urls;
pub mod wire;

pub use normalize::{NormalizeContext, NormalizeError, NormalizeErrorKind, NormalizedPage, normalize_page};
pub use options::{AuthMode, DelegatedTokens, GraphOptions, MailboxSelection};
pub use source::GraphSource;
