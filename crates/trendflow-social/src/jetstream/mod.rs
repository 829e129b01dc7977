//! Bluesky's Jetstream: repository events (posts, likes, reposts, follows, deletions...) as
//! JSON over a WebSocket, one event per message, resumable from a cursor (`time_us`, when
//! the Jetstream instance received the event, in microseconds).
//!
//! - `client`: the background connection (subscribe, read, decompress, reconnect);
//! - `event`: what identifies an event, for de-duplication;
//! - `dedup`: the identities remembered within the rewind horizon;
//! - `compression`: the zstd dictionary of `compress=true`;
//! - `source`: epochs, offset-log records and checkpointed state.

mod client;
mod compression;
mod dedup;
mod event;
mod options;
mod source;

pub use compression::{ZSTD_DICTIONARY, ZSTD_DICTIONARY_ID, compress_event};
pub use event::event_identity;
pub use options::JetstreamOptions;
pub use source::JetstreamSource;
