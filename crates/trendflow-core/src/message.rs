//! What travels between stages: data and control signals in one ordered stream, so a
//! barrier or watermark can never overtake the data it describes.

use crate::{Batch, EventTime};

/// A micro-batch number. Spark calls it a batch id; every trigger is one epoch.
pub type Epoch = u64;

/// One message on an edge of the pipeline.
#[derive(Debug, Clone)]
pub enum StreamMessage {
    /// Records.
    Data(Batch),
    /// Event time up to which the stream is complete (after the sender's delay).
    Watermark(EventTime),
    /// From a partitioned source (Kafka), after an epoch's data: the event time every active
    /// partition has reached (before the watermark's delay). Watermarks never pass it.
    Frontier(EventTime),
    /// Everything of epoch N has been sent before this barrier.
    Barrier(Epoch),
    /// The sender will send nothing more.
    EndOfStream,
}
