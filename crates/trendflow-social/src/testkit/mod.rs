//! Test infrastructure: local servers that replay recorded streams over the real protocols
//! (Jetstream's WebSocket, Mastodon's server-sent events and REST timelines), each able to
//! cut connections, and the recordings they replay.
//!
//! None of this is used by trendflow itself. It is public, rather than `#[cfg(test)]`, so
//! that the end-to-end tests of other crates (the binary's) start the same servers: each
//! has an async `start(replay) -> (address, handle)` that serves on a free port of
//! 127.0.0.1 in the current tokio runtime until the handle is dropped.

pub mod jetstream;
pub mod mastodon;
pub mod recordings;
