//! The Kafka source: the records of a set of topics (named, or matching a pattern), read in
//! epochs of offset ranges, as Spark's Kafka source reads them.
//!
//! Each epoch is planned from the partitions' offsets: a partition's range starts where the
//! previous epoch's ended and ends at its latest offset, capped by `max_offsets_per_trigger`.
//! The plan (ranges, and which partitions are idle) is what the runtime records in its offset
//! log, so a replay after a crash reads the very same records. The next offset of every
//! partition is part of the source's checkpointed state, and that state is the truth: the
//! offsets committed to a consumer group serve lag dashboards only.
//!
//! With `bounded` (the `available_now` trigger) the first plan of a run takes every
//! partition's latest offset as where the run ends; epochs read up to there, then the source
//! is exhausted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use regex::Regex;
use trendflow_core::codec::{DecodeError, StateReader, StateWriter};
use trendflow_core::metrics::{Counter, Metrics, names};
use trendflow_core::{
    Batch, BatchSender, BoxFuture, Epoch, EpochPlan, EventTime, OperatorError, Source,
};

use crate::cluster::{
    SourceConsumer, SourceContext, Subscription, Watermarks, blocking, list_partitions,
    query_watermarks, retrying,
};
use crate::frontier::{PartitionClock, PartitionFrontier};
use crate::plan::{EpochInput, PartitionRange, TopicPartition, cap_ranges};
use crate::reader::{PartitionReader, ReadError, ReadSettings};

/// Reads a record's event time (ms since 1970) from its payload; `None` when it has none.
pub type EventTimeExtractor = Arc<dyn Fn(&[u8]) -> Option<EventTime> + Send + Sync>;

/// Where a source starts reading partitions it has no checkpointed offset for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StartingOffsets {
    /// The earliest offset still in the partition.
    Earliest,
    /// The partition's end: only records produced after the first epoch (Spark's default).
    #[default]
    Latest,
    /// An offset per topic and partition; -2 means earliest, -1 latest. Partitions not
    /// listed start at the earliest offset.
    PerPartition(BTreeMap<String, BTreeMap<i32, i64>>),
}

/// The options of a Kafka source. Each field is the YAML key of the same name.
#[derive(Clone)]
pub struct KafkaSourceOptions {
    /// `host:port,host:port`: the brokers to ask for the cluster's metadata.
    pub bootstrap_servers: String,
    /// The topics to read. Exactly one of `topics` and `topic_pattern` is set.
    pub topics: Vec<String>,
    /// Read every topic whose name matches this regular expression (librdkafka's
    /// subscription syntax, e.g. `^posts-.*`; internal topics `__*` excepted). Topics created
    /// later are picked up at the next epoch, from their earliest offset.
    pub topic_pattern: Option<String>,
    /// Read only these partition numbers (of every topic read). `None`: all. A scale-out
    /// worker runs one pipeline per partition it owns (docs/scale-out.md).
    pub partitions: Option<Vec<i32>>,
    /// A consumer group to commit offsets to once every sink has committed an epoch, so that
    /// lag dashboards and tools (`kafka-consumer-groups`) see the source's progress. Only for
    /// monitoring: the source reads from its checkpoint, never from the group, and never joins
    /// it (use a group no other consumer uses). `None`: nothing is committed.
    pub group_id: Option<String>,
    /// Where partitions without a checkpointed offset start (only at the first epoch of a
    /// pipeline without checkpoint; partitions appearing later start at the earliest offset).
    pub starting_offsets: StartingOffsets,
    /// At most about this many offsets per epoch over all partitions, shared in proportion
    /// to each partition's backlog (Spark's `maxOffsetsPerTrigger`). `None`: everything new.
    pub max_offsets_per_trigger: Option<u64>,
    /// When offsets the source has to read are gone (deleted by retention or compaction
    /// before being read): `true` fails the epoch with an error naming them; `false` skips
    /// to the earliest offset still there, logs a warning and counts the skipped offsets in
    /// `trendflow_kafka_offsets_lost_total`.
    pub fail_on_data_loss: bool,
    /// A partition without new records for this long is idle: left out of the event-time
    /// frontier, so it does not hold the watermark back. `None`: never idle (a silent
    /// partition holds windows open until it delivers again).
    pub idle_timeout: Option<Duration>,
    /// How long the source waits for the cluster (an answer to a metadata or offset query, or
    /// the next record of a range it is reading) before failing the epoch. librdkafka retries
    /// in the meantime (reconnects, leader changes).
    pub poll_timeout: Duration,
    /// Raw batches are cut near this size.
    pub batch_bytes: usize,
    /// librdkafka consumer properties, passed as they are (`security.protocol`,
    /// `isolation.level`, `fetch.max.bytes`...). The properties the source sets itself
    /// (`bootstrap.servers`, `group.id`, `enable.auto.commit`, `enable.auto.offset.store`,
    /// `enable.partition.eof`, `auto.offset.reset`) are refused here.
    pub extra: BTreeMap<String, String>,
    /// Reads a record's event time (supplied by the pipeline builder, from the parser's
    /// settings). With it, the source tracks each partition's greatest event time and sends
    /// the event-time frontier after each epoch's data.
    pub event_time: Option<EventTimeExtractor>,
    /// Read what is available when the run starts, then stop (set by the pipeline builder
    /// when the trigger is `available_now`, like the file source's `bounded`; not a YAML
    /// key). The first plan of a run (after any restore) takes every partition's latest
    /// offset as the run's end; epochs read up to those ends (in as many epochs as
    /// `max_offsets_per_trigger` requires), partitions appearing later are not read, and once
    /// every partition has reached its end the source is exhausted. The ends are not
    /// checkpointed: a restarted run takes them again, and reads what is available then.
    pub bounded: bool,
}

