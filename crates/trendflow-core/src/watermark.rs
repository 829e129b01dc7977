//! Spark's watermark, exactly: computed at the end of each micro-batch, applied from the next.
//!
//! - `wm[k]`, in force for eviction in batch k, is `max(wm[k-1], max event time seen in
//!   batches before k − delay)`; `wm[0] = 0`. It never decreases.
//! - Lateness in batch k is judged against the previous batch's watermark `wm[k-1]`
//!   (Spark's `statefulOperator.allowMultiple`): a row's contribution to window W is dropped
//!   iff `W.end ≤ wm[k-1]`.
//! - At the end of batch k every window with `end ≤ wm[k]` is final.

use crate::EventTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkTracker {
    delay: i64,
    /// wm[k-1]: rows for windows ending at or before it are late in this batch.
    late_bound: EventTime,
    /// wm[k]: windows ending at or before it are closed at the end of this batch.
    eviction_bound: EventTime,
    /// Max event time seen so far (all batches up to the current one).
    max_event_time: Option<EventTime>,
    /// A partitioned source's frontier: the event time its slowest active partition has
    /// reached. The watermark is computed from `min(max_event_time, frontier)`, so a lagging
    /// partition holds windows open instead of having its rows dropped as late.
    frontier: Option<EventTime>,
}

impl WatermarkTracker {
    pub fn new(delay_ms: i64) -> Self {
        WatermarkTracker {
            delay: delay_ms,
            late_bound: 0,
            eviction_bound: 0,
            max_event_time: None,
            frontier: None,
        }
    }

    /// Restores a tracker from its parts (a checkpoint).
    pub fn from_parts(
        delay_ms: i64,
        late_bound: EventTime,
        eviction_bound: EventTime,
        max_event_time: Option<EventTime>,
    ) -> Self {
        WatermarkTracker {
            delay: delay_ms,
            late_bound,
            eviction_bound,
            max_event_time,
            frontier: None,
        }
    }

    /// Records an event time of the current batch. Call for every row that reaches the
    /// watermark, late ones included (Spark's max is taken before the late filter).
    #[inline]
    pub fn observe(&mut self, t: EventTime) {
        match self.max_event_time {
            Some(m) if m >= t => {}
            _ => self.max_event_time = Some(t),
        }
    }

    /// wm[k-1]: the bound lateness is judged against in the current batch.
    pub fn late_bound(&self) -> EventTime {
        self.late_bound
    }

    /// wm[k]: windows ending at or before it close at the end of the current batch.
    pub fn eviction_bound(&self) -> EventTime {
        self.eviction_bound
    }

    pub fn max_event_time(&self) -> Option<EventTime> {
        self.max_event_time
    }

    /// Caps the event time the next watermarks are computed from (a partitioned source's
    /// latest frontier). It may go back (an idle partition active again): the watermark itself
    /// never does, it only waits until the frontier passes it again.
    pub fn set_frontier(&mut self, t: EventTime) {
        self.frontier = Some(t);
    }

    pub fn frontier(&self) -> Option<EventTime> {
        self.frontier
    }

    pub fn delay(&self) -> i64 {
        self.delay
    }

    /// Ends the current batch (after its windows were closed) and starts the next one.
    /// Returns the new eviction bound.
    pub fn end_batch(&mut self) -> EventTime {
        self.late_bound = self.eviction_bound;
        if let Some(m) = self.max_event_time {
            // A partition with no timed record yet sends EventTime::MIN: hold everything.
            let m = self.frontier.map_or(m, |f| m.min(f));
            self.eviction_bound = self.eviction_bound.max(m.saturating_sub(self.delay));
        }
        self.eviction_bound
    }

    /// Moves the watermark to at least `t` (an idle source or the end of a bounded run that
    /// should close every window). Applies to the current batch.
    pub fn force(&mut self, t: EventTime) {
        self.eviction_bound = self.eviction_bound.max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontier_holds_the_watermark_back_and_only_moves_forward() {
        let mut w = WatermarkTracker::new(10);
        w.observe(100);
        w.set_frontier(50);
        assert_eq!(
            w.end_batch(),
            40,
            "the lagging partition's 50 bounds it, not 100"
        );
        w.set_frontier(30);
        assert_eq!(
            w.end_batch(),
            40,
            "a frontier back below holds, the watermark never falls"
        );
        w.set_frontier(200);
        assert_eq!(
            w.end_batch(),
            90,
            "past the data, max event time bounds it again"
        );
        w.set_frontier(EventTime::MIN);
        w.observe(1_000);
        assert_eq!(
            w.end_batch(),
            90,
            "a partition without data yet holds it, no overflow"
        );
    }

    #[test]
    fn watermark_applies_from_the_next_batch() {
        let mut w = WatermarkTracker::new(60_000);
        assert_eq!((w.late_bound(), w.eviction_bound()), (0, 0));
        w.observe(1_000_000);
        w.observe(900_000);
        // batch 0 ends: wm[1] = 1_000_000 - 60_000
        assert_eq!(w.end_batch(), 940_000);
        assert_eq!((w.late_bound(), w.eviction_bound()), (0, 940_000));
        // batch 1 sees an older event: the watermark does not go back
        w.observe(500_000);
        assert_eq!(w.end_batch(), 940_000);
        assert_eq!((w.late_bound(), w.eviction_bound()), (940_000, 940_000));
        w.observe(2_000_000);
        assert_eq!(w.end_batch(), 1_940_000);
        assert_eq!(w.late_bound(), 940_000);
    }

    #[test]
    fn no_events_no_change() {
        let mut w = WatermarkTracker::new(10);
        assert_eq!(w.end_batch(), 0);
        assert_eq!(w.max_event_time(), None);
    }
}
