//! Kafka for trendflow: a source that reads topics in epochs of offset ranges, replayable
//! exactly after a crash, with a per-partition event-time frontier; and a sink that writes
//! result rows as JSON records through an idempotent producer. See docs/kafka.md.
//!
//! Built on librdkafka (through `rdkafka`), compiled from its bundled source. `testkit`
//! starts librdkafka's in-process mock cluster for tests.

mod cluster;
pub mod frontier;
pub mod plan;
mod reader;
pub mod sink;
pub mod source;
pub mod testkit;

pub use frontier::{PartitionClock, PartitionFrontier};
pub use plan::{EpochInput, PartitionRange, TopicPartition};
pub use sink::{EPOCH_HEADER, KafkaSink, KafkaSinkOptions, KeyFormat};
pub use source::{EventTimeExtractor, KafkaSource, KafkaSourceOptions, StartingOffsets};