impl Default for KafkaSourceOptions {
    fn default() -> Self {
        KafkaSourceOptions {
            bootstrap_servers: String::new(),
            topics: Vec::new(),
            topic_pattern: None,
            partitions: None,
            group_id: None,
            starting_offsets: StartingOffsets::default(),
            max_offsets_per_trigger: None,
            fail_on_data_loss: true,
            idle_timeout: None,
            poll_timeout: Duration::from_secs(120),
            batch_bytes: 1 << 20,
            extra: BTreeMap::new(),
            event_time: None,
            bounded: false,
        }
    }
}

impl std::fmt::Debug for KafkaSourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSourceOptions")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topics", &self.topics)
            .field("topic_pattern", &self.topic_pattern)
            .field("partitions", &self.partitions)
            .field("group_id", &self.group_id)
            .field("starting_offsets", &self.starting_offsets)
            .field("max_offsets_per_trigger", &self.max_offsets_per_trigger)
            .field("fail_on_data_loss", &self.fail_on_data_loss)
            .field("idle_timeout", &self.idle_timeout)
            .field("poll_timeout", &self.poll_timeout)
            .field("batch_bytes", &self.batch_bytes)
            .field("extra", &self.extra)
            .field(
                "event_time",
                &self.event_time.as_ref().map(|_| "<extractor>"),
            )
            .field("bounded", &self.bounded)
            .finish()
    }
}

/// Consumer properties the source sets itself; `extra` may not change them.
const SOURCE_OWNED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
    "auto.offset.reset",
];

/// Format of the source's checkpointed state.
const STATE_VERSION: u64 = 1;

/// The Kafka source.
pub struct KafkaSource {
    options: KafkaSourceOptions,
    component: String,
    subscription: Subscription,
    config: ClientConfig,
    /// Created at the first epoch, so that building a pipeline (`validate`) connects nowhere.
    consumer: Option<Arc<SourceConsumer>>,
    /// The next offset to read of every partition followed.
    next_offsets: BTreeMap<TopicPartition, i64>,
    frontier: PartitionFrontier,
    /// An epoch was planned: partitions seen from now on are new and start at the earliest
    /// offset, not at `starting_offsets`.
    started: bool,
    /// With `bounded`: where this run stops reading each partition, taken at its first plan.
    /// Not checkpointed (a restarted run takes its own).
    end_offsets: Option<BTreeMap<TopicPartition, i64>>,
    /// The offsets reached by epochs read but not yet committed by every sink (kept only with
    /// a `group_id`, to commit them in `on_commit`).
    uncommitted: BTreeMap<Epoch, Vec<(TopicPartition, i64)>>,
    /// The offsets of a restored checkpoint, committed to `group_id` at the next plan: the
    /// commit of the last epoch before a stop may never have reached the broker (it is sent
    /// without waiting), and a restarted run with nothing new to read commits no epoch, so
    /// the group's lag would stay stale.
    restored_to_commit: Option<Vec<(TopicPartition, i64)>>,
    bytes_in: Counter,
    tombstones: Counter,
    offsets_lost: Counter,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl KafkaSource {
    /// Checks the options; connects to nothing (that happens at the first epoch).
    pub fn new(
        options: KafkaSourceOptions,
        component: &str,
        metrics: &Metrics,
    ) -> Result<Self, OperatorError> {
        let bad = |msg: String| OperatorError::new(format!("kafka source {component}: {msg}"));
        if options.bootstrap_servers.trim().is_empty() {
            return Err(bad("bootstrap_servers is required".into()));
        }
        let subscription = match (&options.topics[..], &options.topic_pattern) {
            ([], Some(p)) => Subscription::Pattern(
                Regex::new(p).map_err(|e| bad(format!("topic_pattern {p:?}: {e}")))?,
            ),
            ([_, ..], None) => Subscription::Topics(options.topics.clone()),
            ([], None) => return Err(bad("give topics or topic_pattern".into())),
            ([_, ..], Some(_)) => {
                return Err(bad("give topics or topic_pattern, not both".into()));
            }
        };
        if options.max_offsets_per_trigger == Some(0) {
            return Err(bad("max_offsets_per_trigger must be at least 1".into()));
        }
        if options.batch_bytes == 0 {
            return Err(bad("batch_bytes must be at least 1".into()));
        }
        if let Some(key) = options
            .extra
            .keys()
            .find(|k| SOURCE_OWNED_PROPERTIES.contains(&k.as_str()))
        {
            return Err(bad(format!(
                "extra property {key} is set by the source itself and cannot be changed"
            )));
        }
        let config = consumer_config(&options, component);
        // Unknown properties and bad values are reported now rather than at the first epoch.
        config
            .create_native_config()
            .map_err(|e| bad(format!("consumer properties: {e}")))?;
        Ok(KafkaSource {
            component: component.to_string(),
            subscription,
            config,
            consumer: None,
            next_offsets: BTreeMap::new(),
            frontier: PartitionFrontier::new(),
            started: false,
            end_offsets: None,
            uncommitted: BTreeMap::new(),
            restored_to_commit: None,
            bytes_in: metrics.counter(names::BYTES_IN, component),
            tombstones: metrics.counter_labeled(
                names::CONTROL_MESSAGES,
                component,
                Some(("kind", "kafka_tombstone".into())),
            ),
            offsets_lost: metrics.counter(names::KAFKA_OFFSETS_LOST, component),
            options,
        })
    }

    /// Commits offsets to `group_id` without waiting: for monitoring only, so a failure is a
    /// warning.
    fn commit_to_group(&self, consumer: &SourceConsumer, offsets: &[(TopicPartition, i64)]) {
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (p, offset) in offsets {
            if let Err(e) = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*offset))
            {
                tracing::warn!(component = %self.component, error = %e, "kafka source: cannot commit offsets");
                return;
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(
                component = %self.component,
                error = %e,
                "kafka source: committing offsets to the consumer group failed (they serve \
                 monitoring only; trendflow's checkpoint is unaffected)"
            );
        }
    }

