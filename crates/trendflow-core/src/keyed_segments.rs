//! A table of counts by (window, key) kept for checkpoints as state segments
//! ([`crate::state_segment`]): a checkpoint writes the rows that changed since the one before,
//! not the whole table.
//!
//! A count over the whole stream keeps every key it saw (as Spark's complete and update modes
//! do), and a complete-mode table is all of them, again at every epoch: Q1 over 1M tweets read
//! in 101 epochs ends with 136k hashtags, and wrote them all into every checkpoint (3.1 MB for
//! the count, 2.1 MB for its memory table), where an epoch changes a few thousand.
//!
//! Each epoch's changes are a segment: a row's new count, or its removal. Segments are merged
//! as [`merges`] says, the newer's rows over the older's. A restore reads them oldest first,
//! each row's last value winning. Once the segments hold more entries than twice the rows plus
//! one merged segment's worth, or number [`MAX_SEGMENTS`], they are replaced by one segment of
//! every row: stale entries stay under half of what a restart reads, and each change is
//! written a bounded number of times.

use std::sync::Arc;

use crate::codec::{DecodeError, StateReader, StateWriter, crc32};
use crate::state_segment::{self, MERGED_MAX, MergingSegment, SegmentData, StateSegment, merges};
use crate::{Epoch, OperatorError, Window};

/// A row of a table of counts: its window (none for a count over the whole stream) and key.
pub type RowKey = (Option<Window>, Arc<str>);

/// A change: the row's count, or `None` when it left the table.
pub type RowChange = (RowKey, Option<i64>);

/// The most segments kept. Epochs whose changes shrink one after the other never merge (the
/// newer must hold as many rows as the older) and need not leave stale entries; a restart
/// reads every segment, one request each on object storage.
pub const MAX_SEGMENTS: usize = 64;

/// One segment: rows with their counts (or removals) when it was made.
type Segment = MergingSegment<RowChange>;

#[derive(Debug, Default)]
pub struct KeyedSegments {
    segments: Vec<Segment>,
}

impl KeyedSegments {
    /// Entries in all segments: what a restart reads.
    pub fn entries(&self) -> usize {
        self.segments.iter().map(|s| s.items).sum()
    }

    /// The number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Records the rows that changed in epoch `epoch` (sorted, each once) as a new segment,
    /// merged with the newest ones while they are small; or, when the segments would hold
    /// too many stale entries, replaces them all with one segment of every row of the table
    /// (`all`, called then only), which now has `rows` rows.
    pub fn add_epoch(
        &mut self,
        epoch: Epoch,
        changed: Vec<RowChange>,
        rows: usize,
        all: impl FnOnce() -> Vec<RowChange>,
    ) {
        if changed.is_empty() {
            return;
        }
        debug_assert!(changed.is_sorted_by(|a, b| a.0 < b.0), "sorted, each once");
        let mut number = 0;
        let mut name = || {
            number += 1;
            format!("{epoch:020}-{}", number - 1)
        };
        if self.entries() + changed.len() > 2 * rows + MERGED_MAX
            || self.segments.len() >= MAX_SEGMENTS
        {
            self.segments.clear();
            let all = all();
            if !all.is_empty() {
                self.segments.push(Segment::new(name(), all));
            }
            return;
        }
        self.segments.push(Segment::new(name(), changed));
        while let [.., older, newer] = &self.segments[..]
            && merges(older.items, newer.items)
        {
            let newer = self.segments.pop().expect("two segments");
            let older = self.segments.pop().expect("two segments");
            let oldest = self.segments.is_empty();
            let mut merged = merge_sorted(older.into_items(), newer.into_items());
            if oldest {
                // A removal matters only while an older segment may still hold the row.
                merged.retain(|(_, value)| value.is_some());
            }
            self.segments.push(Segment::new(name(), merged));
        }
    }

    /// Every row of a state written before segments (sorted, each once), saved as one
    /// segment by the next checkpoint. Named after its rows, so that another such state restored later cannot
    /// give other bytes the same name.
    pub fn add_whole(&mut self, all: Vec<RowChange>) {
        if all.is_empty() {
            return;
        }
        let mut tag = Vec::new();
        for ((window, key), count) in &all {
            if let Some(w) = window {
                tag.extend_from_slice(&w.start.to_le_bytes());
                tag.extend_from_slice(&w.end.to_le_bytes());
            }
            tag.extend_from_slice(key.as_bytes());
            tag.extend_from_slice(&count.unwrap_or(i64::MIN).to_le_bytes());
        }
        let name = format!("unsegmented-{:08x}-{}", crc32(&tag), all.len());
        self.segments.push(Segment::new(name, all));
    }

    /// The segments, oldest first, as a state lists them: name and rows.
    pub fn write_list(&self, w: &mut StateWriter) {
        w.u64(self.segments.len() as u64);
        for s in &self.segments {
            w.str(&s.name).u64(s.items as u64);
        }
    }

    /// The segments, each with its bytes the first time.
    pub fn snapshot_segments(&mut self) -> Vec<StateSegment> {
        self.segments
            .iter_mut()
            .map(|s| {
                s.hand_over(|data| {
                    let mut w = StateWriter::new();
                    w.u64(SEGMENT_VERSION).u64(data.len() as u64);
                    for ((window, key), value) in data {
                        w.opt_i64(window.map(|w| w.start))
                            .opt_i64(window.map(|w| w.end))
                            .str(key)
                            .opt_i64(*value);
                    }
                    w.finish()
                })
            })
            .collect()
    }

