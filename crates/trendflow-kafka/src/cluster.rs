//! The source's questions to the cluster: which partitions the subscription covers, and the
//! earliest and latest offset of each. librdkafka's calls block, so the source runs them on
//! tokio's blocking threads ([`blocking`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use regex::Regex;
use trendflow_core::OperatorError;

use crate::plan::TopicPartition;

/// The source's consumer. It never joins a group: partitions are assigned by hand, at the
/// offsets the plan says.
pub(crate) type SourceConsumer = BaseConsumer<SourceContext>;

/// Logs the outcome of the offset commits made for monitoring.
pub(crate) struct SourceContext {
    pub component: String,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(
                component = %self.component,
                partitions = offsets.count(),
                error = %e,
                "kafka source: committing offsets to the consumer group failed (they serve \
                 monitoring only; trendflow's checkpoint is unaffected)"
            );
        }
    }
}

/// The topics a source reads.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    Topics(Vec<String>),
    /// Every topic whose name matches, internal topics (`__consumer_offsets`...) excepted.
    Pattern(Regex),
}

impl Subscription {
    /// How the subscription is named in the state signature.
    pub fn describe(&self) -> String {
        match self {
            Subscription::Topics(t) => format!("topics={}", t.join(",")),
            Subscription::Pattern(p) => format!("pattern={}", p.as_str()),
        }
    }

    fn covers(&self, topic: &str) -> bool {
        match self {
            Subscription::Topics(t) => t.iter().any(|name| name == topic),
            Subscription::Pattern(p) => !topic.starts_with("__") && p.is_match(topic),
        }
    }
}

/// The earliest and latest offsets of a partition: records are at `low..high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermarks {
    pub low: i64,
    pub high: i64,
}

/// Runs a blocking librdkafka call on tokio's blocking threads, so it holds up neither the
/// runtime's workers nor (in tests) a single-threaded runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OperatorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OperatorError::new(format!("kafka: a blocking call failed: {e}")))
}

/// Calls `op` until it succeeds or `timeout` has passed, backing off between tries: brokers
/// restart, leaders move, and librdkafka reports such passing states as errors.
pub(crate) fn retrying<T>(
    what: &str,
    timeout: Duration,
    mut op: impl FnMut(Duration) -> KafkaResult<T>,
) -> KafkaResult<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match op(left.max(Duration::from_millis(100))) {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "kafka: {what} failed; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The partitions of every topic the subscription covers, sorted. A named topic that does not
/// exist (yet) has none; a topic whose metadata has another error fails the call.
pub(crate) fn list_partitions(
    consumer: &SourceConsumer,
    subscription: &Subscription,
    timeout: Duration,
) -> KafkaResult<Vec<TopicPartition>> {
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut partitions = Vec::new();
    for topic in metadata.topics() {
        if !subscription.covers(topic.name()) {
            continue;
        }
        match topic.error() {
            None => {}
            // A named topic that does not exist (yet): no partitions.
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => continue,
            // A leader election and the like: asked again (`retrying`), rather than planning
            // an epoch without the topic.
            Some(e) => {
                return Err(KafkaError::MetadataFetch(e.into()));
            }
        }
        for p in topic.partitions() {
            partitions.push(TopicPartition::new(topic.name(), p.id()));
        }
    }
    partitions.sort();
    Ok(partitions)
}

/// The earliest and latest offsets of `partitions`, in two requests per broker whatever their
/// number (a ListOffsets query for timestamps -2 and -1). The latest offset is the high
/// watermark, or the last stable offset under `isolation.level=read_committed` (librdkafka's
/// default): records past it are not readable yet.
pub(crate) fn query_watermarks(
    consumer: &SourceConsumer,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> KafkaResult<BTreeMap<TopicPartition, Watermarks>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let query = |at: Offset| -> KafkaResult<BTreeMap<TopicPartition, i64>> {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for p in partitions {
            tpl.add_partition_offset(&p.topic, p.partition, at)?;
        }
        let answer = consumer.offsets_for_times(tpl, timeout)?;
        let mut offsets = BTreeMap::new();
        for e in answer.elements() {
            e.error()?;
            let Offset::Offset(o) = e.offset() else {
                return Err(KafkaError::OffsetFetch(
                    rdkafka::types::RDKafkaErrorCode::OffsetNotAvailable,
                ));
            };
            offsets.insert(TopicPartition::new(e.topic(), e.partition()), o);
        }
        Ok(offsets)
    };
    let low = query(Offset::Beginning)?;
    let high = query(Offset::End)?;
    let mut marks = BTreeMap::new();
    for p in partitions {
        let (Some(&low), Some(&high)) = (low.get(p), high.get(p)) else {
            return Err(KafkaError::OffsetFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownPartition,
            ));
        };
        marks.insert(p.clone(), Watermarks { low, high });
    }
    Ok(marks)
}

/// The earliest and latest offsets of one partition (while reading it, after an offset went
/// out of range).
pub(crate) fn partition_watermarks(
    consumer: &Arc<SourceConsumer>,
    partition: &TopicPartition,
    timeout: Duration,
) -> KafkaResult<Watermarks> {
    retrying("querying offsets", timeout, |left| {
        consumer
            .fetch_watermarks(&partition.topic, partition.partition, left)
            .map(|(low, high)| Watermarks { low, high })
    })
}