    fn consumer(&mut self) -> Result<Arc<SourceConsumer>, OperatorError> {
        if let Some(c) = &self.consumer {
            return Ok(c.clone());
        }
        let consumer: SourceConsumer = self
            .config
            .create_with_context(SourceContext {
                component: self.component.clone(),
            })
            .map_err(|e| self.error(format!("creating the consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    fn error(&self, msg: impl std::fmt::Display) -> OperatorError {
        OperatorError::new(format!("kafka source {}: {msg}", self.component))
    }

    /// The next offset to read of every partition the source follows.
    pub fn offsets(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.next_offsets
    }

    /// The clocks of the per-partition event-time frontier.
    pub fn frontier(&self) -> &PartitionFrontier {
        &self.frontier
    }

    /// With `bounded`, once the run's first epoch is planned: the offset where the run stops
    /// reading each partition.
    pub fn end_offsets(&self) -> Option<&BTreeMap<TopicPartition, i64>> {
        self.end_offsets.as_ref()
    }

    /// Where a partition's next range starts: its checkpointed offset, or for a partition
    /// not followed yet `starting_offsets` (first epoch) or the earliest offset (a partition
    /// that appeared later); then checked against what the partition still holds.
    fn range_start(
        &self,
        partition: &TopicPartition,
        marks: Watermarks,
    ) -> Result<i64, OperatorError> {
        let wanted = match self.next_offsets.get(partition) {
            Some(&next) => next,
            None => self.initial_offset(partition, marks),
        };
        if wanted < marks.low {
            let message = format!(
                "offsets {wanted}..{} of {partition} are no longer available (the partition \
                 now holds {}..{}): retention or compaction deleted them before they were read",
                marks.low, marks.low, marks.high
            );
            if self.options.fail_on_data_loss {
                return Err(self.error(format!(
                    "{message}; set fail_on_data_loss: false to skip them"
                )));
            }
            tracing::warn!(component = %self.component, "kafka source: {message}; skipping them (fail_on_data_loss: false)");
            self.offsets_lost.add((marks.low - wanted) as u64);
            return Ok(marks.low);
        }
        if wanted > marks.high {
            let message = format!(
                "{partition} ends at offset {}, before offset {wanted} where the source \
                 stands: the topic was deleted and recreated, or its log truncated",
                marks.high
            );
            if self.options.fail_on_data_loss {
                return Err(self.error(format!(
                    "{message}; set fail_on_data_loss: false to read it again from its \
                     earliest offset"
                )));
            }
            tracing::warn!(component = %self.component, "kafka source: {message}; reading it from its earliest offset {} (fail_on_data_loss: false)", marks.low);
            return Ok(marks.low);
        }
        Ok(wanted)
    }

    /// The ranges of an epoch of an unbounded run: every partition from where it stands to
    /// its latest offset (before the cap), sorted.
    fn streaming_ranges(
        &self,
        marks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> Result<Vec<PartitionRange>, OperatorError> {
        let mut ranges = Vec::with_capacity(marks.len());
        for (partition, marks) in marks {
            let from = self.range_start(partition, *marks)?;
            ranges.push(PartitionRange {
                partition: partition.clone(),
                from,
                until: marks.high.max(from),
                idle: false,
            });
        }
        // A partition followed before but missing now (its topic deleted, or no longer
        // matching the pattern) keeps an empty range: it stays in the frontier until
        // `idle_timeout` makes it idle, as a silent partition would.
        for (partition, &next) in &self.next_offsets {
            if !marks.contains_key(partition) {
                ranges.push(PartitionRange {
                    partition: partition.clone(),
                    from: next,
                    until: next,
                    idle: false,
                });
            }
        }
        ranges.sort_by(|a, b| a.partition.cmp(&b.partition));
        Ok(ranges)
    }

    /// The ranges of an epoch of a bounded run (before the cap), sorted, each with the offset
    /// its partition ends at in this run. The run's first plan takes those ends: every
    /// partition's latest offset now, and for a partition followed before but missing now,
    /// the offset it stands at (it has nothing more to give). Partitions appearing later are
    /// not read. A partition that later ends before its end offset (its log truncated, its
    /// topic deleted or recreated) has its end lowered to what it holds, so that the run
    /// ends: every partition that is not at its end has offsets in its range.
    fn bounded_ranges(
        &mut self,
        marks: &BTreeMap<TopicPartition, Watermarks>,
    ) -> Result<Vec<(PartitionRange, i64)>, OperatorError> {
        let mut ends = match self.end_offsets.take() {
            Some(ends) => ends,
            None => {
                let mut ends: BTreeMap<TopicPartition, i64> =
                    marks.iter().map(|(p, m)| (p.clone(), m.high)).collect();
                for (p, &next) in &self.next_offsets {
                    ends.entry(p.clone()).or_insert(next);
                }
                tracing::info!(
                    component = %self.component,
                    partitions = ends.len(),
                    "kafka source: bounded run: reading every partition up to its latest offset of now"
                );
                ends
            }
        };
        // A partition followed but without an end (only if an epoch recorded by another run
        // was read after this run's first plan) has nothing more to read in this run.
        for (p, &next) in &self.next_offsets {
            ends.entry(p.clone()).or_insert(next);
        }
        let ranges = self.bounded_ranges_to(marks, &mut ends);
        self.end_offsets = Some(ends);
        ranges
    }

    fn bounded_ranges_to(
        &self,
        marks: &BTreeMap<TopicPartition, Watermarks>,
        ends: &mut BTreeMap<TopicPartition, i64>,
    ) -> Result<Vec<(PartitionRange, i64)>, OperatorError> {
        let mut ranges = Vec::with_capacity(ends.len());
        for (partition, end) in ends.iter_mut() {
            let from = match marks.get(partition) {
                Some(m) => {
                    let from = self.range_start(partition, *m)?;
                    if m.high < *end {
                        let message = format!(
                            "{partition} now ends at offset {}, before offset {end} where the \
                             bounded run was to stop reading it: its log was truncated, or the \
                             topic deleted and recreated",
                            m.high
                        );
                        if self.options.fail_on_data_loss {
                            return Err(self.error(format!(
                                "{message}; set fail_on_data_loss: false to stop reading it at \
                                 offset {}",
                                m.high
                            )));
                        }
                        tracing::warn!(component = %self.component, "kafka source: {message}; stopping at offset {} (fail_on_data_loss: false)", m.high);
                        self.offsets_lost.add((*end - m.high) as u64);
                        *end = m.high;
                    }
                    from
                }
                None => {
                    let next = self.next_offsets.get(partition).copied().unwrap_or(*end);
                    if next < *end {
                        tracing::warn!(
                            component = %self.component,
                            "kafka source: {partition} is gone (its topic deleted, or no longer \
                             matching topic_pattern) at offset {next}, before offset {end} where \
                             the bounded run was to stop reading it; stopping at {next}"
                        );
                        *end = next;
                    }
                    next
                }
            };
            ranges.push((
                PartitionRange {
                    partition: partition.clone(),
                    from,
                    until: (*end).max(from),
                    idle: false,
                },
                *end,
            ));
        }
        Ok(ranges)
    }

    fn initial_offset(&self, partition: &TopicPartition, marks: Watermarks) -> i64 {
        let resolve = |offset: i64| match offset {
            -2 => marks.low,
            -1 => marks.high,
            o => o,
        };
        match &self.options.starting_offsets {
            StartingOffsets::PerPartition(map) => map
                .get(&partition.topic)
                .and_then(|m| m.get(&partition.partition))
                .map_or(marks.low, |&o| resolve(o)),
            _ if self.started => marks.low,
            StartingOffsets::Earliest => marks.low,
            StartingOffsets::Latest => marks.high,
        }
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            batch_bytes: self.options.batch_bytes,
            poll_timeout: self.options.poll_timeout,
            fail_on_data_loss: self.options.fail_on_data_loss,
            event_time: self.options.event_time.clone(),
        }
    }

    /// Reads one partition's range and sends its batches.
    async fn read_range(
        &mut self,
        consumer: &Arc<SourceConsumer>,
        range: &PartitionRange,
        out: &mut dyn BatchSender,
    ) -> Result<PartitionReader, OperatorError> {
        let settings = self.read_settings();
        let mut reader = PartitionReader::new(range);
        while !reader.done {
            let (c, s) = (consumer.clone(), settings.clone());
            let (back, read) = blocking(move || {
                let read = reader.read_chunk(&c, &s);
                (reader, read)
            })
            .await?;
            reader = back;
            let batches = read.map_err(|e| match e {
                ReadError::DataLoss(m) => {
                    self.error(format!("{m}; set fail_on_data_loss: false to skip them"))
                }
                ReadError::Kafka(m) => self.error(m),
            })?;
            for b in batches {
                out.send(Batch::Raw(Arc::new(b))).await?;
            }
        }
        Ok(reader)
    }
}

/// The consumer's properties: `extra`, then those the source depends on.
fn consumer_config(options: &KafkaSourceOptions, component: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("client.id", format!("trendflow-{component}"));
    // Partitions are read one after another, and a fetch the broker holds open waiting for
    // new records (up to this long) delays the fetch of the next partition, and the next
    // plan's offset queries: waits are kept short (librdkafka's default is 500 ms).
    config.set("fetch.wait.max.ms", "10");
    for (k, v) in &options.extra {
        config.set(k, v);
    }
    // librdkafka assigns partitions only to a consumer with a group id; without `group_id`
    // the group is a name nothing is committed under.
    let group = options
        .group_id
        .clone()
        .unwrap_or_else(|| format!("trendflow-{component}"));
    config
        .set("bootstrap.servers", &options.bootstrap_servers)
        .set("group.id", group)
        // Offsets are trendflow's: the checkpoint holds them, `on_commit` reports them.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // The end of a partition ends a range whose last offsets hold no record.
        .set("enable.partition.eof", "true")
        // A planned offset that is gone is data loss, reported, never silently reset.
        .set("auto.offset.reset", "error");
    config
}

impl Source for KafkaSource {
    fn plan_epoch(&mut self, _epoch: Epoch) -> BoxFuture<'_, Result<EpochPlan, OperatorError>> {
        Box::pin(async move {
            let consumer = self.consumer()?;
            if let Some(restored) = self.restored_to_commit.take() {
                self.commit_to_group(&consumer, &restored);
            }
            let subscription = self.subscription.clone();
            let only = self.options.partitions.clone();
            let timeout = self.options.poll_timeout;
            let marks = blocking(move || {
                retrying("listing partitions and their offsets", timeout, |left| {
                    let mut partitions = list_partitions(&consumer, &subscription, left)?;
                    if let Some(only) = &only {
                        partitions.retain(|p| only.contains(&p.partition));
                    }
                    query_watermarks(&consumer, &partitions, left)
                })
            })
            .await?
            .map_err(|e| self.error(format!("listing partitions and their offsets: {e}")))?;
            let now = now_ms();
            // With `bounded`, the offset each range's partition ends at in this run.
            let (mut ranges, ends) = if self.options.bounded {
                let (ranges, ends): (Vec<_>, Vec<_>) =
                    self.bounded_ranges(&marks)?.into_iter().unzip();
                (ranges, Some(ends))
            } else {
                (self.streaming_ranges(&marks)?, None)
            };
            if let Some(limit) = self.options.max_offsets_per_trigger {
                cap_ranges(&mut ranges, limit);
            }
            for (i, r) in ranges.iter_mut().enumerate() {
                self.frontier.follow(&r.partition, now);
                r.idle = match &ends {
                    // Read to its end by this epoch, the partition gets nothing more: it
                    // holds nothing back. (A partition with offsets left always has some in
                    // the range, the cap leaving at least one: never idle by timeout.)
                    Some(ends) => r.until >= ends[i],
                    None => self.frontier.is_idle(
                        &r.partition,
                        !r.is_empty(),
                        now,
                        self.options.idle_timeout,
                    ),
                };
                // Where the range starts is settled now (a resolved `latest`, a skip past
                // lost offsets), even if nothing is read this time.
                self.next_offsets.insert(r.partition.clone(), r.from);
            }
            self.started = true;
            let input = EpochInput {
                planned_at_ms: now,
                ranges,
            };
            Ok(if input.has_records() {
                EpochPlan::Input(input.encode())
            } else if self.options.bounded {
                // Every partition has reached its end (a bounded plan leaves no partition
                // with offsets to read out of its ranges).
                tracing::info!(component = %self.component, "kafka source: every partition read up to the end offsets of the run (bounded): exhausted");
                EpochPlan::Exhausted
            } else {
                EpochPlan::Idle
            })
        })
    }

    fn read_epoch<'a>(
        &'a mut self,
        epoch: Epoch,
        input: &'a [u8],
        out: &'a mut dyn BatchSender,
    ) -> BoxFuture<'a, Result<(), OperatorError>> {
        Box::pin(async move {
            let input = EpochInput::decode(input).map_err(|e| {
                self.error(format!(
                    "the input record of epoch {epoch} is unreadable: {e}"
                ))
            })?;
            let consumer = self.consumer()?;
            for range in &input.ranges {
                self.frontier.follow(&range.partition, input.planned_at_ms);
                if range.is_empty() {
                    continue;
                }
                let reader = self.read_range(&consumer, range, out).await?;
                self.bytes_in.add(reader.bytes);
                self.tombstones.add(reader.tombstones);
                self.offsets_lost.add(reader.lost);
                self.frontier
                    .data_arrived(&range.partition, input.planned_at_ms);
                if let Some(t) = reader.max_event_time {
                    self.frontier.observe(&range.partition, t);
                }
            }
            // Stop fetching until the next epoch says where.
            let c = consumer.clone();
            blocking(move || c.unassign())
                .await?
                .map_err(|e| self.error(format!("unassigning partitions: {e}")))?;
            for range in &input.ranges {
                self.next_offsets
                    .insert(range.partition.clone(), range.until.max(range.from));
            }
            self.started = true;
            if self.options.group_id.is_some() {
                let reached = input
                    .ranges
                    .iter()
                    .map(|r| (r.partition.clone(), r.until.max(r.from)))
                    .collect();
                self.uncommitted.insert(epoch, reached);
            }
            if self.options.event_time.is_some() {
                // Records, and every partition idle: only the last epoch of a bounded run
                // plans that (in an unbounded run a partition with new records is never
                // idle), when every partition is read to its end. Then nothing holds the
                // watermark back. Decided from the plan alone, so a replay sends the same.
                let last_of_bounded_run =
                    input.has_records() && input.ranges.iter().all(|r| r.idle);
                let frontier = if last_of_bounded_run {
                    self.frontier
                        .final_frontier(input.ranges.iter().map(|r| &r.partition))
                } else {
                    self.frontier
                        .frontier(input.ranges.iter().map(|r| (&r.partition, r.idle)))
                };
                if let Some(frontier) = frontier {
                    out.event_time_frontier(frontier).await?;
                }
            }
            Ok(())
        })
    }

