//! Counting tokens per sliding event-time window with a watermark (the tutorial's second
//! query): `groupBy(window(timestamp, size, slide), word).count()`.
//!
//! State is kept per slice (the gcd of size and slide), one counter per (slice, key): an event
//! costs one hash-map update whatever size/slide is. When windows are emitted, their counts
//! are built with a running sum that adds the slice entering the window and subtracts the one
//! leaving it, so emitting consecutive windows costs the keys of two slices each, not of
//! size/slice slices.
//!
//! Late data follows Spark exactly (see [`trendflow_core::watermark`]): in each epoch a row's
//! contribution to a window is dropped iff the window ended at or before the previous epoch's
//! watermark; the row still counts in its other windows. In complete mode, as in Spark,
//! nothing is dropped or evicted: the whole table is kept and re-emitted.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::slice_segments::SliceSegments;
use crate::window_emission::{CountWindowCursor, Counts};
use rustc_hash::{FxHashMap, FxHashSet};
use trendflow_core::batch::OutputMode;
use trendflow_core::codec::{DecodeError, StateReader, StateWriter};
use trendflow_core::metrics::{Counter, Gauge, Metrics, names};
use trendflow_core::state_segment;
use trendflow_core::time::format_iso_utc;
use trendflow_core::{
    Batch, DeadLetter, Emitter, Epoch, EventTime, Operator, OperatorError, Reason, ResultRow,
    RowBatch, RowSchema, Rows, SegmentData, SlidingWindows, StateSegment, WatermarkTracker, Window,
};

/// What happens to rows later than the watermark (they are always counted in metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePolicy {
    /// Counted only.
    Count,
    /// Counted and written to the dead-letter output, reason `late_event`.
    DeadLetter,
}

type ValueSets = FxHashMap<Arc<str>, FxHashSet<i64>>;

/// What is computed per (window, key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Rows (Spark's `count()`).
    #[default]
    Count,
    /// The sum of the rows' values.
    Sum,
    /// How many distinct values the rows carry (exact: each value's hash is kept per slice
    /// until its windows close).
    CountDistinct,
}

impl Aggregate {
    pub fn name(&self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::CountDistinct => "count_distinct",
        }
    }
}

/// The windowed count operator: tokens in, result rows out at each barrier.
///
/// ```
/// use std::sync::Arc;
/// use trendflow_core::{Batch, Emitter, Operator, SlidingWindows, TokenBatch, batch::OutputMode, metrics::Metrics};
/// use trendflow_ops::{LatePolicy, WindowedCount};
///
/// // 10-minute windows every 5 minutes, 1 minute of watermark delay, append mode.
/// let windows = SlidingWindows::new(600_000, 300_000).unwrap();
/// let mut op = WindowedCount::new("w", windows, 60_000, OutputMode::Append, LatePolicy::Count, &Metrics::new());
/// let mut tokens = TokenBatch::default();
/// tokens.push(Some(0), "#a");          // in windows [-5m, 5m) and [0, 10m)
/// tokens.push(Some(3_600_000), "#b");  // an hour later: moves the watermark
/// let mut out = Emitter::new();
/// op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out).unwrap();
/// op.on_barrier(0, &mut out).unwrap(); // epoch 0: the watermark was still 0, nothing closes
/// assert!(out.batches.is_empty());
/// op.on_barrier(1, &mut out).unwrap(); // epoch 1 (no data): watermark 59 min, #a's windows close
/// let Batch::Rows(rows) = &out.batches[0] else { panic!() };
/// assert_eq!(rows.rows.len(), 2);
/// assert!(rows.rows.iter().all(|r| &**r.key == "#a" && r.count == 1));
/// ```
pub struct WindowedCount {
    component: Arc<str>,
    windows: SlidingWindows,
    watermark: WatermarkTracker,
    mode: OutputMode,
    late: LatePolicy,
    schema: Arc<RowSchema>,
    /// slice start -> key -> count (the sum; the number of distinct values)
    slices: BTreeMap<EventTime, Counts>,
    aggregate: Aggregate,
    /// CountDistinct: slice start -> key -> values seen.
    distinct: BTreeMap<EventTime, ValueSets>,
    /// Only the k keys with the largest results per window are emitted.
    top_k: Option<usize>,
    /// Windows ending at or before this were emitted and their state dropped.
    closed_until: EventTime,
    /// Update mode: (slice, key) changed in this epoch.
    touched: FxHashSet<(EventTime, Arc<str>)>,
    state_rows: usize,
    /// Bytes of the state's keys (each slice holds its own copy of a key).
    state_key_bytes: usize,
    state_rows_added: Counter,
    state_rows_evicted: Counter,
    state_updates: Counter,
    state_bytes_gauge: Gauge,
    event_time_max_gauge: Gauge,
    late_rows: Counter,
    late_row_windows: Counter,
    no_event_time: Counter,
    state_rows_gauge: Gauge,
    watermark_gauge: Gauge,
    /// Events later than the wall clock plus this (ms) are set aside; None: no limit.
    max_future_skew: Option<i64>,
    /// The wall clock, in ms (a parameter so tests can fix it).
    clock: fn() -> EventTime,
    /// Idle timeout (ms): without rows for this long, event time follows the wall clock.
    idle_timeout: Option<i64>,
    /// Wall-clock time of the last row, and rows seen in the current epoch.
    last_row_at: EventTime,
    epoch_rows: u64,
    /// The max event time of rows (not of idle advances) when the last row came.
    data_max_event_time: Option<EventTime>,
    /// A watermark from upstream (the end of a bounded input): windows ending at or before it
    /// close whatever the data says.
    upstream_watermark: EventTime,
    /// Append mode: the windows a barrier closed that are not emitted yet (see `emit_more`).
    pending: Option<PendingWindows>,
    /// Rows emitted by `on_barrier` itself before the rest is left to `emit_more`.
    part_rows: usize,
    /// The slices the next checkpoint writes (each slice is a state segment).
    segments: SliceSegments,
}

/// Closed windows still to emit, and what to do once they are out.
struct PendingWindows {
    epoch: Epoch,
    /// The state of windows ending at or before this is dropped after the last part.
    watermark: EventTime,
    next: NextWindows,
}

enum NextWindows {
    /// Counts: a running sum over the slices.
    Counts(CountWindowCursor),
    /// Sums and distinct counts: window by window, from `start` to `hi`.
    EachWindow { start: EventTime, hi: EventTime },
}

/// The runtime's part size (rows per `emit_more`), the default of `part_rows`.
const PART_ROWS: usize = trendflow_core::operator::OUTPUT_PART_ROWS;

/// Rows `on_barrier` emits before leaving the rest to `emit_more` (a part ends with a whole
/// window, so at least one window's rows).
const FIRST_PART_ROWS: usize = 4096;

/// Appends one window's rows, sorted by key.
fn push_window(
    rows: &mut Vec<ResultRow>,
    window: Window,
    values: impl Iterator<Item = (Arc<str>, i64)>,
) {
    let start = rows.len();
    rows.extend(values.map(|(key, count)| ResultRow {
        window: Some(window),
        key,
        count,
    }));
    rows[start..].sort_unstable_by(|a, b| a.key.cmp(&b.key));
}

