//! The traits components implement. Only [`Operator::process_batch`] is required; control
//! signals have default behaviour, so a stateless map needs one method.

use crate::state_segment::{SegmentData, StateSegment};
use crate::{Batch, DeadLetter, Epoch, EventTime};

/// A failure of a component. The runtime stops (or restarts) the stage that returned it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OperatorError(pub String);

impl OperatorError {
    pub fn new(msg: impl Into<String>) -> Self {
        OperatorError(msg.into())
    }
}

impl From<std::io::Error> for OperatorError {
    fn from(e: std::io::Error) -> Self {
        OperatorError(e.to_string())
    }
}

/// Where an operator puts what it produces while handling one message.
#[derive(Debug, Default)]
pub struct Emitter {
    pub batches: Vec<Batch>,
    pub watermark: Option<EventTime>,
    /// A partitioned source's event-time frontier, passed on (see [`Operator::on_frontier`]).
    pub frontier: Option<EventTime>,
    pub dead_letters: Vec<DeadLetter>,
}

impl Emitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a batch downstream.
    pub fn emit(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.batches.push(batch);
        }
    }

    /// Announces a watermark downstream (after the batches emitted so far).
    pub fn watermark(&mut self, t: EventTime) {
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
    }

    /// Passes a partitioned source's event-time frontier downstream.
    pub fn frontier(&mut self, t: EventTime) {
        self.frontier = Some(t);
    }

    /// Sets a record aside with its reason.
    pub fn dead_letter(&mut self, d: DeadLetter) {
        self.dead_letters.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
            && self.watermark.is_none()
            && self.frontier.is_none()
            && self.dead_letters.is_empty()
    }
}

/// About how many rows an operator emits at a time when a barrier closes more than that
/// ([`Operator::emit_more`]): ~3 MB of result rows, so a mailbox of 8 holds ~25 MB.
pub const OUTPUT_PART_ROWS: usize = 65_536;

/// A pipeline stage between sources and sinks: parser, tokenizer, aggregation...
///
/// ```
/// use trendflow_core::{Batch, Emitter, Operator, OperatorError};
///
/// /// Passes batches through unchanged.
/// struct Identity;
/// impl Operator for Identity {
///     fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
///         out.emit(batch);
///         Ok(())
///     }
/// }
/// ```
pub trait Operator: Send + 'static {
    /// Handles one batch of records.
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError>;

    /// All of epoch `epoch`'s input has been processed. Stateful operators emit what the
    /// epoch completes here. The runtime forwards the barrier afterwards.
    fn on_barrier(&mut self, _epoch: Epoch, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The rest of a large output that [`Self::on_barrier`] began: emits the next part, about
    /// `max_rows` rows, and returns whether more remains. The runtime calls it after
    /// `on_barrier` until it returns false, sending each part downstream (and waiting for room
    /// in the next mailboxes) before asking for the next, then takes the checkpoint and
    /// forwards the barrier. So an epoch that closes millions of windows is never held whole:
    /// the operator, the mailboxes and the sinks each hold a part at a time.
    fn emit_more(&mut self, _max_rows: usize, _out: &mut Emitter) -> Result<bool, OperatorError> {
        Ok(false)
    }

    /// A watermark from upstream. By default it is passed on.
    fn on_watermark(
        &mut self,
        watermark: EventTime,
        out: &mut Emitter,
    ) -> Result<(), OperatorError> {
        out.watermark(watermark);
        Ok(())
    }

    /// The event time every active partition of a partitioned source has reached (the
    /// minimum over its inputs). Stateless operators pass it on; a windowed aggregation
    /// keeps its watermark from passing it (less the delay).
    fn on_frontier(&mut self, frontier: EventTime, out: &mut Emitter) -> Result<(), OperatorError> {
        out.frontier(frontier);
        Ok(())
    }

    /// The input ended. The runtime forwards the end afterwards.
    fn on_end(&mut self, _out: &mut Emitter) -> Result<(), OperatorError> {
        Ok(())
    }

    /// Figures to show about this operator's state (rows, bytes...), for progress reports.
    fn state_rows(&self) -> usize {
        0
    }

    /// What this component's checkpointed state is: `Some` for a stateful component, naming
    /// its kind and every parameter that shapes the state (window size, slide, key...). A
    /// checkpoint is restored only into a component with the same signature.
    fn state_signature(&self) -> Option<String> {
        None
    }

    /// Its state after the current barrier, for a checkpoint (stateful components only).
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        Ok(Vec::new())
    }

    /// Puts back a state taken by [`Self::snapshot`] before any input arrives.
    fn restore(&mut self, _state: &[u8]) -> Result<(), OperatorError> {
        Ok(())
    }

    /// As [`Sink::snapshot_segments`]: the state segments the last snapshot refers to.
    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        Ok(Vec::new())
    }

    /// As [`Sink::restore_with_segments`].
    fn restore_with_segments(
        &mut self,
        state: &[u8],
        _segments: SegmentData,
    ) -> Result<(), OperatorError> {
        self.restore(state)
    }
}

