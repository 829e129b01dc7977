//! Test infrastructure: librdkafka's mock cluster (real Kafka protocol listeners on
//! 127.0.0.1, in this process), a generated stream of posts to produce to it, a reader of
//! whole topics, and a [`BatchSender`] that collects what a source sends.
//!
//! None of this is used by trendflow itself. It is public, rather than `#[cfg(test)]`, so that
//! end-to-end tests elsewhere (the workspace's `tests/`) share it. The mock cluster's
//! listeners serve other processes too (`tests/cross_process.rs` checks it): a test can keep a
//! [`MockKafka`] alive and run `trendflow` against its [`MockKafka::bootstrap_servers`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use trendflow_core::time::{format_created_at, parse_created_at};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, DeadLetter, Epoch, EpochPlan, EventTime, OperatorError,
    RawBatch, Source,
};

use crate::sink::DeliveryTracker;
use crate::source::{EventTimeExtractor, KafkaSource};

/// How long the testkit waits for the mock cluster before it panics (a broken test, not a
/// timing assertion: the mock answers in milliseconds).
const PATIENCE: Duration = Duration::from_secs(60);

/// A mock Kafka cluster of librdkafka, alive as long as this value, with a producer to fill
/// its topics.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap_servers: String,
    producer: BaseProducer<DeliveryTracker>,
}

/// One record to produce: to a partition, with a payload or none (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub partition: i32,
    pub payload: Option<Vec<u8>>,
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl MockKafka {
    /// Starts a cluster of `brokers` brokers (ids 1..=brokers).
    pub fn start(brokers: i32) -> Self {
        let cluster = MockCluster::new(brokers).expect("starting librdkafka's mock cluster");
        let bootstrap_servers = cluster.bootstrap_servers();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .create_with_context(DeliveryTracker::default())
            .expect("creating the testkit's producer");
        MockKafka {
            cluster,
            bootstrap_servers,
            producer,
        }
    }

    /// `host:port,...` of the brokers, reachable from any process on this machine.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The mock cluster, to inject faults (`request_errors`, `broker_down`,
    /// `partition_leader`...).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.cluster
            .create_topic(topic, partitions, 1)
            .expect("creating a topic on the mock cluster");
    }

    /// Produces the records, in order, and waits until every one is acknowledged.
    pub fn produce(&self, topic: &str, records: impl IntoIterator<Item = TestRecord>) {
        for r in records {
            let mut record = BaseRecord::<[u8], [u8]>::to(topic).partition(r.partition);
            if let Some(p) = &r.payload {
                record = record.payload(p);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => panic!("producing to {topic}: {e}"),
                }
            }
        }
        self.producer
            .flush(PATIENCE)
            .expect("flushing the producer");
        let (_, failed, first) = self.producer.context().take();
        assert_eq!(failed, 0, "records not delivered to {topic}: {first:?}");
    }

    fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", "trendflow-testkit")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config.create().expect("creating a testkit consumer")
    }

    /// The earliest and latest offsets of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.consumer(&[])
            .fetch_watermarks(topic, partition, PATIENCE)
            .expect("querying watermarks")
    }

    /// Every record of every partition of `topic`, sorted by partition and offset.
    pub fn read_topic(&self, topic: &str) -> Vec<ConsumedRecord> {
        let consumer = self.consumer(&[]);
        let metadata = consumer
            .fetch_metadata(Some(topic), PATIENCE)
            .expect("fetching metadata");
        let mut tpl = TopicPartitionList::new();
        let mut pending = BTreeMap::new();
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), PATIENCE)
                    .expect("querying watermarks");
                if high > low {
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
                        .expect("adding a partition");
                    pending.insert(p.id(), high);
                }
            }
        }
        let mut records = Vec::new();
        if pending.is_empty() {
            return records;
        }
        consumer.assign(&tpl).expect("assigning partitions");
        let deadline = Instant::now() + PATIENCE;
        while !pending.is_empty() {
            assert!(Instant::now() < deadline, "reading {topic} took too long");
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(m)) => {
                    if m.offset() + 1 >= pending.get(&m.partition()).copied().unwrap_or(0) {
                        pending.remove(&m.partition());
                    }
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    records.push(ConsumedRecord {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
            }
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }
}

/// A generated post, as produced to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPost {
    pub partition: i32,
    pub event_time: EventTime,
    /// A Twitter v1.1 status as JSON: `created_at`, `id_str`, `text` with a hashtag. Every
    /// fifth one is pretty-printed over several lines ('\n' and "\r\n" between fields), as
    /// producers that indent their JSON write it.
    pub payload: Vec<u8>,
}