fn wall_clock_ms() -> EventTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl WindowedCount {
    pub fn new(
        component: &str,
        windows: SlidingWindows,
        delay_ms: i64,
        mode: OutputMode,
        late: LatePolicy,
        metrics: &Metrics,
    ) -> Self {
        WindowedCount {
            component: component.into(),
            windows,
            watermark: WatermarkTracker::new(delay_ms),
            mode,
            late,
            schema: Arc::new(RowSchema::word_count(true)),
            slices: BTreeMap::new(),
            aggregate: Aggregate::Count,
            distinct: BTreeMap::new(),
            top_k: None,
            closed_until: EventTime::MIN,
            touched: FxHashSet::default(),
            segments: SliceSegments::default(),
            state_rows: 0,
            state_key_bytes: 0,
            state_rows_added: metrics.counter(names::STATE_ROWS_ADDED, component),
            state_rows_evicted: metrics.counter(names::STATE_ROWS_EVICTED, component),
            state_updates: metrics.counter(names::STATE_UPDATES, component),
            state_bytes_gauge: metrics.gauge(names::STATE_BYTES, component),
            event_time_max_gauge: metrics.gauge(names::EVENT_TIME_MAX_MS, component),
            late_rows: metrics.counter(names::LATE_ROWS_DROPPED, component),
            late_row_windows: metrics.counter(names::LATE_ROW_WINDOWS_DROPPED, component),
            no_event_time: metrics.counter_labeled(
                names::DEAD_LETTERS,
                component,
                Some(("reason", "no_event_time_for_window".into())),
            ),
            state_rows_gauge: metrics.gauge(names::STATE_ROWS, component),
            watermark_gauge: metrics.gauge(names::WATERMARK_MS, component),
            max_future_skew: None,
            clock: wall_clock_ms,
            idle_timeout: None,
            last_row_at: wall_clock_ms(),
            epoch_rows: 0,
            data_max_event_time: None,
            upstream_watermark: EventTime::MIN,
            pending: None,
            part_rows: PART_ROWS,
        }
    }

    /// Sets how many rows `on_barrier` emits before leaving the rest to `emit_more` (tests
    /// use small parts to check that the parts add up to the whole).
    pub fn with_part_rows(mut self, rows: usize) -> Self {
        self.part_rows = rows.max(1);
        self
    }

    /// Names the key and value columns of the result (default `word`, `count`).
    pub fn with_columns(mut self, key_column: &str, value_column: &str) -> Self {
        self.schema = Arc::new(RowSchema {
            windowed: true,
            key_column: key_column.into(),
            value_column: value_column.into(),
        });
        self
    }

    /// Computes `aggregate` instead of a count.
    pub fn with_aggregate(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// Emits only the `k` keys with the largest results of each window (ties: by key), in
    /// decreasing order. Not in update mode, where a window's top changes row by row.
    pub fn with_top_k(mut self, k: Option<usize>) -> Self {
        self.top_k = k;
        self
    }

    /// Sets aside events dated more than `skew_ms` after `clock()` (the wall clock by default),
    /// so that one bad timestamp cannot move the watermark past every open window.
    pub fn with_max_future_skew(
        mut self,
        skew_ms: Option<i64>,
        clock: Option<fn() -> EventTime>,
    ) -> Self {
        self.max_future_skew = skew_ms;
        if let Some(c) = clock {
            self.clock = c;
        }
        self
    }

    /// Lets event time advance with the wall clock after `idle_ms` without rows.
    pub fn with_idle_timeout(mut self, idle_ms: Option<i64>) -> Self {
        self.idle_timeout = idle_ms;
        self.last_row_at = (self.clock)();
        self
    }

    /// A token set aside; its origin is this operator (tokens carry no file position).
    fn set_aside(&self, reason: Reason, detail: String, word: &str) -> DeadLetter {
        DeadLetter {
            component: self.component.clone(),
            origin: self.component.clone(),
            line: 0,
            reason,
            detail,
            excerpt: word.to_string(),
        }
    }

    /// The watermark state (for progress reports and checkpoints).
    pub fn watermark(&self) -> &WatermarkTracker {
        &self.watermark
    }

    fn align_up(&self, x: EventTime) -> EventTime {
        let s = self.windows.slide;
        x + (s - x.rem_euclid(s)) % s
    }

    fn align_down(&self, x: EventTime) -> EventTime {
        x - x.rem_euclid(self.windows.slide)
    }

    /// Sums and distinct counts, window by window. A running total (as for counts) cannot
    /// tell a key whose sum fell to 0 from one that left the window, and distinct counts do
    /// not add up across slices, so each window's slices are combined anew: size/slide times
    /// the work of a count, for statistics that are smaller than the hashtag stream.
    ///
    /// Emits windows from `lo` until `max_rows` rows or `hi`; returns the next window's start
    /// when windows remain.
    fn emit_each_window(
        &self,
        lo: EventTime,
        hi: EventTime,
        rows: &mut Vec<ResultRow>,
        max_rows: usize,
    ) -> Option<EventTime> {
        let (size, slide) = (self.windows.size, self.windows.slide);
        let distinct = self.aggregate == Aggregate::CountDistinct;
        let first = rows.len();
        let mut s = lo;
        while s <= hi {
            if rows.len() - first >= max_rows {
                return Some(s);
            }
            let mut sums: FxHashMap<&Arc<str>, i64> = FxHashMap::default();
            let mut unions: FxHashMap<&Arc<str>, FxHashSet<i64>> = FxHashMap::default();
            if distinct {
                for (_, sets) in self.distinct.range(s..s + size) {
                    for (k, values) in sets {
                        unions.entry(k).or_default().extend(values.iter().copied());
                    }
                }
            } else {
                for (_, counts) in self.slices.range(s..s + size) {
                    for (k, c) in counts {
                        *sums.entry(k).or_insert(0) += c;
                    }
                }
            }
            if sums.is_empty() && unions.is_empty() {
                // Skip to the first window holding the next slice with data.
                let (&x, _) = self.slices.range(s + size..).next()?;
                s = (s + slide).max(self.windows.first_window_of_slice(x));
                continue;
            }
            let window = Window {
                start: s,
                end: s + size,
            };
            let values = sums
                .into_iter()
                .map(|(k, v)| (k.clone(), v))
                .chain(unions.into_iter().map(|(k, v)| (k.clone(), v.len() as i64)));
            push_window(rows, window, values);
            s += slide;
        }
        None
    }

    /// Starts emitting the windows starting in `[lo, hi]`.
    fn windows_to_emit(&self, lo: EventTime, hi: EventTime) -> NextWindows {
        if self.aggregate == Aggregate::Count {
            NextWindows::Counts(CountWindowCursor::new(self.windows, &self.slices, lo, hi))
        } else {
            NextWindows::EachWindow { start: lo, hi }
        }
    }

    /// The next windows of `next`, until `max_rows` rows (room made for `reserve`), and
    /// whether any remain.
    fn emit_part(&self, next: &mut NextWindows, max_rows: usize, reserve: usize) -> (Rows, bool) {
        let (mut rows, more) = match next {
            NextWindows::Counts(cursor) => {
                let mut rows = cursor.rows();
                rows.reserve(reserve);
                let more = cursor.next_part(max_rows, &mut rows);
                if self.top_k.is_none() {
                    return (rows, more);
                }
                (rows.to_vec(), more)
            }
            NextWindows::EachWindow { start, hi } => {
                let mut rows = Vec::with_capacity(reserve);
                let more = match self.emit_each_window(*start, *hi, &mut rows, max_rows) {
                    Some(s) => {
                        *start = s;
                        true
                    }
                    None => false,
                };
                (rows, more)
            }
        };
        if let Some(k) = self.top_k {
            // Parts hold whole windows, so each window's top is complete.
            Self::keep_top_k(&mut rows, k);
        }
        (Rows::from(rows), more)
    }

    /// Once an epoch's windows are out: drops the state only they needed.
    fn close_until(&mut self, watermark: EventTime) {
        if self.mode != OutputMode::Complete {
            self.evict(watermark);
            self.closed_until = self.closed_until.max(watermark);
        }
        self.publish_state();
    }

    /// Sets the state gauges: rows, and an estimate of their bytes (see
    /// `STATE_ROW_OVERHEAD_BYTES`).
    fn publish_state(&self) {
        self.state_rows_gauge.set(self.state_rows as i64);
        self.state_bytes_gauge
            .set((self.state_key_bytes + self.state_rows * STATE_ROW_OVERHEAD_BYTES) as i64);
    }

    /// Keeps the `k` largest results of each window of `rows` (grouped by window), largest
    /// first, ties by key.
    fn keep_top_k(rows: &mut Vec<ResultRow>, k: usize) {
        let mut kept = Vec::with_capacity(rows.len().min(k * 64));
        let mut i = 0;
        while i < rows.len() {
            let w = rows[i].window;
            let end = i + rows[i..].iter().take_while(|r| r.window == w).count();
            let group = &mut rows[i..end];
            group.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            kept.extend(group.iter().take(k).cloned());
            i = end;
        }
        *rows = kept;
    }

    fn data_bounds(&self) -> Option<(EventTime, EventTime)> {
        let first = *self.slices.first_key_value()?.0;
        let last = *self.slices.last_key_value()?.0;
        Some((
            self.windows.first_window_of_slice(first),
            self.windows.last_window_start(last),
        ))
    }

    fn count_of(&self, key: &str, w: Window) -> i64 {
        if self.aggregate == Aggregate::CountDistinct {
            let mut union = FxHashSet::default();
            for (_, sets) in self.distinct.range(w.start..w.end) {
                if let Some(values) = sets.get(key) {
                    union.extend(values.iter().copied());
                }
            }
            return union.len() as i64;
        }
        self.slices
            .range(w.start..w.end)
            .filter_map(|(_, c)| c.get(key))
            .sum()
    }

    fn evict(&mut self, watermark: EventTime) {
        while let Some((&a, _)) = self.slices.first_key_value() {
            if self.windows.last_window_end(a) > watermark {
                break;
            }
            let (_, counts) = self.slices.pop_first().unwrap();
            self.distinct.remove(&a);
            self.segments.forget(a);
            self.state_rows -= counts.len();
            self.state_key_bytes -= counts.keys().map(|k| k.len()).sum::<usize>();
            self.state_rows_evicted.add(counts.len() as u64);
        }
    }
}

impl Operator for WindowedCount {
    fn process_batch(&mut self, batch: Batch, out: &mut Emitter) -> Result<(), OperatorError> {
        let Batch::Tokens(tokens) = batch else {
            return Err(OperatorError::new(format!(
                "window count takes tokens, got {}",
                batch.kind()
            )));
        };
        let update = self.mode == OutputMode::Update;
        let complete = self.mode == OutputMode::Complete;
        let future_limit = self.max_future_skew.map(|skew| (self.clock)() + skew);
        // Counted here and published once per batch: no shared atomic per token.
        let (mut added, mut updates) = (0u64, 0u64);
        for i in 0..tokens.len() {
            let Some(t) = tokens.event_times[i] else {
                // Spark's window() drops rows without a timestamp; counted, not hidden.
                self.no_event_time.inc();
                continue;
            };
            let word = tokens.token(i);
            if future_limit.is_some_and(|limit| t > limit) {
                let detail = format!(
                    "event at {} is more than max_future_skew after the wall clock ({})",
                    format_iso_utc(t),
                    format_iso_utc((self.clock)())
                );
                out.dead_letter(self.set_aside(Reason::FutureEvent, detail, word));
                continue;
            }
            self.watermark.observe(t);
            self.epoch_rows += 1;
            // Complete mode keeps every window and, as Spark, drops nothing as late.
            let late_bound = if complete {
                EventTime::MIN
            } else {
                self.watermark.late_bound().max(self.closed_until)
            };
            let last_end = self.windows.last_window_end(t);
            if last_end <= late_bound {
                let n = self.windows.windows_per_event() as u64;
                self.late_rows.inc();
                self.late_row_windows.add(n);
                if self.late == LatePolicy::DeadLetter {
                    let detail = format!(
                        "event at {} is too late: every window it falls in ended at or before the watermark {}",
                        format_iso_utc(t),
                        format_iso_utc(late_bound)
                    );
                    out.dead_letter(self.set_aside(Reason::LateEvent, detail, word));
                }
                continue;
            }
            let closed = if complete {
                0
            } else {
                self.windows.closed_windows_of(t, late_bound)
            };
            if closed > 0 {
                // Counts in its open windows only.
                self.late_row_windows.add(closed as u64);
            }
            let slice = self.windows.slice_of(t);
            self.segments.mark(slice);
            let counts = self.slices.entry(slice).or_default();
            updates += 1;
            if !update && self.aggregate != Aggregate::CountDistinct {
                // One lookup by the word, no clone of the key: the common case (Q2).
                let add = match self.aggregate {
                    Aggregate::Sum => tokens.value(i),
                    _ => 1,
                };
                if let Some(c) = counts.get_mut(word) {
                    *c += add;
                } else {
                    self.state_rows += 1;
                    self.state_key_bytes += word.len();
                    added += 1;
                    counts.insert(Arc::from(word), add);
                }
                continue;
            }
            let key = match counts.get_key_value(word) {
                Some((k, _)) => k.clone(),
                None => {
                    self.state_rows += 1;
                    self.state_key_bytes += word.len();
                    added += 1;
                    Arc::from(word)
                }
            };
            let add = match self.aggregate {
                Aggregate::Count => 1,
                Aggregate::Sum => tokens.value(i),
                Aggregate::CountDistinct => {
                    let values = self.distinct.entry(slice).or_default();
                    i64::from(
                        values
                            .entry(key.clone())
                            .or_default()
                            .insert(tokens.value(i)),
                    )
                }
            };
            *counts.entry(key.clone()).or_insert(0) += add;
            if update {
                self.touched.insert((slice, key));
            }
        }
        self.state_rows_added.add(added);
        self.state_updates.add(updates);
        if let Some(max) = self.watermark.max_event_time() {
            self.event_time_max_gauge.set(max);
        }
        self.publish_state();
        Ok(())
    }

    fn on_frontier(&mut self, frontier: EventTime, _: &mut Emitter) -> Result<(), OperatorError> {
        self.watermark.set_frontier(frontier);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: EventTime, _: &mut Emitter) -> Result<(), OperatorError> {
        self.upstream_watermark = self.upstream_watermark.max(watermark);
        Ok(())
    }

    fn on_barrier(&mut self, epoch: Epoch, out: &mut Emitter) -> Result<(), OperatorError> {
        self.segments.set_epoch(epoch);
        let now = (self.clock)();
        if self.epoch_rows > 0 {
            self.last_row_at = now;
            self.data_max_event_time = self.watermark.max_event_time();
        } else if let (Some(idle), Some(max)) = (self.idle_timeout, self.data_max_event_time)
            && now - self.last_row_at >= idle
        {
            // A quiet stream: event time is taken to have moved on with the wall clock since
            // the last row.
            self.watermark.observe(max + (now - self.last_row_at));
        }
        self.epoch_rows = 0;
        let watermark = self.watermark.eviction_bound().max(self.upstream_watermark);
        let size = self.windows.size;
        let mut rows = Rows::default();
        match self.mode {
            OutputMode::Append => {
                if let Some((first_start, last_start)) = self.data_bounds() {
                    let lo = first_start.max(
                        self.align_up(self.closed_until.saturating_sub(size).saturating_add(1)),
                    );
                    let hi = last_start.min(self.align_down(watermark - size));
                    if lo <= hi {
                        self.pending = Some(PendingWindows {
                            epoch,
                            watermark,
                            next: self.windows_to_emit(lo, hi),
                        });
                    }
                }
            }
            OutputMode::Complete => {
                if let Some((lo, hi)) = self.data_bounds() {
                    // One batch: a complete batch replaces the sinks' table.
                    let mut next = self.windows_to_emit(lo, hi);
                    rows = self.emit_part(&mut next, usize::MAX, 0).0;
                }
            }
            OutputMode::Update => {
                let open_after = self.watermark.late_bound().max(self.closed_until);
                let mut keys: FxHashSet<(Window, Arc<str>)> = FxHashSet::default();
                for (slice, key) in self.touched.drain() {
                    for w in self.windows.windows_of(slice) {
                        if w.end > open_after {
                            keys.insert((w, key.clone()));
                        }
                    }
                }
                let mut changed: Vec<ResultRow> = keys
                    .into_iter()
                    .map(|(w, k)| ResultRow {
                        window: Some(w),
                        count: self.count_of(&k, w),
                        key: k,
                    })
                    .collect();
                changed.sort_unstable();
                if let Some(k) = self.top_k {
                    Self::keep_top_k(&mut changed, k);
                }
                rows = Rows::from(changed);
            }
        }
        self.watermark.end_batch();
        self.watermark_gauge.set(watermark);
        if !rows.is_empty() || self.mode == OutputMode::Complete {
            out.batches.push(Batch::Rows(Arc::new(RowBatch {
                schema: self.schema.clone(),
                mode: self.mode,
                epoch,
                rows,
            })));
        }
        if watermark != EventTime::MAX {
            out.watermark(watermark);
        }
        if self.pending.is_some() {
            // A small first part: the sinks start writing while the rest is made (the first
            // part of Q2's flush took ~20 ms during which the CSV sink had nothing to do).
            self.emit_more(self.part_rows.min(FIRST_PART_ROWS), out)?;
        } else {
            self.close_until(watermark);
        }
        Ok(())
    }

    /// The next part of the windows the last barrier closed (append mode).
    fn emit_more(&mut self, max_rows: usize, out: &mut Emitter) -> Result<bool, OperatorError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(false);
        };
        // A part ends with a whole window, so it may pass `max_rows` by one window's rows.
        let reserve = max_rows.saturating_add(max_rows / 4).min(1 << 20);
        let (rows, more) = self.emit_part(&mut pending.next, max_rows, reserve);
        if !rows.is_empty() {
            out.batches.push(Batch::Rows(Arc::new(RowBatch {
                schema: self.schema.clone(),
                mode: self.mode,
                epoch: pending.epoch,
                rows,
            })));
        }
        if more {
            self.pending = Some(pending);
        } else {
            self.close_until(pending.watermark);
        }
        Ok(more)
    }

    fn state_rows(&self) -> usize {
        self.state_rows
    }

    fn state_signature(&self) -> Option<String> {
        // Counts keep the signature they had before other aggregates existed, so their
        // checkpoints stay readable.
        let aggregate = match self.aggregate {
            Aggregate::Count => String::new(),
            a => format!(" {}", a.name()),
        };
        Some(format!(
            "window_count v{STATE_VERSION} window={}ms slide={}ms watermark={}ms mode={:?}{aggregate}",
            self.windows.size,
            self.windows.slide,
            self.watermark.delay(),
            self.mode
        ))
    }

    /// The watermark's parts, what is closed, and the open slices, each named by the state
    /// segment holding its counts.
    fn snapshot(&self) -> Result<Vec<u8>, OperatorError> {
        if self.pending.is_some() {
            // The state would still hold windows already partly emitted.
            return Err(OperatorError::new(
                "window count: a snapshot before the epoch's windows were all emitted",
            ));
        }
        let mut w = StateWriter::new();
        w.u64(SEGMENTED_LAYOUT)
            .i64(self.watermark.late_bound())
            .i64(self.watermark.eviction_bound())
            .opt_i64(self.watermark.max_event_time())
            .i64(self.closed_until)
            .u64(self.slices.len() as u64);
        for start in self.slices.keys() {
            w.i64(*start).str(&self.segments.segment_of(*start).0);
        }
        // Last and optional, so checkpoints written before frontiers existed still restore.
        if let Some(f) = self.watermark.frontier() {
            w.i64(f);
        }
        Ok(w.finish())
    }

    /// The slices changed since the last checkpoint, with their counts (and distinct values).
    fn snapshot_segments(&mut self) -> Result<Vec<StateSegment>, OperatorError> {
        let mut out = Vec::with_capacity(self.slices.len());
        for (start, counts) in &self.slices {
            let (name, write) = self.segments.segment_of(*start);
            if !write {
                out.push(StateSegment::stored(name));
                continue;
            }
            let mut w = StateWriter::new();
            w.u64(SLICE_VERSION);
            write_slice(&mut w, counts, self.distinct_of(*start));
            out.push(StateSegment::new(name, w.finish()));
        }
        self.segments.saved_changed();
        Ok(out)
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), OperatorError> {
        self.restore_with_segments(state, SegmentData::new())
    }

    fn restore_with_segments(
        &mut self,
        state: &[u8],
        mut segments: SegmentData,
    ) -> Result<(), OperatorError> {
        let err = |e: String| OperatorError::new(format!("window count state: {e}"));
        let bad = |e: DecodeError| err(e.to_string());
        let mut r = StateReader::new(state);
        let layout = r.u64().map_err(bad)?;
        if layout != STATE_VERSION && layout != SEGMENTED_LAYOUT {
            return Err(err("unknown version".into()));
        }
        let (late, evict, max) = (
            r.i64().map_err(bad)?,
            r.i64().map_err(bad)?,
            r.opt_i64().map_err(bad)?,
        );
        self.watermark = WatermarkTracker::from_parts(self.watermark.delay(), late, evict, max);
        self.data_max_event_time = max;
        self.last_row_at = (self.clock)();
        self.closed_until = r.i64().map_err(bad)?;
        self.slices.clear();
        self.distinct.clear();
        self.segments.clear();
        self.state_rows = 0;
        self.state_key_bytes = 0;
        if layout == SEGMENTED_LAYOUT {
            for _ in 0..r.u64().map_err(bad)? {
                let start = r.i64().map_err(bad)?;
                let name = r.str().map_err(bad)?.to_string();
                let data = state_segment::take(&mut segments, &name).map_err(err)?;
                let mut s = StateReader::new(&data);
                if s.u64().map_err(bad)? != SLICE_VERSION {
                    return Err(err(format!("segment {name}: unknown version")));
                }
                let (counts, sets) = read_slice(&mut s, self.aggregate).map_err(bad)?;
                s.end().map_err(bad)?;
                self.insert_slice(start, counts, sets);
                self.segments.restored(start, name);
            }
        } else {
            // Before segments: every slice in the state, distinct values after them. The
            // next checkpoint writes them all as segments.
            for _ in 0..r.u64().map_err(bad)? {
                let start = r.i64().map_err(bad)?;
                let counts = read_counts(&mut r).map_err(bad)?;
                self.insert_slice(start, counts, None);
                self.segments.mark(start);
            }
            if self.aggregate == Aggregate::CountDistinct {
                for _ in 0..r.u64().map_err(bad)? {
                    let start = r.i64().map_err(bad)?;
                    self.distinct
                        .insert(start, read_value_sets(&mut r).map_err(bad)?);
                }
            }
        }
        if !r.is_empty() {
            self.watermark.set_frontier(r.i64().map_err(bad)?);
        }
        self.touched.clear();
        self.pending = None;
        self.publish_state();
        r.end().map_err(bad)
    }
}

