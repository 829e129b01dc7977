//! Reading one partition's planned range `from..until` into raw batches.
//!
//! The partition is assigned alone at `from` and consumed until its range is done. The range
//! is done when a record at or past `until - 1` arrives, or when librdkafka reports the end of
//! the partition: offsets may be missing inside and at the end of the range (compacted
//! records, transaction markers), so reaching `until` exactly cannot be the only test. The end
//! is the high watermark (the last stable offset under `read_committed`) at fetch time, which
//! never goes back, so at the end every record of the range has been delivered.
//!
//! Records become lines: payloads with '\n' and '\r' replaced by ' ' (JSON allows them only as
//! whitespace, so a record stays one line), each ended by '\n'. A batch's `first_line` is its
//! first record's offset + 1; a new batch starts at every offset gap, so line numbers and
//! offsets correspond throughout, and when a batch reaches `batch_bytes`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use trendflow_core::{EventTime, RawBatch};

use crate::cluster::{SourceConsumer, partition_watermarks};
use crate::plan::{PartitionRange, TopicPartition};
use crate::source::EventTimeExtractor;

/// How a partition is read.
#[derive(Clone)]
pub(crate) struct ReadSettings {
    pub batch_bytes: usize,
    pub poll_timeout: Duration,
    pub fail_on_data_loss: bool,
    pub event_time: Option<EventTimeExtractor>,
}

/// Why a range could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Offsets of the range are gone (retention, compaction) and `fail_on_data_loss` is set.
    DataLoss(String),
    Kafka(String),
}

/// The state of reading one partition's range, moved to a blocking thread for each chunk.
pub(crate) struct PartitionReader {
    pub partition: TopicPartition,
    origin: Arc<str>,
    /// The next offset to read.
    position: i64,
    until: i64,
    assigned: bool,
    pub done: bool,
    /// The batch being filled: its first offset, its lines and their bytes.
    pending: Option<(i64, usize, Vec<u8>)>,
    pub max_event_time: Option<EventTime>,
    pub records: u64,
    pub bytes: u64,
    pub tombstones: u64,
    /// Offsets of the range no longer in the partition, skipped (`fail_on_data_loss: false`).
    pub lost: u64,
}

impl PartitionReader {
    pub fn new(range: &PartitionRange) -> Self {
        PartitionReader {
            origin: Arc::from(format!("kafka:{}", range.partition)),
            partition: range.partition.clone(),
            position: range.from,
            until: range.until,
            assigned: false,
            done: range.is_empty(),
            pending: None,
            max_event_time: None,
            records: 0,
            bytes: 0,
            tombstones: 0,
            lost: 0,
        }
    }

