//! What actors report to the pipeline runner: epochs read and committed, ends and failures.

use trendflow_core::{Epoch, EventTime};

#[derive(Debug, Clone)]
pub enum RuntimeEvent {
    /// A source finished sending an epoch.
    EpochRead {
        source: String,
        epoch: Epoch,
        records: u64,
        bytes: u64,
        /// Of `read_ms`, the time spent planning the epoch (listing new input, logging its
        /// offsets).
        plan_ms: f64,
        read_ms: f64,
        offset: String,
    },
    /// An operator announced a watermark (at the end of `epoch` when it came with a barrier).
    Watermark {
        component: String,
        watermark: EventTime,
        epoch: Option<Epoch>,
    },
    /// A sink made an epoch's output visible.
    SinkCommitted { sink: String, epoch: Epoch },
    /// A sink received the end of its stream and closed.
    SinkFinished { sink: String },
    /// A source ended (bounded input exhausted, or stopped).
    SourceFinished { source: String },
    /// A stateful component's state after the barrier of `epoch`, for its checkpoint, with
    /// the bytes of the state segments it lists for the first time (name, bytes).
    Snapshot {
        epoch: Epoch,
        state: crate::checkpoint::ComponentState,
        new_segments: Vec<(String, Vec<u8>)>,
    },
    /// The checkpoint store failed (a full disk...): restarting would not help; the
    /// pipeline stops with its last complete checkpoint.
    CheckpointFailed { error: String },
    /// A component failed; the pipeline stops. `epoch`: the epoch whose data it was handling,
    /// when known (epochs run ahead of commits, so it may be later than the first epoch not
    /// committed; the supervisor needs the right one to isolate a poisoned record).
    Failed {
        component: String,
        error: String,
        epoch: Option<Epoch>,
    },
}

/// One committed epoch, as the runner logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochSummary {
    pub epoch: Epoch,
    pub records: u64,
    pub bytes: u64,
    /// From the start of the epoch's read to its checkpoint.
    pub duration_ms: f64,
    pub watermark: Option<EventTime>,
    /// Wall-clock start of the epoch (ms since the Unix epoch).
    pub started_ms: i64,
    /// Time the sources took to plan it (list, log offsets; part of `read_ms`), to read it,
    /// and to write its checkpoint.
    pub plan_ms: f64,
    pub read_ms: f64,
    pub checkpoint_ms: f64,
    /// Where each source stood after it: (source, description).
    pub offsets: Vec<(String, String)>,
}

/// The message of a panic caught by kameo, for the `Failed` event.
pub(crate) fn panic_message(err: &kameo::error::PanicError) -> String {
    let msg = err
        .with_str(|s| s.to_string())
        .unwrap_or_else(|| err.to_string());
    format!("panicked: {msg}")
}