impl WindowedCount {
    /// The distinct values of slice `start` (count_distinct only).
    fn distinct_of(&self, start: EventTime) -> Option<&ValueSets> {
        (self.aggregate == Aggregate::CountDistinct)
            .then(|| self.distinct.get(&start))
            .flatten()
    }

    fn insert_slice(&mut self, start: EventTime, counts: Counts, sets: Option<ValueSets>) {
        self.state_rows += counts.len();
        self.state_key_bytes += counts.keys().map(|k| k.len()).sum::<usize>();
        self.slices.insert(start, counts);
        if let Some(sets) = sets {
            self.distinct.insert(start, sets);
        }
    }
}

/// A slice's segment: `u64` [`SLICE_VERSION`], its counts (`u64` n + n x (`str` key, `i64`
/// count)), and with count_distinct its values (`u64` m + m x (`str` key, `u64` k + k x
/// `i64`)).
fn write_slice(w: &mut StateWriter, counts: &Counts, sets: Option<&ValueSets>) {
    w.u64(counts.len() as u64);
    for (k, c) in counts {
        w.str(k).i64(*c);
    }
    if let Some(sets) = sets {
        write_value_sets(w, sets);
    }
}

fn write_value_sets(w: &mut StateWriter, sets: &ValueSets) {
    w.u64(sets.len() as u64);
    for (k, values) in sets {
        w.str(k).u64(values.len() as u64);
        for v in values {
            w.i64(*v);
        }
    }
}

