//! Mastodon's streaming API: a timeline's statuses as server-sent events (`update`,
//! `status.update` for an edit, `delete` with the deleted status's id), with the statuses
//! posted while the stream was down fetched from the REST timeline.
//!
//! - `client`: the background connection (stream, redirects, gap fills, reconnects);
//! - `sse`: the server-sent-events parser;
//! - `rest`: gap filling from the REST timeline;
//! - `dedup`: status ids, their order, the ids recently passed on;
//! - `source`: epochs, offset-log records and checkpointed state.

mod client;
pub(crate) mod dedup;
mod options;
mod rest;
mod source;
mod sse;

pub use options::{MastodonOptions, Timeline};
pub use source::MastodonSource;
