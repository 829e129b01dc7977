//! Checkpoints: the offset log, the state snapshots taken at barriers, where they are stored
//! and how a run resumes from them. See docs/checkpoints.md.

pub mod format;
pub mod log;
pub mod store;

pub use format::{Checkpoint, ComponentState, FORMAT_VERSION, OffsetEntry};
pub use log::Checkpointer;
pub use store::{CheckpointStore, LocalDirStore, MemoryStore};