fn read_slice(
    r: &mut StateReader<'_>,
    aggregate: Aggregate,
) -> Result<(Counts, Option<ValueSets>), DecodeError> {
    let counts = read_counts(r)?;
    let sets = if aggregate == Aggregate::CountDistinct {
        Some(read_value_sets(r)?)
    } else {
        None
    };
    Ok((counts, sets))
}

fn read_counts(r: &mut StateReader<'_>) -> Result<Counts, DecodeError> {
    let n = r.len()?;
    let mut counts = Counts::default();
    counts.reserve(n);
    for _ in 0..n {
        let k: Arc<str> = r.str()?.into();
        counts.insert(k, r.i64()?);
    }
    Ok(counts)
}

fn read_value_sets(r: &mut StateReader<'_>) -> Result<ValueSets, DecodeError> {
    let mut sets = ValueSets::default();
    for _ in 0..r.len()? {
        let k: Arc<str> = r.str()?.into();
        let n = r.len()?;
        let mut values = FxHashSet::default();
        values.reserve(n);
        for _ in 0..n {
            values.insert(r.i64()?);
        }
        sets.insert(k, values);
    }
    Ok(sets)
}

/// What a state row costs besides its key's bytes, as an estimate for the state-bytes gauge:
/// the key's `Arc` header (16), the map slot (key pointer and length 16, count 8, control
/// byte 1) at the map's 7/8 load (~28). The distinct values of `count_distinct` are not
/// included.
const STATE_ROW_OVERHEAD_BYTES: usize = 60;