    /// Commits the offsets the epoch reached to `group_id`, without waiting: for monitoring
    /// only, so a failure is a warning.
    fn on_commit(&mut self, epoch: Epoch) -> BoxFuture<'_, Result<(), OperatorError>> {
        Box::pin(async move {
            let mut reached = None;
            while let Some(entry) = self.uncommitted.first_entry() {
                if *entry.key() > epoch {
                    break;
                }
                reached = Some(entry.remove());
            }
            if let (Some(reached), Some(consumer)) = (reached, &self.consumer) {
                self.commit_to_group(consumer, &reached);
            }
            Ok(())
        })
    }

    fn describe_offset(&self) -> String {
        let parts: Vec<String> = self
            .next_offsets
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect();
        parts.join(" ")
    }

    fn state_signature(&self) -> Option<String> {
        // A restriction to some partitions is part of what the state is about: a worker's
        // checkpoint of partition 3 must not be restored into partition 5's pipeline.
        let only = match &self.options.partitions {
            None => String::new(),
            Some(p) => format!(
                " partitions {}",
                p.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        Some(format!(
            "kafka source v1 {}{only}",
            self.subscription.describe()
        ))
    }

    /// The next offset of every partition, and each partition's frontier clock.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        let mut w = StateWriter::new();
        w.u64(STATE_VERSION)
            .bool(self.started)
            .u64(self.next_offsets.len() as u64);
        for (p, next) in &self.next_offsets {
            w.str(&p.topic).i64(i64::from(p.partition)).i64(*next);
        }
        let clocks: Vec<_> = self.frontier.iter().collect();
        w.u64(clocks.len() as u64);
        for (p, clock) in clocks {
            w.str(&p.topic)
                .i64(i64::from(p.partition))
                .opt_i64(clock.max_event_time)
                .i64(clock.last_data_ms);
        }
        Ok(w.finish())
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        let bad = |e: DecodeError| self.error(format!("state: {e}"));
        let mut r = StateReader::new(state);
        if r.u64().map_err(bad)? != STATE_VERSION {
            return Err(self.error("state: unknown version"));
        }
        let partition = |r: &mut StateReader<'_>| -> Result<TopicPartition, DecodeError> {
            let topic = r.str()?.to_string();
            let partition = i32::try_from(r.i64()?).map_err(|_| DecodeError(0))?;
            Ok(TopicPartition { topic, partition })
        };
        let started = r.bool().map_err(bad)?;
        let mut next_offsets = BTreeMap::new();
        for _ in 0..r.u64().map_err(bad)? {
            let p = partition(&mut r).map_err(bad)?;
            next_offsets.insert(p, r.i64().map_err(bad)?);
        }
        let mut frontier = PartitionFrontier::new();
        for _ in 0..r.u64().map_err(bad)? {
            let p = partition(&mut r).map_err(bad)?;
            let clock = PartitionClock {
                max_event_time: r.opt_i64().map_err(bad)?,
                last_data_ms: r.i64().map_err(bad)?,
            };
            frontier.insert(p, clock);
        }
        r.end().map_err(bad)?;
        self.started = started;
        self.next_offsets = next_offsets;
        self.frontier = frontier;
        self.uncommitted.clear();
        if self.options.group_id.is_some() && !self.next_offsets.is_empty() {
            self.restored_to_commit = Some(
                self.next_offsets
                    .iter()
                    .map(|(p, o)| (p.clone(), *o))
                    .collect(),
            );
        }
        // A restored run is a new run: a bounded one takes its end offsets at its first plan.
        self.end_offsets = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> KafkaSourceOptions {
        KafkaSourceOptions {
            bootstrap_servers: "127.0.0.1:9".into(),
            topics: vec!["posts".into()],
            ..Default::default()
        }
    }

    #[test]
    fn options_are_checked_without_connecting() {
        let m = Metrics::new();
        assert!(KafkaSource::new(options(), "k", &m).is_ok());
        let err = |o: KafkaSourceOptions| KafkaSource::new(o, "k", &m).err().unwrap().0;
        assert!(
            err(KafkaSourceOptions {
                topics: vec![],
                ..options()
            })
            .contains("topics or topic_pattern")
        );
        assert!(
            err(KafkaSourceOptions {
                topic_pattern: Some("^x".into()),
                ..options()
            })
            .contains("not both")
        );
        assert!(
            err(KafkaSourceOptions {
                topics: vec![],
                topic_pattern: Some("(".into()),
                ..options()
            })
            .contains("topic_pattern")
        );
        let mut o = options();
        o.extra.insert("enable.auto.commit".into(), "true".into());
        assert!(err(o).contains("enable.auto.commit"));
        let mut o = options();
        o.extra.insert("no.such.property".into(), "1".into());
        assert!(err(o).contains("no.such.property"));
        assert!(
            err(KafkaSourceOptions {
                max_offsets_per_trigger: Some(0),
                ..options()
            })
            .contains("max_offsets_per_trigger")
        );
    }

    #[test]
    fn starting_offsets_apply_to_the_first_epoch_only() {
        let marks = Watermarks { low: 10, high: 50 };
        let p = TopicPartition::new("posts", 0);
        let mut s = KafkaSource::new(options(), "k", &Metrics::new()).unwrap();
        assert_eq!(s.range_start(&p, marks).unwrap(), 50);
        s.options.starting_offsets = StartingOffsets::Earliest;
        assert_eq!(s.range_start(&p, marks).unwrap(), 10);
        // Once started, a partition not seen before is new: from its earliest offset.
        s.started = true;
        s.options.starting_offsets = StartingOffsets::Latest;
        assert_eq!(s.range_start(&p, marks).unwrap(), 10);
        let map = BTreeMap::from([(
            "posts".to_string(),
            BTreeMap::from([(0, 20), (1, -1), (2, -2)]),
        )]);
        s.options.starting_offsets = StartingOffsets::PerPartition(map);
        assert_eq!(s.range_start(&p, marks).unwrap(), 20);
        assert_eq!(
            s.range_start(&TopicPartition::new("posts", 1), marks)
                .unwrap(),
            50
        );
        assert_eq!(
            s.range_start(&TopicPartition::new("posts", 2), marks)
                .unwrap(),
            10
        );
        assert_eq!(
            s.range_start(&TopicPartition::new("posts", 3), marks)
                .unwrap(),
            10
        );
    }

    #[test]
    fn offsets_gone_fail_or_are_skipped_and_counted() {
        let marks = Watermarks { low: 10, high: 50 };
        let p = TopicPartition::new("posts", 0);
        let metrics = Metrics::new();
        let mut s = KafkaSource::new(options(), "k", &metrics).unwrap();
        s.next_offsets.insert(p.clone(), 4);
        let e = s.range_start(&p, marks).unwrap_err().0;
        assert!(
            e.contains("offsets 4..10 of posts/0 are no longer available"),
            "{e}"
        );
        assert!(e.contains("fail_on_data_loss"), "{e}");
        s.options.fail_on_data_loss = false;
        assert_eq!(s.range_start(&p, marks).unwrap(), 10);
        assert_eq!(metrics.value(names::KAFKA_OFFSETS_LOST, "k"), 6);
        // Beyond the end: a recreated topic is read from its start.
        s.next_offsets.insert(p.clone(), 70);
        assert_eq!(s.range_start(&p, marks).unwrap(), 10);
        s.options.fail_on_data_loss = true;
        assert!(
            s.range_start(&p, marks)
                .unwrap_err()
                .0
                .contains("recreated")
        );
    }

    /// The bounded run's ends: taken at the first plan (a partition followed but gone has
    /// nothing more to give), kept, and lowered when a partition ends before its end, so
    /// that the run always ends.
    #[test]
    fn bounded_runs_end_where_partitions_end() {
        let metrics = Metrics::new();
        let mut s = KafkaSource::new(
            KafkaSourceOptions {
                bounded: true,
                ..options()
            },
            "k",
            &metrics,
        )
        .unwrap();
        let (a, b, gone) = (
            TopicPartition::new("posts", 0),
            TopicPartition::new("posts", 1),
            TopicPartition::new("old", 0),
        );
        s.started = true;
        s.next_offsets.insert(a.clone(), 80);
        s.next_offsets.insert(gone.clone(), 7);
        let marks = BTreeMap::from([
            (a.clone(), Watermarks { low: 0, high: 100 }),
            (b.clone(), Watermarks { low: 5, high: 50 }),
        ]);
        let spans = |r: Vec<(PartitionRange, i64)>| -> Vec<(String, i64, i64, i64)> {
            r.into_iter()
                .map(|(r, end)| (r.partition.to_string(), r.from, r.until, end))
                .collect()
        };
        let first = spans(s.bounded_ranges(&marks).unwrap());
        assert_eq!(
            first,
            vec![
                ("old/0".into(), 7, 7, 7),
                ("posts/0".into(), 80, 100, 100),
                ("posts/1".into(), 5, 50, 50),
            ]
        );
        // Later plans keep the ends, whatever the partitions hold now; partitions appearing
        // now are not read.
        let later = BTreeMap::from([
            (a.clone(), Watermarks { low: 0, high: 300 }),
            (b.clone(), Watermarks { low: 5, high: 60 }),
            (
                TopicPartition::new("posts", 2),
                Watermarks { low: 0, high: 9 },
            ),
        ]);
        assert_eq!(spans(s.bounded_ranges(&later).unwrap()), first);
        // Partition 0 truncated below its end: an error, or its end lowered and the offsets
        // counted as lost. Partition 1 gone before its end: its end lowered.
        let truncated = BTreeMap::from([(a.clone(), Watermarks { low: 0, high: 90 })]);
        s.next_offsets.insert(b.clone(), 20);
        let e = s.bounded_ranges(&truncated).unwrap_err().0;
        assert!(
            e.contains("posts/0 now ends at offset 90, before offset 100"),
            "{e}"
        );
        assert_eq!(s.end_offsets().unwrap()[&a], 100, "kept after an error");
        s.options.fail_on_data_loss = false;
        assert_eq!(
            spans(s.bounded_ranges(&truncated).unwrap()),
            vec![
                ("old/0".into(), 7, 7, 7),
                ("posts/0".into(), 80, 90, 90),
                ("posts/1".into(), 20, 20, 20),
            ]
        );
        assert_eq!(metrics.value(names::KAFKA_OFFSETS_LOST, "k"), 10);
        // A restored run takes its ends again.
        let state = s.snapshot().unwrap();
        s.restore(&state).unwrap();
        assert_eq!(s.end_offsets(), None);
    }

    #[test]
    fn state_reads_back_and_garbage_is_refused() {
        let mut s = KafkaSource::new(options(), "k", &Metrics::new()).unwrap();
        let (a, b) = (
            TopicPartition::new("posts", 0),
            TopicPartition::new("posts", 1),
        );
        s.next_offsets.insert(a.clone(), 120);
        s.next_offsets.insert(b.clone(), 98);
        s.frontier.data_arrived(&a, 1_000);
        s.frontier.observe(&a, 77);
        s.frontier.follow(&b, 2_000);
        s.started = true;
        let state = s.snapshot().unwrap();
        let mut again = KafkaSource::new(options(), "k", &Metrics::new()).unwrap();
        again.restore(&state).unwrap();
        assert_eq!(again.next_offsets, s.next_offsets);
        assert_eq!(again.frontier, s.frontier);
        assert!(again.started);
        assert_eq!(again.describe_offset(), "posts/0:120 posts/1:98");
        assert!(again.restore(&state[..state.len() - 1]).is_err());
        assert_eq!(
            again.state_signature().unwrap(),
            "kafka source v1 topics=posts"
        );
    }
}
