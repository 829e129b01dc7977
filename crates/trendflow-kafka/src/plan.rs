//! An epoch's input: the offset range of every partition, and which partitions were idle when
//! it was planned. The runtime records this encoding in its offset log before the epoch is
//! read, so that a replay after a crash reads exactly the same records and computes exactly
//! the same event-time frontier.

use trendflow_core::codec::{DecodeError, StateReader, StateWriter};

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What one epoch reads from one partition: the offsets `from..until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    pub partition: TopicPartition,
    /// The first offset to read.
    pub from: i64,
    /// The offset after the last one to read (the high watermark when planned, or less under
    /// `max_offsets_per_trigger`). Offsets in between may be missing (compaction, transaction
    /// markers): the range is what the partition holds there.
    pub until: i64,
    /// The partition had no new record for `idle_timeout` when the epoch was planned: it is
    /// left out of the event-time frontier.
    pub idle: bool,
}

impl PartitionRange {
    /// Offsets in the range (records, when the partition has no gaps).
    pub fn len(&self) -> u64 {
        self.until.saturating_sub(self.from).max(0) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.until <= self.from
    }
}

/// The input of one epoch: a range for every partition the source follows (empty ranges
/// included, so the frontier knows every partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInput {
    /// Wall-clock time of planning (ms since 1970): partitions that get records in this epoch
    /// had data at that time, which later idleness decisions measure from.
    pub planned_at_ms: i64,
    /// Sorted by partition.
    pub ranges: Vec<PartitionRange>,
}

/// Version of the encoding, written first.
const PLAN_VERSION: u64 = 1;

impl EpochInput {
    /// Does any partition have offsets to read?
    pub fn has_records(&self) -> bool {
        self.ranges.iter().any(|r| !r.is_empty())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::new();
        w.u64(PLAN_VERSION)
            .i64(self.planned_at_ms)
            .u64(self.ranges.len() as u64);
        for r in &self.ranges {
            w.str(&r.partition.topic)
                .i64(i64::from(r.partition.partition))
                .i64(r.from)
                .i64(r.until)
                .bool(r.idle);
        }
        w.finish()
    }

    pub fn decode(input: &[u8]) -> Result<Self, DecodeError> {
        let mut r = StateReader::new(input);
        if r.u64()? != PLAN_VERSION {
            return Err(DecodeError(0));
        }
        let planned_at_ms = r.i64()?;
        let n = r.u64()? as usize;
        let mut ranges = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let topic = r.str()?.to_string();
            // A partition number outside i32 is a garbled record, like a bad length.
            let partition = i32::try_from(r.i64()?).map_err(|_| DecodeError(0))?;
            ranges.push(PartitionRange {
                partition: TopicPartition { topic, partition },
                from: r.i64()?,
                until: r.i64()?,
                idle: r.bool()?,
            });
        }
        r.end()?;
        Ok(EpochInput {
            planned_at_ms,
            ranges,
        })
    }
}

/// Caps the ranges to about `limit` offsets in all, shared among partitions in proportion to
/// their backlog, as Spark's `maxOffsetsPerTrigger` does: each partition gets
/// `limit × backlog / total backlog` offsets, rounded down, but at least one when it has a
/// backlog (so a small partition is not starved by large ones; the total may then exceed
/// `limit` by up to one offset per partition).
pub fn cap_ranges(ranges: &mut [PartitionRange], limit: u64) {
    let total: u64 = ranges.iter().map(PartitionRange::len).sum();
    if total <= limit {
        return;
    }
    for r in ranges.iter_mut().filter(|r| !r.is_empty()) {
        let share = limit as f64 * (r.len() as f64 / total as f64);
        let share = if share < 1.0 {
            share.ceil()
        } else {
            share.floor()
        } as i64;
        r.until = r.until.min(r.from.saturating_add(share));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(p: i32, from: i64, until: i64) -> PartitionRange {
        PartitionRange {
            partition: TopicPartition::new("t", p),
            from,
            until,
            idle: false,
        }
    }

    #[test]
    fn plans_read_back_as_written() {
        let input = EpochInput {
            planned_at_ms: 1_700_000_000_123,
            ranges: vec![range(0, 0, 10), {
                let mut r = range(7, 5, 5);
                r.idle = true;
                r
            }],
        };
        let bytes = input.encode();
        assert_eq!(EpochInput::decode(&bytes).unwrap(), input);
        assert!(EpochInput::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(EpochInput::decode(b"\x02").is_err());
    }

    #[test]
    fn the_cap_is_shared_in_proportion_to_backlog() {
        // Backlogs 600, 300, 100, 0: a limit of 100 gives 60, 30, 10, 0.
        let mut ranges = vec![
            range(0, 0, 600),
            range(1, 1000, 1300),
            range(2, 0, 100),
            range(3, 50, 50),
        ];
        cap_ranges(&mut ranges, 100);
        let taken: Vec<u64> = ranges.iter().map(PartitionRange::len).collect();
        assert_eq!(taken, vec![60, 30, 10, 0]);
        assert_eq!(ranges[1].from, 1000);
    }

    #[test]
    fn small_partitions_get_at_least_one_offset() {
        // 10_000 and 1: the small one's share is 0.001, rounded up to 1.
        let mut ranges = vec![range(0, 0, 10_000), range(1, 0, 1)];
        cap_ranges(&mut ranges, 10);
        let taken: Vec<u64> = ranges.iter().map(PartitionRange::len).collect();
        assert_eq!(taken, vec![9, 1]);
    }

    #[test]
    fn a_backlog_within_the_cap_is_taken_whole() {
        let mut ranges = vec![range(0, 0, 6), range(1, 0, 4)];
        cap_ranges(&mut ranges, 10);
        assert_eq!((ranges[0].until, ranges[1].until), (6, 4));
    }
}