/// Layout of the state in checkpoints, named in the state's signature: 1, every slice in the
/// state. Kept in the signature as it is, so checkpoints written before segments restore.
const STATE_VERSION: u64 = 1;
/// The state's layout with each slice in a state segment (the signature still says v1).
const SEGMENTED_LAYOUT: u64 = 2;
/// Layout of a slice's segment.
const SLICE_VERSION: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap as Map;
    use trendflow_core::TokenBatch;
    use trendflow_core::state_segment::SegmentStore;

    /// The naive reference: one counter per (window, key), Spark's rule applied per window.
    struct Naive {
        windows: SlidingWindows,
        wm: WatermarkTracker,
        mode: OutputMode,
        state: Map<(Window, String), i64>,
        touched: std::collections::BTreeSet<(Window, String)>,
    }

    impl Naive {
        fn batch(&mut self, rows: &[(i64, &str)]) {
            for &(t, w) in rows {
                self.wm.observe(t);
                for win in self.windows.windows_of(t) {
                    if self.mode != OutputMode::Complete && win.end <= self.wm.late_bound() {
                        continue;
                    }
                    *self.state.entry((win, w.to_string())).or_insert(0) += 1;
                    self.touched.insert((win, w.to_string()));
                }
            }
        }
        fn barrier(&mut self) -> Vec<(Window, String, i64)> {
            let ev = self.wm.eviction_bound();
            let out = match self.mode {
                OutputMode::Append => self
                    .state
                    .iter()
                    .filter(|((w, _), _)| w.end <= ev)
                    .map(|((w, k), c)| (*w, k.clone(), *c))
                    .collect(),
                OutputMode::Update => self
                    .touched
                    .iter()
                    .map(|(w, k)| (*w, k.clone(), self.state[&(*w, k.clone())]))
                    .collect(),
                OutputMode::Complete => self
                    .state
                    .iter()
                    .map(|((w, k), c)| (*w, k.clone(), *c))
                    .collect(),
            };
            self.touched.clear();
            if self.mode != OutputMode::Complete {
                self.state.retain(|(w, _), _| w.end > ev);
            }
            self.wm.end_batch();
            out
        }
    }

    /// Feeds one epoch and collects what it emits, `on_barrier` and `emit_more` parts alike
    /// (parts of `part` rows), checking they come in (window, key) order.
    fn run_fast(
        op: &mut WindowedCount,
        epoch: u64,
        rows: &[(i64, &str)],
        part: usize,
    ) -> Vec<(Window, String, i64)> {
        let mut tokens = trendflow_core::TokenBatch::default();
        for &(t, w) in rows {
            tokens.push(Some(t), w);
        }
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        op.on_barrier(epoch, &mut out).unwrap();
        while op.emit_more(part, &mut out).unwrap() {}
        let mut got: Vec<_> = out
            .batches
            .iter()
            .flat_map(|b| match b {
                Batch::Rows(r) => r
                    .rows
                    .iter()
                    .map(|r| (r.window.unwrap(), r.key.to_string(), r.count))
                    .collect::<Vec<_>>(),
                _ => vec![],
            })
            .collect();
        assert!(
            got.windows(2)
                .all(|p| (p[0].0, &p[0].1) < (p[1].0, &p[1].1)),
            "rows out of (window, key) order: {got:?}"
        );
        got.sort();
        got
    }

    fn check(
        size: i64,
        slide: i64,
        delay: i64,
        mode: OutputMode,
        batches: Vec<Vec<(i64, u8)>>,
        part: usize,
    ) -> Result<(), TestCaseError> {
        let windows = SlidingWindows::new(size, slide).unwrap();
        let metrics = Metrics::new();
        let mut fast = WindowedCount::new("w", windows, delay, mode, LatePolicy::Count, &metrics)
            .with_part_rows(part);
        let mut naive = Naive {
            windows,
            wm: WatermarkTracker::new(delay),
            mode,
            state: Map::new(),
            touched: Default::default(),
        };
        let keys = ["#a", "#b", "#c"];
        for (i, b) in batches.iter().enumerate() {
            let rows: Vec<(i64, &str)> =
                b.iter().map(|(t, k)| (*t, keys[*k as usize % 3])).collect();
            let got = run_fast(&mut fast, i as u64, &rows, part);
            let mut want = naive.batch_and_barrier(&rows);
            want.sort();
            prop_assert_eq!(got, want, "epoch {}", i);
        }
        Ok(())
    }

    impl Naive {
        fn batch_and_barrier(&mut self, rows: &[(i64, &str)]) -> Vec<(Window, String, i64)> {
            self.batch(rows);
            self.barrier()
        }
    }

    fn batches() -> impl Strategy<Value = Vec<Vec<(i64, u8)>>> {
        prop::collection::vec(prop::collection::vec((0i64..400, 0u8..3), 0..25), 1..8)
    }

    proptest! {
        #[test]
        fn append_equals_naive(size in 1i64..6, slide in 1i64..6, delay in 0i64..30, b in batches()) {
            let (size, slide) = (size * 10, slide.min(size) * 10);
            check(size, slide, delay, OutputMode::Append, b, PART_ROWS)?;
        }

        /// Emitted a few rows at a time (whole windows per part), the rows are the same.
        #[test]
        fn append_in_small_parts_equals_naive(size in 1i64..6, slide in 1i64..6, delay in 0i64..30, part in 1usize..4, b in batches()) {
            let (size, slide) = (size * 10, slide.min(size) * 10);
            check(size, slide, delay, OutputMode::Append, b, part)?;
        }

        #[test]
        fn update_equals_naive(size in 1i64..6, slide in 1i64..6, delay in 0i64..30, b in batches()) {
            let (size, slide) = (size * 10, slide.min(size) * 10);
            check(size, slide, delay, OutputMode::Update, b, PART_ROWS)?;
        }

        #[test]
        fn complete_equals_naive(size in 1i64..6, slide in 1i64..6, delay in 0i64..30, b in batches()) {
            let (size, slide) = (size * 10, slide.min(size) * 10);
            check(size, slide, delay, OutputMode::Complete, b, 1)?;
        }

        #[test]
        fn uneven_slides_equal_naive(b in batches()) {
            check(40, 15, 7, OutputMode::Append, b, 2)?;
        }
    }

    /// A checkpoint of `op` kept in `store`: its state, and the segments it lists.
    fn checkpoint(op: &mut WindowedCount, store: &mut SegmentStore) -> (Vec<u8>, SegmentData) {
        let state = op.snapshot().unwrap();
        (state, store.keep(op.snapshot_segments().unwrap()))
    }

    #[test]
    fn a_checkpoint_writes_the_slices_rows_changed_since_the_last_one() {
        let windows = SlidingWindows::new(100, 50).unwrap();
        let mut op = WindowedCount::new(
            "w",
            windows,
            0,
            OutputMode::Append,
            LatePolicy::Count,
            &Metrics::new(),
        );
        let written = |op: &mut WindowedCount| -> Vec<(String, bool)> {
            op.snapshot().unwrap();
            let segments = op.snapshot_segments().unwrap();
            segments
                .into_iter()
                .map(|s| (s.name, s.data.is_some()))
                .collect()
        };
        run_fast(&mut op, 0, &[(1, "#a"), (60, "#b")], PART_ROWS);
        let first = written(&mut op);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|(_, new)| *new));
        // Epoch 1 changes slice 50 only; epoch 2 none.
        run_fast(&mut op, 1, &[(70, "#b")], PART_ROWS);
        assert_eq!(
            written(&mut op),
            [
                ("00000000000000000000-0".to_string(), false),
                ("00000000000000000001-50".to_string(), true)
            ]
        );
        run_fast(&mut op, 2, &[], PART_ROWS);
        assert!(written(&mut op).iter().all(|(_, new)| !*new));
    }

    #[test]
    fn a_state_from_before_segments_restores_and_its_slices_are_saved_next() {
        let windows = SlidingWindows::new(100, 50).unwrap();
        let new_op = || {
            WindowedCount::new(
                "w",
                windows,
                0,
                OutputMode::Append,
                LatePolicy::Count,
                &Metrics::new(),
            )
        };
        let mut reference = new_op();
        run_fast(
            &mut reference,
            0,
            &[(1, "#a"), (5, "#a"), (60, "#b")],
            PART_ROWS,
        );
        // Layout 1: the same header as now, then every slice's counts in the state.
        let now = reference.snapshot().unwrap();
        let mut r = StateReader::new(&now);
        assert_eq!(r.u64().unwrap(), SEGMENTED_LAYOUT);
        let mut w = StateWriter::new();
        w.u64(STATE_VERSION)
            .i64(r.i64().unwrap())
            .i64(r.i64().unwrap())
            .opt_i64(r.opt_i64().unwrap())
            .i64(r.i64().unwrap());
        w.u64(2)
            .i64(0)
            .u64(1)
            .str("#a")
            .i64(2)
            .i64(50)
            .u64(1)
            .str("#b")
            .i64(1);
        let mut restored = new_op();
        restored.restore(&w.finish()).unwrap();
        // Both slices are written by the next checkpoint, and the windows come out the same.
        let segments = restored.snapshot_segments().unwrap();
        assert_eq!(segments.len(), 2);
        assert!(segments.iter().all(|s| s.data.is_some()));
        let close = [(1_000, "#z")];
        let want = run_fast(&mut reference, 1, &close, PART_ROWS);
        assert!(!want.is_empty());
        assert_eq!(run_fast(&mut restored, 1, &close, PART_ROWS), want);
    }

    proptest! {
        /// Stopping after any epoch and resuming from its last checkpoint gives the same rows
        /// as an uninterrupted run.
        #[test]
        fn a_restored_count_continues_exactly(mode in 0..3usize, cut in 0usize..8, b in batches()) {
            let mode = [OutputMode::Append, OutputMode::Update, OutputMode::Complete][mode];
            let windows = SlidingWindows::new(4, 2).unwrap();
            let make = || WindowedCount::new("c", windows, 3, mode, LatePolicy::Count, &Metrics::new()).with_part_rows(1);
            let run = |op: &mut WindowedCount, batches: &[Vec<(i64, u8)>], first: u64| {
                let mut rows = Vec::new();
                for (i, b) in batches.iter().enumerate() {
                    let mut tokens = TokenBatch::with_capacity(b.len(), b.len());
                    for (t, k) in b {
                        tokens.push(Some(*t), &k.to_string());
                    }
                    let mut out = Emitter::new();
                    op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out).unwrap();
                    op.on_barrier(first + i as u64, &mut out).unwrap();
                    while op.emit_more(1, &mut out).unwrap() {}
                    for batch in out.batches {
                        let Batch::Rows(r) = batch else { panic!() };
                        rows.extend(r.rows.iter().map(|r| r.to_owned()));
                    }
                }
                rows
            };
            let cut = cut.min(b.len());
            let whole = run(&mut make(), &b, 0);
            // A checkpoint after every epoch; the last one restored.
            let mut first = make();
            let mut store = SegmentStore::default();
            let mut rows = Vec::new();
            let mut last = checkpoint(&mut first, &mut store);
            for (i, batch) in b[..cut].iter().enumerate() {
                rows.extend(run(&mut first, std::slice::from_ref(batch), i as u64));
                last = checkpoint(&mut first, &mut store);
            }
            let (state, listed) = last;
            let mut second = make();
            second.restore_with_segments(&state, listed.clone()).unwrap();
            rows.extend(run(&mut second, &b[cut..], cut as u64));
            prop_assert_eq!(rows, whole);
            prop_assert!(second.restore_with_segments(&state[..state.len() - 1], listed).is_err());
        }
    }

    #[test]
    fn late_rows_are_counted_not_hidden() {
        let windows = SlidingWindows::new(100, 50).unwrap();
        let metrics = Metrics::new();
        let mut op = WindowedCount::new(
            "w",
            windows,
            0,
            OutputMode::Append,
            LatePolicy::DeadLetter,
            &metrics,
        );
        run_fast(&mut op, 0, &[(1000, "#a")], PART_ROWS);
        run_fast(&mut op, 1, &[], PART_ROWS); // watermark 1000 now in force, windows before it closed
        let mut tokens = trendflow_core::TokenBatch::default();
        tokens.push(Some(10), "#late");
        tokens.push(Some(960), "#partly"); // windows [900,1000) closed, [950,1050) open
        tokens.push(None, "#notime");
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        assert_eq!(metrics.value(names::LATE_ROWS_DROPPED, "w"), 1);
        assert_eq!(metrics.value(names::LATE_ROW_WINDOWS_DROPPED, "w"), 3);
        assert_eq!(out.dead_letters.len(), 1);
        assert_eq!(out.dead_letters[0].reason, Reason::LateEvent);
        assert_eq!(out.dead_letters[0].excerpt, "#late");
        assert_eq!(metrics.value(names::DEAD_LETTERS, "w"), 1);
    }

    #[test]
    fn future_events_do_not_move_the_watermark() {
        let windows = SlidingWindows::new(100, 50).unwrap();
        let metrics = Metrics::new();
        let mut op = WindowedCount::new(
            "w",
            windows,
            0,
            OutputMode::Append,
            LatePolicy::Count,
            &metrics,
        )
        .with_max_future_skew(Some(10), Some(|| 1_000));
        let mut tokens = trendflow_core::TokenBatch::default();
        tokens.push(Some(1_005), "#ok");
        tokens.push(Some(999_999), "#future");
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        assert_eq!(out.dead_letters.len(), 1);
        assert_eq!(out.dead_letters[0].reason, Reason::FutureEvent);
        assert_eq!(out.dead_letters[0].excerpt, "#future");
        assert_eq!(op.watermark().max_event_time(), Some(1_005));
        assert_eq!(op.state_rows(), 1);
    }

    fn rows_of(out: Emitter) -> Vec<(Window, String, i64)> {
        out.batches
            .into_iter()
            .flat_map(|b| {
                let Batch::Rows(r) = b else { panic!() };
                r.rows
                    .iter()
                    .map(|r| (r.window.unwrap(), r.key.to_string(), r.count))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_end_of_a_bounded_input_closes_every_window() {
        let windows = SlidingWindows::new(100, 50).unwrap();
        let mut op = WindowedCount::new(
            "w",
            windows,
            10,
            OutputMode::Append,
            LatePolicy::Count,
            &Metrics::new(),
        );
        let mut tokens = trendflow_core::TokenBatch::default();
        tokens.push(Some(1_020), "#a");
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        op.on_barrier(0, &mut out).unwrap();
        op.on_barrier(1, &mut out).unwrap();
        // Watermark 1010: no window of 1020 has closed yet.
        assert!(out.batches.is_empty());
        op.on_watermark(EventTime::MAX, &mut out).unwrap();
        op.on_barrier(2, &mut out).unwrap();
        let rows = rows_of(out);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(op.state_rows(), 0);
    }

    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    fn test_clock() -> EventTime {
        NOW.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn on_a_quiet_stream_event_time_follows_the_wall_clock_after_the_idle_timeout() {
        use std::sync::atomic::Ordering::SeqCst;
        NOW.store(1_000_000, SeqCst);
        let windows = SlidingWindows::new(100, 50).unwrap();
        let mut op = WindowedCount::new(
            "w",
            windows,
            10,
            OutputMode::Append,
            LatePolicy::Count,
            &Metrics::new(),
        )
        .with_max_future_skew(None, Some(test_clock))
        .with_idle_timeout(Some(5_000));
        let mut tokens = trendflow_core::TokenBatch::default();
        tokens.push(Some(1_020), "#a");
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        op.on_barrier(0, &mut out).unwrap();
        // Quiet, but not for long enough: nothing moves.
        NOW.store(1_004_000, SeqCst);
        op.on_barrier(1, &mut out).unwrap();
        op.on_barrier(2, &mut out).unwrap();
        assert!(out.batches.is_empty());
        assert_eq!(op.watermark().max_event_time(), Some(1_020));
        // Past the idle timeout: event time is taken to be 1020 + 6000 ms; the next epoch
        // closes the windows ending by then.
        NOW.store(1_006_000, SeqCst);
        op.on_barrier(3, &mut out).unwrap();
        op.on_barrier(4, &mut out).unwrap();
        assert_eq!(op.watermark().max_event_time(), Some(7_020));
        assert_eq!(rows_of(out).len(), 2);
    }

    #[test]
    fn state_is_released_as_windows_close() {
        let windows = SlidingWindows::new(100, 10).unwrap();
        let mut op = WindowedCount::new(
            "w",
            windows,
            0,
            OutputMode::Append,
            LatePolicy::Count,
            &Metrics::new(),
        );
        run_fast(&mut op, 0, &[(5, "#a"), (15, "#b"), (500, "#c")], PART_ROWS);
        assert_eq!(op.state_rows(), 3);
        run_fast(&mut op, 1, &[], PART_ROWS);
        assert_eq!(op.state_rows(), 1);
    }

    /// The state's metrics follow it: rows added once per (slice, key), every record an
    /// update, rows evicted as windows close, bytes (keys + a cost per row) back to what is
    /// left; a restore recomputes the bytes.
    #[test]
    fn state_metrics_count_additions_updates_evictions_and_bytes() {
        let metrics = Metrics::new();
        let windows = SlidingWindows::new(100, 10).unwrap();
        let new_op = |m: &Metrics| {
            WindowedCount::new("w", windows, 0, OutputMode::Append, LatePolicy::Count, m)
        };
        let mut op = new_op(&metrics);
        let value = |name| metrics.value(name, "w");
        // Slice 0 gets #a twice and #bb; slice 10 #a; slice 500 #ccc.
        let tokens = [(1, "#a"), (5, "#a"), (6, "#bb"), (15, "#a"), (500, "#ccc")];
        run_fast(&mut op, 0, &tokens, PART_ROWS);
        assert_eq!(value(names::STATE_UPDATES), 5);
        assert_eq!(value(names::STATE_ROWS_ADDED), 4);
        assert_eq!(value(names::STATE_ROWS_EVICTED), 0);
        let bytes = |keys: usize, rows: usize| (keys + rows * STATE_ROW_OVERHEAD_BYTES) as i64;
        assert_eq!(value(names::STATE_BYTES), bytes(2 + 3 + 2 + 4, 4));
        assert_eq!(value(names::EVENT_TIME_MAX_MS), 500);
        let (saved, segments) = checkpoint(&mut op, &mut SegmentStore::default());
        run_fast(&mut op, 1, &[], PART_ROWS);
        assert_eq!(op.state_rows(), 1);
        assert_eq!(value(names::STATE_ROWS_EVICTED), 3);
        assert_eq!(value(names::STATE_BYTES), bytes(4, 1));
        let restored_metrics = Metrics::new();
        let mut restored = new_op(&restored_metrics);
        restored.restore_with_segments(&saved, segments).unwrap();
        assert_eq!(
            restored_metrics.value(names::STATE_BYTES, "w"),
            bytes(2 + 3 + 2 + 4, 4)
        );
    }

    /// Sums, distinct counts and top-k against a per-(window, key) reference, in append mode
    /// over two epochs (the second one closes every window), with a snapshot and restore in
    /// between.
    fn check_aggregate(
        aggregate: Aggregate,
        top_k: Option<usize>,
        rows: &[(i64, u8, i64)],
    ) -> Result<(), TestCaseError> {
        let windows = SlidingWindows::new(40, 10).unwrap();
        let metrics = Metrics::new();
        let make = || {
            WindowedCount::new(
                "w",
                windows,
                0,
                OutputMode::Append,
                LatePolicy::Count,
                &metrics,
            )
            .with_aggregate(aggregate)
            .with_top_k(top_k)
            .with_part_rows(2)
        };
        let mut op = make();
        let keys = ["#a", "#b", "#c"];
        let mut tokens = TokenBatch::default();
        let mut want: Map<(Window, String), (i64, std::collections::BTreeSet<i64>)> = Map::new();
        for &(t, k, v) in rows {
            tokens.push_valued(Some(t), keys[k as usize % 3], v);
            for w in windows.windows_of(t) {
                let e = want
                    .entry((w, keys[k as usize % 3].to_string()))
                    .or_default();
                e.0 += v;
                e.1.insert(v);
            }
        }
        let mut out = Emitter::new();
        op.process_batch(Batch::Tokens(Arc::new(tokens)), &mut out)
            .unwrap();
        op.on_barrier(0, &mut out).unwrap();
        // Restart from a checkpoint: the result must not change.
        let (state, segments) = checkpoint(&mut op, &mut SegmentStore::default());
        let mut op = make();
        op.restore_with_segments(&state, segments).unwrap();
        let mut close = TokenBatch::default();
        close.push_valued(Some(1_000_000), "#z", 0);
        op.process_batch(Batch::Tokens(Arc::new(close)), &mut out)
            .unwrap();
        for epoch in [1, 2] {
            // Two rows at a time: parts hold whole windows, so every window's top is whole.
            op.on_barrier(epoch, &mut out).unwrap();
            while op.emit_more(2, &mut out).unwrap() {}
        }
        let mut got: Vec<(Window, String, i64)> = out
            .batches
            .iter()
            .flat_map(|b| match b {
                Batch::Rows(r) => r
                    .rows
                    .iter()
                    .filter(|r| &**r.key != "#z")
                    .map(|r| (r.window.unwrap(), r.key.to_string(), r.count))
                    .collect::<Vec<_>>(),
                _ => vec![],
            })
            .collect();
        let mut expected: Vec<(Window, String, i64)> = want
            .into_iter()
            .map(|((w, k), (sum, set))| {
                let v = match aggregate {
                    Aggregate::Count => unreachable!(),
                    Aggregate::Sum => sum,
                    Aggregate::CountDistinct => set.len() as i64,
                };
                (w, k, v)
            })
            .collect();
        if let Some(k) = top_k {
            let mut by_window: Map<Window, Vec<(Window, String, i64)>> = Map::new();
            for r in expected {
                by_window.entry(r.0).or_default().push(r);
            }
            expected = by_window
                .into_values()
                .flat_map(|mut rows| {
                    rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
                    rows.truncate(k);
                    rows
                })
                .collect();
        }
        got.sort();
        expected.sort();
        prop_assert_eq!(got, expected);
        Ok(())
    }

    proptest! {
        #[test]
        fn sums_equal_the_reference(rows in proptest::collection::vec((0i64..200, 0u8..3, 0i64..4), 0..60)) {
            check_aggregate(Aggregate::Sum, None, &rows)?;
        }

        #[test]
        fn distinct_counts_equal_the_reference(rows in proptest::collection::vec((0i64..200, 0u8..3, 0i64..4), 0..60)) {
            check_aggregate(Aggregate::CountDistinct, None, &rows)?;
        }

        #[test]
        fn top_k_keeps_the_largest(rows in proptest::collection::vec((0i64..200, 0u8..3, 0i64..4), 0..60)) {
            check_aggregate(Aggregate::Sum, Some(2), &rows)?;
            check_aggregate(Aggregate::CountDistinct, Some(1), &rows)?;
        }
    }
}