    fn assign(&mut self, consumer: &SourceConsumer) -> Result<(), ReadError> {
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition_offset(
            &self.partition.topic,
            self.partition.partition,
            Offset::Offset(self.position),
        )
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|e| ReadError::Kafka(format!("assigning {}: {e}", self.partition)))?;
        self.assigned = true;
        Ok(())
    }

    /// Reads until about `batch_bytes` of records are gathered or the range is done, and
    /// returns them as batches. Blocks: call on a blocking thread.
    pub fn read_chunk(
        &mut self,
        consumer: &Arc<SourceConsumer>,
        settings: &ReadSettings,
    ) -> Result<Vec<RawBatch>, ReadError> {
        let mut batches = Vec::new();
        if !self.done && !self.assigned {
            self.assign(consumer)?;
        }
        let mut last_progress = Instant::now();
        let mut chunk_bytes = 0usize;
        while !self.done && chunk_bytes < settings.batch_bytes {
            let left = settings
                .poll_timeout
                .saturating_sub(last_progress.elapsed());
            if left.is_zero() {
                return Err(ReadError::Kafka(format!(
                    "no record from {} for {:?}: reading offset {} of a range that ends at {} \
                     (are the brokers reachable?)",
                    self.partition, settings.poll_timeout, self.position, self.until
                )));
            }
            // A poll may return early without a message (a served event), hence the loop
            // and the deadline of its own.
            match consumer.poll(left.min(Duration::from_millis(500))) {
                None => {}
                Some(Ok(message)) => {
                    if message.topic() != self.partition.topic
                        || message.partition() != self.partition.partition
                    {
                        continue;
                    }
                    last_progress = Instant::now();
                    let offset = message.offset();
                    if offset < self.position {
                        continue;
                    }
                    if offset >= self.until {
                        self.done = true;
                        break;
                    }
                    if let Some(payload) = message.payload() {
                        chunk_bytes += payload.len() + 1;
                        self.add_record(offset, payload, settings, &mut batches);
                    } else {
                        // A tombstone (null payload): a deletion marker of a compacted topic.
                        self.tombstones += 1;
                    }
                    self.position = offset + 1;
                    self.done = self.position >= self.until;
                }
                Some(Err(KafkaError::PartitionEOF(p))) if p == self.partition.partition => {
                    // Everything up to the end of the partition has been delivered; what is
                    // left of the range holds no record (markers, compacted offsets).
                    self.done = true;
                }
                Some(Err(KafkaError::MessageConsumption(
                    code @ (RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange),
                ))) => {
                    last_progress = Instant::now();
                    self.out_of_range(consumer, settings, code)?;
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(ReadError::Kafka(format!("reading {}: {e}", self.partition)));
                }
                Some(Err(e)) => {
                    // Brokers down, leaders moving: librdkafka retries on its own; the poll
                    // timeout above bounds how long.
                    tracing::debug!(partition = %self.partition, error = %e, "kafka source: consumer error; still polling");
                }
            }
        }
        self.finish_batch(&mut batches);
        Ok(batches)
    }

    fn add_record(
        &mut self,
        offset: i64,
        payload: &[u8],
        settings: &ReadSettings,
        batches: &mut Vec<RawBatch>,
    ) {
        if let Some(extract) = &settings.event_time
            && let Some(t) = extract(payload)
        {
            self.max_event_time = Some(self.max_event_time.map_or(t, |m| m.max(t)));
        }
        // A gap in offsets starts a new batch, so that line numbers stay offsets + 1.
        if let Some((first, lines, _)) = &self.pending
            && first + *lines as i64 != offset
        {
            self.finish_batch(batches);
        }
        let (_, lines, data) = self
            .pending
            .get_or_insert_with(|| (offset, 0, Vec::with_capacity(settings.batch_bytes + 1024)));
        let start = data.len();
        data.extend_from_slice(payload);
        for b in &mut data[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        data.push(b'\n');
        *lines += 1;
        self.records += 1;
        self.bytes += payload.len() as u64;
    }

    fn finish_batch(&mut self, batches: &mut Vec<RawBatch>) {
        if let Some((first, lines, data)) = self.pending.take() {
            batches.push(RawBatch {
                origin: self.origin.clone(),
                first_line: first as u64 + 1,
                lines,
                data: data.into(),
            });
        }
    }

    /// The offset to fetch is no longer in the partition: records were deleted since the
    /// epoch was planned (retention, compaction, or a replay long after).
    fn out_of_range(
        &mut self,
        consumer: &Arc<SourceConsumer>,
        settings: &ReadSettings,
        code: RDKafkaErrorCode,
    ) -> Result<(), ReadError> {
        let marks = partition_watermarks(consumer, &self.partition, settings.poll_timeout)
            .map_err(|e| {
                ReadError::Kafka(format!(
                    "{} reports offset {} out of range ({code}) and its offsets cannot be \
                     queried: {e}",
                    self.partition, self.position
                ))
            })?;
        if self.position >= marks.low && self.position < marks.high {
            // Still there: a passing error (a new leader with a shorter log for a moment).
            self.assign(consumer)?;
            return Ok(());
        }
        let skipped_until = if self.position < marks.low {
            marks.low.min(self.until)
        } else {
            // Past the end: the partition was truncated or recreated; the rest of the range
            // no longer exists.
            self.until
        };
        let message = format!(
            "offsets {}..{} of {} are no longer available (the partition now holds {}..{}): \
             retention or compaction deleted them before they were read",
            self.position, skipped_until, self.partition, marks.low, marks.high
        );
        if settings.fail_on_data_loss {
            return Err(ReadError::DataLoss(message));
        }
        tracing::warn!("kafka source: {message}; skipping them (fail_on_data_loss: false)");
        self.lost += (skipped_until - self.position) as u64;
        self.position = skipped_until;
        self.done = self.position >= self.until;
        if !self.done {
            self.assign(consumer)?;
        }
        Ok(())
    }
}
