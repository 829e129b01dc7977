//! The per-partition event-time frontier: the event time every active partition has reached.
//!
//! Kafka partitions are read at different speeds and may hold events of different ages; the
//! watermark of the stream must not pass the slowest partition, or that partition's rows
//! become late and are dropped. So each partition keeps the greatest event time read from it,
//! and the frontier is the least of those maxima over the partitions that are active.
//! A partition that had no new record for `idle_timeout` is idle and left out (otherwise one
//! silent partition would hold every window open forever). In a bounded run (`available_now`)
//! a partition read to the end offset of the run is idle at once, since it gets nothing more;
//! the last epoch, when every partition is read to its end, sends the greatest maximum
//! ([`PartitionFrontier::final_frontier`]).
//!
//! Idleness is decided when an epoch is planned, from the wall clock, and recorded in the plan
//! ([`crate::plan::PartitionRange::idle`]); the frontier is then computed from the plan and the
//! records read. A replayed epoch reads the same records with the same idle set, so it sends
//! the same frontier as the original run.

use std::collections::BTreeMap;
use std::time::Duration;

use trendflow_core::EventTime;

use crate::plan::TopicPartition;

/// What the frontier knows of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionClock {
    /// The greatest event time read from the partition, if any record had one.
    pub max_event_time: Option<EventTime>,
    /// Wall-clock time (ms) of the plan of the last epoch that read records from it, or of
    /// the plan that first saw the partition.
    pub last_data_ms: i64,
}

/// The clocks of every partition a source follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionFrontier {
    clocks: BTreeMap<TopicPartition, PartitionClock>,
}

