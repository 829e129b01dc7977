//! Core types of trendflow: the messages that flow between pipeline stages, the batches they
//! carry, event-time windows and watermarks, and the [`Operator`] and [`Sink`] traits every
//! component implements.
//!
//! Nothing here knows about actors, files or YAML: a component written against these traits
//! can be unit-tested by calling it directly.

pub mod batch;
pub mod checkpoint_store;
pub mod codec;
pub mod deadletter;
pub mod duration;
pub mod failpoint;
pub mod keyed_segments;
pub mod message;
pub mod metrics;
pub mod operator;
pub mod post;
pub mod prefault;
pub mod rows;
pub mod state_segment;
pub mod tap;
pub mod time;
pub mod watermark;
pub mod window;

pub use batch::{Batch, DataKind, PostBatch, RawBatch, RowBatch, RowSchema, TokenBatch};
pub use deadletter::{DeadLetter, Reason};
pub use message::{Epoch, StreamMessage};
pub use operator::{
    BatchSender, BoxFuture, DeadLetterSink, Emitter, EpochPlan, Operator, OperatorError, Sink,
    Source,
};
pub use rows::{ResultRow, RowIter, RowRef, Rows};
pub use state_segment::{SegmentData, StateSegment};
pub use watermark::WatermarkTracker;
pub use window::{SlidingWindows, Window};

/// Event time: milliseconds since the Unix epoch, UTC.
pub type EventTime = i64;
