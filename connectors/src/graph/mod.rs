//! The Microsoft Graph v1.0 source, one concern per file:
//!
//! - [`options`]: what the binary configures;
//! - [`auth`] + [`oauth_http`]: access tokens (client credentials through `oauth2`, or delegated
//!   tokens from the binary);
//! - [`client`]: HTTP with headers, the limiter, bounded bodies and retries; [`retry`]
//!   classifies failures once; [`errors`] reads Graph and token-endpoint error bodies;
//! - [`urls`]: first-round URLs and link validation;
//! - [`wire`] + [`normalize`] + [`schema`]: Graph JSON → Arrow;
//! - [`source`]: [`source::GraphSource`], the `Source` implementation; [`directory`]: which
//!   mailboxes it syncs (directory listing, configured entries, probes);
//! - [`check`] and [`estimate`]: the requests of `outlake check` and `outlake estimate`, with
//!   typed answers.

mod auth;
pub(crate) mod check;
mod client;
pub(crate) mod directory;
mod errors;
pub(crate) mod estimate;
pub(crate) mod normalize;
pub(crate) mod oauth_http;
pub(crate) mod options;
mod retry;
pub(crate) mod schema;
pub(crate) mod source;
pub(crate) mod urls;
mod wire;