impl PartitionFrontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts following a partition first seen at `now_ms` (no-op when already followed): its
    /// idle time counts from then.
    pub fn follow(&mut self, partition: &TopicPartition, now_ms: i64) {
        self.clocks
            .entry(partition.clone())
            .or_insert(PartitionClock {
                max_event_time: None,
                last_data_ms: now_ms,
            });
    }

    /// The partition got records in an epoch planned at `planned_at_ms`.
    pub fn data_arrived(&mut self, partition: &TopicPartition, planned_at_ms: i64) {
        self.follow(partition, planned_at_ms);
        let clock = self.clocks.get_mut(partition).expect("followed above");
        clock.last_data_ms = clock.last_data_ms.max(planned_at_ms);
    }

    /// A record of the partition has event time `t`.
    pub fn observe(&mut self, partition: &TopicPartition, t: EventTime) {
        if let Some(clock) = self.clocks.get_mut(partition) {
            clock.max_event_time = Some(clock.max_event_time.map_or(t, |m| m.max(t)));
        }
    }

    /// Is the partition idle in an epoch planned at `now_ms`? Never when it has new records in
    /// that epoch, nor without an `idle_timeout`; otherwise once `idle_timeout` has passed
    /// since it last had data (or since it was first seen).
    pub fn is_idle(
        &self,
        partition: &TopicPartition,
        has_new_records: bool,
        now_ms: i64,
        idle_timeout: Option<Duration>,
    ) -> bool {
        let (Some(timeout), false) = (idle_timeout, has_new_records) else {
            return false;
        };
        let since = self
            .clocks
            .get(partition)
            .map_or(now_ms, |c| c.last_data_ms);
        now_ms.saturating_sub(since) >= i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// The frontier over `partitions` (each with its idle flag): the least maximum event
    /// time of the active ones. An active partition that has not yet delivered a record with
    /// an event time holds the frontier at [`EventTime::MIN`]: nothing can be said to be
    /// complete while it may still deliver anything. `None` when every partition is idle
    /// (or none is given): the frontier then holds nothing back.
    pub fn frontier<'a>(
        &self,
        partitions: impl IntoIterator<Item = (&'a TopicPartition, bool)>,
    ) -> Option<EventTime> {
        partitions
            .into_iter()
            .filter(|(_, idle)| !idle)
            .map(|(p, _)| {
                self.clocks
                    .get(p)
                    .and_then(|c| c.max_event_time)
                    .unwrap_or(EventTime::MIN)
            })
            .min()
    }

    /// The frontier once `partitions` are all read to their end (the last epoch of a bounded
    /// run): nothing more will come from any of them, so nothing holds the watermark back
    /// and the frontier is the greatest maximum event time among them. `None` when none of
    /// them delivered an event time.
    pub fn final_frontier<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a TopicPartition>,
    ) -> Option<EventTime> {
        partitions
            .into_iter()
            .filter_map(|p| self.clocks.get(p).and_then(|c| c.max_event_time))
            .max()
    }

    pub fn clock(&self, partition: &TopicPartition) -> Option<&PartitionClock> {
        self.clocks.get(partition)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, &PartitionClock)> {
        self.clocks.iter()
    }

    /// Puts back a clock read from a checkpoint.
    pub fn insert(&mut self, partition: TopicPartition, clock: PartitionClock) {
        self.clocks.insert(partition, clock);
    }

    pub fn clear(&mut self) {
        self.clocks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("posts", p)
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_frontier_is_the_slowest_active_partition() {
        let mut f = PartitionFrontier::new();
        for p in 0..3 {
            f.follow(&tp(p), 0);
        }
        f.observe(&tp(0), 5_000);
        f.observe(&tp(0), 3_000);
        f.observe(&tp(1), 9_000);
        f.observe(&tp(2), 7_000);
        let all = [(&tp(0), false), (&tp(1), false), (&tp(2), false)];
        assert_eq!(f.frontier(all), Some(5_000));
        // Partition 0 catches up; partition 2 is now the slowest.
        f.observe(&tp(0), 8_000);
        assert_eq!(f.frontier(all), Some(7_000));
    }

    #[test]
    fn an_active_partition_without_event_times_holds_the_frontier_back() {
        let mut f = PartitionFrontier::new();
        f.follow(&tp(0), 0);
        f.follow(&tp(1), 0);
        f.observe(&tp(0), 5_000);
        assert_eq!(
            f.frontier([(&tp(0), false), (&tp(1), false)]),
            Some(EventTime::MIN)
        );
        // Idle, it no longer counts.
        assert_eq!(f.frontier([(&tp(0), false), (&tp(1), true)]), Some(5_000));
    }

    #[test]
    fn no_frontier_when_every_partition_is_idle() {
        let mut f = PartitionFrontier::new();
        f.follow(&tp(0), 0);
        f.observe(&tp(0), 5_000);
        assert_eq!(f.frontier([(&tp(0), true)]), None);
        assert_eq!(f.frontier([]), None);
    }

    #[test]
    fn the_final_frontier_is_the_greatest_maximum() {
        let mut f = PartitionFrontier::new();
        for p in 0..3 {
            f.follow(&tp(p), 0);
        }
        f.observe(&tp(0), 5_000);
        f.observe(&tp(1), 9_000);
        // Partition 2 has no event time: it holds nothing back once read to its end.
        assert_eq!(f.final_frontier([&tp(0), &tp(1), &tp(2)]), Some(9_000));
        assert_eq!(f.final_frontier([&tp(0), &tp(2)]), Some(5_000));
        assert_eq!(f.final_frontier([&tp(2)]), None);
        assert_eq!(f.final_frontier([]), None);
    }

    #[test]
    fn a_partition_turns_idle_after_the_timeout_without_data() {
        let mut f = PartitionFrontier::new();
        f.follow(&tp(0), 1_000);
        let idle = |f: &PartitionFrontier, new, now, timeout| f.is_idle(&tp(0), new, now, timeout);
        // Never idle without a timeout, nor while records arrive.
        assert!(!idle(&f, false, 1_000_000, None));
        assert!(!idle(&f, true, 1_000_000, Some(MINUTE)));
        // Counted from when it was first seen, then from its last data.
        assert!(!idle(&f, false, 60_999, Some(MINUTE)));
        assert!(idle(&f, false, 61_000, Some(MINUTE)));
        f.data_arrived(&tp(0), 100_000);
        assert!(!idle(&f, false, 159_999, Some(MINUTE)));
        assert!(idle(&f, false, 160_000, Some(MINUTE)));
        // An older plan's time never moves the last data back.
        f.data_arrived(&tp(0), 50_000);
        assert_eq!(f.clock(&tp(0)).unwrap().last_data_ms, 100_000);
    }

    /// A silent partition blocks the frontier until it is idle; then the frontier follows the
    /// others; when it speaks again it counts again.
    #[test]
    fn a_silent_partition_is_left_out_once_idle_and_counts_again_with_data() {
        let mut f = PartitionFrontier::new();
        f.follow(&tp(0), 0);
        f.follow(&tp(1), 0);
        f.observe(&tp(1), 1_000);
        f.data_arrived(&tp(0), 0);
        f.observe(&tp(0), 50_000);
        let now = 120_000;
        let idle1 = f.is_idle(&tp(1), false, now, Some(MINUTE));
        assert!(idle1);
        assert_eq!(f.frontier([(&tp(0), false), (&tp(1), idle1)]), Some(50_000));
        // Without a timeout partition 1 holds the frontier at its own maximum.
        let idle1 = f.is_idle(&tp(1), false, now, None);
        assert_eq!(f.frontier([(&tp(0), false), (&tp(1), idle1)]), Some(1_000));
        // It delivers again (an old event): active, and the frontier goes back to it. The
        // watermark itself never goes back; the frontier only caps how far it may advance.
        f.data_arrived(&tp(1), now);
        f.observe(&tp(1), 2_000);
        let idle1 = f.is_idle(&tp(1), true, now, Some(MINUTE));
        assert_eq!(f.frontier([(&tp(0), false), (&tp(1), idle1)]), Some(2_000));
    }
}