/// `count` posts spread round-robin over `partitions`, the n-th at `start_ms + n × step_ms`.
pub fn generate_posts(
    count: usize,
    partitions: i32,
    start_ms: EventTime,
    step_ms: i64,
) -> Vec<GeneratedPost> {
    (0..count)
        .map(|n| {
            let event_time = start_ms + n as i64 * step_ms;
            let created_at = format_created_at(event_time);
            let text = format!("#tag{} post {n} of the generated stream", n % 7);
            let separator = if n % 5 == 4 { ",\n" } else { "," };
            let payload = format!(
                "{{\"created_at\":\"{created_at}\"{separator}\"id_str\":\"{n}\"{}\"text\":\"{text}\"}}",
                if n % 5 == 4 { ",\r\n" } else { "," }
            );
            GeneratedPost {
                partition: (n % partitions as usize) as i32,
                event_time,
                payload: payload.into_bytes(),
            }
        })
        .collect()
}

impl GeneratedPost {
    pub fn record(&self) -> TestRecord {
        TestRecord {
            partition: self.partition,
            payload: Some(self.payload.clone()),
        }
    }

    /// The payload as the source sends it: one line.
    pub fn line(&self) -> Vec<u8> {
        self.payload
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect()
    }
}

/// Reads a generated post's `created_at` (Twitter's format): the event time extractor tests
/// give the source.
pub fn created_at_event_time() -> EventTimeExtractor {
    Arc::new(|payload: &[u8]| {
        let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
        parse_created_at(value.get("created_at")?.as_str()?).ok()
    })
}

/// A record a source sent, located by its batch's origin and line number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CollectedRecord {
    /// `kafka:topic/partition`.
    pub origin: String,
    /// The line number less one, which for the Kafka source is the record's offset.
    pub offset: i64,
    /// The line, without its '\n'.
    pub line: Vec<u8>,
}

/// A [`BatchSender`] that keeps what it is sent.
#[derive(Debug, Default)]
pub struct CollectingSender {
    pub batches: Vec<Arc<RawBatch>>,
    pub frontiers: Vec<EventTime>,
    pub dead_letters: Vec<DeadLetter>,
}

impl CollectingSender {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every line received, in the order received, with the position its batch gives it.
    pub fn records(&self) -> Vec<CollectedRecord> {
        let mut out = Vec::new();
        for b in &self.batches {
            let lines = b.data.strip_suffix(b"\n").unwrap_or(&b.data);
            let lines: Vec<&[u8]> = lines.split(|&c| c == b'\n').collect();
            assert_eq!(lines.len(), b.lines, "a batch's line count is wrong");
            for (i, line) in lines.into_iter().enumerate() {
                out.push(CollectedRecord {
                    origin: b.origin.to_string(),
                    offset: (b.first_line + i as u64) as i64 - 1,
                    line: line.to_vec(),
                });
            }
        }
        out
    }
}

impl BatchSender for CollectingSender {
    fn send(&mut self, batch: Batch) -> BoxFuture<'_, Result<(), OperatorError>> {
        if let Batch::Raw(raw) = batch {
            self.batches.push(raw);
        }
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(&mut self, letter: DeadLetter) -> BoxFuture<'_, Result<(), OperatorError>> {
        self.dead_letters.push(letter);
        Box::pin(async { Ok(()) })
    }

    fn event_time_frontier(
        &mut self,
        frontier: EventTime,
    ) -> BoxFuture<'_, Result<(), OperatorError>> {
        self.frontiers.push(frontier);
        Box::pin(async { Ok(()) })
    }
}

/// Plans and reads epochs from `first_epoch` on, as the runtime does, until a plan is idle;
/// returns the plans of the epochs read.
pub async fn read_until_idle(
    source: &mut KafkaSource,
    first_epoch: Epoch,
    out: &mut CollectingSender,
) -> Result<Vec<(Epoch, Vec<u8>)>, OperatorError> {
    let mut plans = Vec::new();
    let mut epoch = first_epoch;
    loop {
        match source.plan_epoch(epoch).await? {
            EpochPlan::Input(plan) => {
                source.read_epoch(epoch, &plan, out).await?;
                plans.push((epoch, plan));
                epoch += 1;
            }
            EpochPlan::Idle | EpochPlan::Exhausted => return Ok(plans),
        }
    }
}
