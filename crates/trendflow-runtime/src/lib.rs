//! The trendflow runtime: runs a pipeline graph as actors (kameo) connected by bounded
//! mailboxes. A full mailbox makes the sender wait, so a slow sink slows the source instead of
//! filling memory.
//!
//! The runtime knows [`trendflow_core`]'s traits only: which sources, operators and sinks run
//! is decided by whoever builds the [`PipelineGraph`] (the config crate, or a test).

pub mod checkpoint;
mod dead_letters;
mod events;
mod graph;
mod outputs;
mod run;
mod source_actor;
mod stage_actor;
mod supervisor;

pub use events::{EpochSummary, RuntimeEvent};
pub use graph::{
    GraphError, NodeBody, NodeSpec, OperatorFactory, PipelineGraph, SourceOptions, Trigger,
};
pub use run::{PipelineError, Resume, RunReport, RunningPipeline};
pub use supervisor::{GraphBuilder, RestartPolicy, StopHandle, Supervisor};