    /// The segments a list written by [`Self::write_list`] names, from their bytes; each row
    /// is given to `apply`, oldest segment first (a later value of a row replaces an earlier
    /// one; `None` removes it).
    pub fn restore(
        r: &mut StateReader<'_>,
        data: &mut SegmentData,
        mut apply: impl FnMut(RowKey, Option<i64>),
    ) -> Result<KeyedSegments, OperatorError> {
        let err = |e: String| OperatorError::new(format!("state segments: {e}"));
        let bad = |e: DecodeError| err(e.to_string());
        let mut restored = KeyedSegments::default();
        for _ in 0..r.len().map_err(bad)? {
            let name = r.str().map_err(bad)?.to_string();
            let entries = r.u64().map_err(bad)? as usize;
            let bytes = state_segment::take(data, &name).map_err(err)?;
            let mut s = StateReader::new(&bytes);
            if s.u64().map_err(bad)? != SEGMENT_VERSION {
                return Err(err(format!("segment {name}: unknown version")));
            }
            let n = s.len().map_err(bad)?;
            if n != entries {
                return Err(err(format!(
                    "segment {name} holds {n} rows, the state lists {entries}"
                )));
            }
            let keep = Segment::keeps(entries);
            let mut rows = Vec::with_capacity(if keep { n } else { 0 });
            for _ in 0..n {
                let (start, end) = (s.opt_i64().map_err(bad)?, s.opt_i64().map_err(bad)?);
                let window = start.zip(end).map(|(start, end)| Window { start, end });
                let key: Arc<str> = s.str().map_err(bad)?.into();
                let value = s.opt_i64().map_err(bad)?;
                if keep {
                    rows.push(((window, key.clone()), value));
                }
                apply((window, key), value);
            }
            s.end().map_err(bad)?;
            restored
                .segments
                .push(Segment::restored(name, entries, rows));
        }
        Ok(restored)
    }
}

/// Two segments' rows, each sorted by key, as one sorted list: a row in both takes the newer
/// value.
fn merge_sorted(older: Vec<RowChange>, newer: Vec<RowChange>) -> Vec<RowChange> {
    let mut merged = Vec::with_capacity(older.len() + newer.len());
    let mut older = older.into_iter().peekable();
    for row in newer {
        while let Some(o) = older.next_if(|(key, _)| *key < row.0) {
            merged.push(o);
        }
        older.next_if(|(key, _)| *key == row.0);
        merged.push(row);
    }
    merged.extend(older);
    merged
}

/// A segment's bytes: `u64` this version, `u64` n, n x (`opt_i64` window start, `opt_i64`
/// window end, `str` key, `opt_i64` count or none for a removal). (Version 1, `str` key and
/// `i64` count, was written by a build of a few hours that no release had.)
const SEGMENT_VERSION: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_segment::SegmentStore;

    fn key(k: &str) -> RowKey {
        (None, k.into())
    }

    /// A checkpoint of `segments`, and the table a restore from it rebuilds.
    fn round_trip(
        segments: &mut KeyedSegments,
        store: &mut SegmentStore,
    ) -> (KeyedSegments, std::collections::BTreeMap<RowKey, i64>) {
        let mut w = StateWriter::new();
        segments.write_list(&mut w);
        let listed = store.keep(segments.snapshot_segments());
        let state = w.finish();
        let mut table = std::collections::BTreeMap::new();
        let restored =
            KeyedSegments::restore(&mut StateReader::new(&state), &mut { listed }, |k, v| {
                match v {
                    Some(c) => table.insert(k, c),
                    None => table.remove(&k),
                };
            })
            .unwrap();
        (restored, table)
    }

    #[test]
    fn removals_and_newer_values_win_over_older_segments_merged_or_not() {
        let mut store = SegmentStore::default();
        let mut table = std::collections::BTreeMap::new();
        let mut segments = KeyedSegments::default();
        // Large first epoch (never merged), then small changes that merge.
        let first: Vec<RowChange> = (0..40_000)
            .map(|i| (key(&format!("#k{i:05}")), Some(1)))
            .collect();
        let changes: Vec<Vec<RowChange>> = vec![
            first,
            vec![(key("#k00001"), Some(5)), (key("#k00002"), None)],
            vec![(key("#k00002"), Some(7)), (key("#k00003"), None)],
            vec![(key("#k00001"), None), (key("#new"), Some(1))],
        ];
        for (epoch, changed) in changes.into_iter().enumerate() {
            for (k, v) in &changed {
                match v {
                    Some(c) => table.insert(k.clone(), *c),
                    None => table.remove(k),
                };
            }
            let rows = table.len();
            let all = || table.iter().map(|(k, c)| (k.clone(), Some(*c))).collect();
            segments.add_epoch(epoch as u64, changed, rows, all);
            let (restored, got) = round_trip(&mut segments, &mut store);
            assert_eq!(got, table, "epoch {epoch}");
            segments = restored;
        }
        // The large segment, the two small ones merged, the last one (smaller) apart.
        assert_eq!(segments.len(), 3);
    }
}
