//! Live sources of social-media posts: Bluesky's Jetstream (a WebSocket of repository events)
//! and Mastodon's streaming API (server-sent events, gaps filled from the REST timeline).
//!
//! Both follow the pattern of the socket source: a background task keeps a connection open,
//! reconnecting with backoff, and buffers what arrives; `plan_epoch` takes what arrived and
//! records it, lines and all, as the epoch's input in the offset log, so that `read_epoch`
//! reads exactly the same lines again after a crash. What a remote stream can re-send (after
//! a reconnect or a restart) is recognised and dropped by a bounded set of identities kept in
//! the source's checkpointed state: nothing is lost or counted twice within the limits each
//! source documents (`docs/bluesky-jetstream.md`, `docs/mastodon.md`).
//!
//! [`testkit`] holds local replay servers of both protocols for tests.

mod backoff;
mod duration_option;
mod epoch_input;
mod http_client;
mod inbox;
mod net;

pub mod jetstream;
pub mod mastodon;
pub mod testkit;

pub use jetstream::{JetstreamOptions, JetstreamSource};
pub use mastodon::{MastodonOptions, MastodonSource, Timeline};