/// The end of a branch: writes batches somewhere.
pub trait Sink: Send + 'static {
    /// Receives a batch of the current epoch.
    fn write(&mut self, batch: &Batch) -> Result<(), OperatorError>;

    /// Epoch `epoch` is complete: make its output visible.
    fn commit(&mut self, _epoch: Epoch) -> Result<(), OperatorError> {
        Ok(())
    }

    /// A watermark reached the sink.
    fn on_watermark(&mut self, _watermark: EventTime) {}

    /// The stream ended: flush and close.
    fn finish(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }

    /// A sink's state is what it has committed (a file's length, a table's rows), so that a
    /// restart from a checkpoint first takes back output of epochs after it.
    /// What this component's checkpointed state is: `Some` for a stateful component, naming
    /// its kind and every parameter that shapes the state (window size, slide, key...). A
    /// checkpoint is restored only into a component with the same signature.
    fn state_signature(&self) -> Option<String> {
        None
    }

    /// Its state after the current barrier, for a checkpoint (stateful components only).
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        Ok(Vec::new())
    }

    /// Puts back a state taken by [`Self::snapshot`] before any input arrives.
    fn restore(&mut self, _state: &[u8]) -> Result<(), OperatorError> {
        Ok(())
    }

    /// The segments the state of the last [`Self::snapshot`] refers to
    /// ([`crate::state_segment`]): each with its bytes the first time it is listed, by name
    /// after that. The runtime calls it right after `snapshot`, with nothing in between, and
    /// components may rely on it (the snapshot names the segments this call hands over). Most
    /// sinks keep their whole state in the snapshot and list none.
    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        Ok(Vec::new())
    }

    /// [`Self::restore`] for a state whose snapshot listed segments: their bytes, by name.
    fn restore_with_segments(
        &mut self,
        state: &[u8],
        _segments: SegmentData,
    ) -> Result<(), OperatorError> {
        self.restore(state)
    }
}

/// A boxed future, as returned by the async methods of [`Source`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where a source sends its batches. Sending waits while the next stage's mailbox is full:
/// that wait is the pipeline's backpressure.
pub trait BatchSender: Send {
    fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>>;
    /// Sets records aside (unreadable input).
    fn dead_letter(&mut self, letter: DeadLetter) -> BoxFuture<'_, Result<(), OperatorError>>;

    /// For a partitioned source (Kafka): the event time every active partition has reached
    /// (the minimum over partitions of each one's maximum event time, idle partitions left
    /// out), sent after the epoch's data. The watermark (that time less the delay) never
    /// passes it, so one lagging partition holds windows open instead of having its rows
    /// dropped as late. Unpartitioned sources never call it.
    fn event_time_frontier(
        &mut self,
        _frontier: EventTime,
    ) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What a source will read in its next epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochPlan {
    /// This input, described so that [`Source::read_epoch`] can read exactly it again after a
    /// crash (file names, partition offsets...). The runtime records it before reading.
    Input(Vec<u8>),
    /// Nothing new this time; the stream goes on.
    Idle,
    /// A bounded source has nothing more to read.
    Exhausted,
}

/// The start of a pipeline: reads input one epoch at a time, in two steps so that an epoch's
/// input can be recorded before it is read and read again identically after a crash.
pub trait Source: Send + 'static {
    /// Chooses the next epoch's input, without reading it. Called once per trigger.
    fn plan_epoch(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>>;

    /// Reads and sends an input chosen by [`Self::plan_epoch`], now or before a restart.
    fn read_epoch<'a>(
        &'a mut self,
        epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>>;

    /// Every sink has committed `epoch` and its checkpoint is durable: input of that epoch may
    /// now be cleaned up.
    fn on_commit(&mut self, _epoch: Epoch) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async { Ok(()) })
    }

    /// A short description of the input position, for progress reports.
    fn describe_offset(&self) -> String {
        String::new()
    }
    /// What this component's checkpointed state is: `Some` for a stateful component, naming
    /// its kind and every parameter that shapes the state (window size, slide, key...). A
    /// checkpoint is restored only into a component with the same signature.
    fn state_signature(&self) -> Option<String> {
        None
    }

    /// Its state after the current barrier, for a checkpoint (stateful components only).
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        Ok(Vec::new())
    }

    /// Puts back a state taken by [`Self::snapshot`] before any input arrives.
    fn restore(&mut self, _state: &[u8]) -> Result<(), OperatorError> {
        Ok(())
    }

    /// As [`Sink::snapshot_segments`]: the state segments the last snapshot refers to.
    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        Ok(Vec::new())
    }

    /// As [`Sink::restore_with_segments`].
    fn restore_with_segments(
        &mut self,
        state: &[u8],
        _segments: SegmentData,
    ) -> Result<(), OperatorError> {
        self.restore(state)
    }
}

/// Where dead letters end up (a file, a topic). Only real failures are written; blank lines and
/// stream control messages are counted only.
pub trait DeadLetterSink: Send + 'static {
    fn write(&mut self, letters: &[DeadLetter]) -> Result<(), OperatorError>;
    fn flush(&mut self) -> Result<(), OperatorError> {
        Ok(())
    }
}
