//! Emitting the closed windows of a sliding count part by part, in (window, key) order.
//!
//! A window's counts are a running sum: moving to the next window adds the slice entering it
//! and subtracts the one leaving it. Before the first window, the keys of every slice to be
//! emitted are sorted once and replaced by their rank, so the running sum is an array indexed
//! by rank and a bit set of the ranks that are not zero: a window's rows come out sorted by
//! key by walking the bits, with no hashing per update and no sort per window (with 24-hour
//! windows sliding every minute each key appears in 1,440 windows; sorting every window's keys
//! was the largest cost of emitting them).

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use trendflow_core::{EventTime, Rows, SlidingWindows, Window};

/// One slice's counts: key -> count.
pub(crate) type Counts = FxHashMap<Arc<str>, i64>;

/// The windows starting in `[lo, hi]` (aligned to the slide) that hold data, emitted a part at
/// a time.
///
/// ```ignore
/// let mut cursor = CountWindowCursor::new(windows, &slices, lo, hi);
/// let mut rows = cursor.rows();
/// while cursor.next_part(65_536, &mut rows) { /* send rows, start anew */ }
/// ```
pub(crate) struct CountWindowCursor {
    windows: SlidingWindows,
    /// The next window to emit, whose slices are summed in `counts`; `None` when done.
    start: Option<EventTime>,
    hi: EventTime,
    /// The keys, sorted: a key's rank is its index; the rows' keys (shared by every part).
    keys: Arc<[Arc<str>]>,
    /// slice start -> (rank, count) of the slices from `lo` to the last window's end.
    slices: BTreeMap<EventTime, Vec<(u32, i64)>>,
    /// The running sum per rank, and which ranks are not zero.
    counts: Vec<i64>,
    nonzero: Vec<u64>,
    live: usize,
}

impl CountWindowCursor {
    pub(crate) fn new(
        windows: SlidingWindows,
        slices: &BTreeMap<EventTime, Counts>,
        lo: EventTime,
        hi: EventTime,
    ) -> Self {
        let mut ids: FxHashMap<&str, u32> = FxHashMap::default();
        let mut names: Vec<&Arc<str>> = Vec::new();
        let mut ranked = BTreeMap::new();
        if lo <= hi {
            for (&t, counts) in slices.range(lo..hi.saturating_add(windows.size)) {
                let entries: Vec<(u32, i64)> = counts
                    .iter()
                    .map(|(k, &c)| {
                        let id = *ids.entry(&**k).or_insert_with(|| {
                            names.push(k);
                            (names.len() - 1) as u32
                        });
                        (id, c)
                    })
                    .collect();
                ranked.insert(t, entries);
            }
        }
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| names[a as usize].cmp(names[b as usize]));
        let mut rank_of = vec![0u32; names.len()];
        for (rank, &id) in order.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        for entries in ranked.values_mut() {
            for e in entries.iter_mut() {
                e.0 = rank_of[e.0 as usize];
            }
        }
        // Fresh copies, allocated in rank order: the rows of a window are walked by rank, and
        // each row's key is touched by this cursor and by every sink; keys scattered over the
        // heap as they were first seen made the sinks' reads of them cache misses (half of the
        // samples of the CSV rows' formatting in Q2's flush were on its first load of a key).
        let keys: Arc<[Arc<str>]> = order
            .iter()
            .map(|&id| Arc::from(&**names[id as usize]))
            .collect();
        let mut cursor = CountWindowCursor {
            windows,
            start: (lo <= hi).then_some(lo),
            hi,
            counts: vec![0; keys.len()],
            nonzero: vec![0; keys.len().div_ceil(64)],
            keys,
            slices: ranked,
            live: 0,
        };
        if lo <= hi {
            cursor.add(lo, lo + windows.size, 1);
        }
        cursor
    }

    /// Adds (`sign` 1) or subtracts (-1) the slices starting in `[from, to)`.
    fn add(&mut self, from: EventTime, to: EventTime, sign: i64) {
        let CountWindowCursor {
            slices,
            counts,
            nonzero,
            live,
            ..
        } = self;
        for entries in slices.range(from..to).map(|(_, e)| e) {
            for &(rank, c) in entries {
                let r = rank as usize;
                let before = counts[r];
                let after = before + sign * c;
                counts[r] = after;
                if (before == 0) != (after == 0) {
                    let bit = 1u64 << (r % 64);
                    if after == 0 {
                        nonzero[r / 64] &= !bit;
                        *live -= 1;
                    } else {
                        nonzero[r / 64] |= bit;
                        *live += 1;
                    }
                }
            }
        }
    }

    /// No rows yet, over this cursor's keys (what `next_part` appends to).
    pub(crate) fn rows(&self) -> Rows {
        Rows::with_keys(self.keys.clone(), true)
    }

    fn push_window(&self, start: EventTime, rows: &mut Rows) {
        let window = Some(Window {
            start,
            end: start + self.windows.size,
        });
        for (word, &bits) in self.nonzero.iter().enumerate() {
            let mut b = bits;
            while b != 0 {
                let r = word * 64 + b.trailing_zeros() as usize;
                rows.push(window, r as u32, self.counts[r]);
                b &= b - 1;
            }
        }
    }

    /// Appends whole windows, in order, until at least `max_rows` rows were appended or none
    /// remain; returns whether windows remain. `rows` are over this cursor's keys (`rows()`).
    pub(crate) fn next_part(&mut self, max_rows: usize, rows: &mut Rows) -> bool {
        let Some(mut s) = self.start else {
            return false;
        };
        let (size, slide) = (self.windows.size, self.windows.slide);
        let first = rows.len();
        loop {
            if self.live > 0 {
                self.push_window(s, rows);
            }
            let next = s + slide;
            if next > self.hi {
                self.start = None;
                return false;
            }
            if self.live == 0 {
                // Skip the empty stretch: the next window with data contains the next slice.
                let Some((&x, _)) = self.slices.range(next..).next() else {
                    self.start = None;
                    return false;
                };
                let s2 = next.max(self.windows.first_window_of_slice(x));
                if s2 > self.hi {
                    self.start = None;
                    return false;
                }
                s = s2;
                self.add(s, s + size, 1);
            } else {
                self.add(s, next, -1);
                self.add(s + size, next + size, 1);
                s = next;
            }
            if rows.len() - first >= max_rows {
                self.start = Some(s);
                return true;
            }
        }
    }
}
